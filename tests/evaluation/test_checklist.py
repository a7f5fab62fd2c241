"""The behaviour suite: fixed sentences per capability, and accuracy per capability."""

import numpy as np

from toxicity.data.augment import misspell
from toxicity.evaluation.checklist import (
    INSULTS,
    capability_accuracy,
    spelling_variants,
    suite,
    suite_by_template,
    unseen_spelling_variants,
)


def test_the_suite_is_fixed_and_covers_each_capability_with_its_answers():
    cases = suite()
    assert cases == suite()  # the same sentences every time
    assert set(cases) == {"negation", "counter_speech", "identity_neutral", "spelling", "spelling_unseen"}
    assert {label for _, label in cases["negation"]} == {0, 1}  # negated and plain insults both
    assert ("I don't think you are an idiot.", 0) in cases["negation"]
    assert all(label == 0 for _, label in cases["identity_neutral"] + cases["counter_speech"])
    assert all(label == 1 for _, label in cases["spelling"] + cases["spelling_unseen"])
    assert spelling_variants("idiot") == ["i d i o t", "1d10t", "idot", "iidot", "idiiiot"]
    assert unseen_spelling_variants("idiot") == ["i_d_i_o_t", "!diot", "idoot", "id.iot"]


def test_unseen_spellings_are_ones_the_augmentation_never_writes():
    rng = np.random.default_rng(0)
    for word in INSULTS:
        augmented = {misspell(word, rng) for _ in range(2000)}
        assert not augmented & set(unseen_spelling_variants(word)), word


def test_accuracy_per_capability_from_any_scorer():
    def keyword_scorer(texts):  # flags any sentence holding an insult word as written
        return np.array(
            [[float(any(w in text for w in ("idiot", "moron", "loser", "clown", "fool")))] for text in texts]
        )

    accuracy = capability_accuracy(keyword_scorer)
    assert accuracy["identity_neutral"]["accuracy"] == 1.0  # no insult words there
    assert accuracy["counter_speech"]["accuracy"] < 0.5  # quoting an insult fools a keyword match
    assert 0.4 < accuracy["negation"]["accuracy"] < 0.7  # right on the plain half only
    assert accuracy["negation"]["cases"] == len(suite()["negation"])
    assert accuracy["counter_speech"]["failures"]


def test_the_suite_by_template_holds_the_same_sentences_each_under_its_template():
    """benchmarks/feedback_loop.py corrects half of each capability's templates and scores the others."""
    by_template = suite_by_template()
    for capability, cases in suite().items():
        templates = by_template[capability]
        assert len(templates) >= 2  # both halves have sentences
        assert [case for group in templates.values() for case in group] == cases
    negation = by_template["negation"]
    assert negation["I would never call you an {w}."][0] == ("I would never call you an idiot.", 0)
    assert negation["You are such an {w}."][-1] == ("You are such a fool.", 1)
