"""Word attributions (issue 30): which words made a score, for every family through one shared module."""

from collections import Counter

import numpy as np
import pytest
import torch

from tests.helpers import TINY_ENCODER
from tests.helpers.explain import insult_direction_model
from tests.models.toy_family import CharLengthTagger
from toxicity.data.ngrams import NgramHasher
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.models.attribution import Attributor, text_logits, tokenized_with_words, without_words
from toxicity.models.hybrid import HybridTagger
from toxicity.models.ngram_shares import ngram_word_shares, occurrences
from toxicity.models.text2text import TextToTextTagger

TOXIC, NEUTRAL = "idiot", "table"
SENTENCE = "thanks for the table, you idiot!"


@pytest.fixture(scope="module")
def minilm_insult_direction():
    """The pretrained MiniLM, its head along the insult direction (tests/helpers/explain.py)."""
    return ToxicityClassifier(insult_direction_model(["toxic", "insult"]), max_length=128)


def by_word(explanation, tag):
    return {w.word: float(v) for w, v in zip(explanation.words, explanation.attributions[tag])}


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_a_toxic_word_outweighs_a_neutral_one(minilm_insult_direction, method):
    (explanation,) = minilm_insult_direction.explain(SENTENCE, method=method)
    for tag in ("toxic", "insult"):
        words = by_word(explanation, tag)
        assert words[TOXIC] > 0 > words[NEUTRAL], words
        assert explanation.top(tag, 1)[0].word == TOXIC
    assert explanation.scores == pytest.approx(
        minilm_insult_direction.predict(SENTENCE), abs=1e-5
    )  # the score explained is the score predict() gives


def test_offsets_slice_back_to_the_words_pieces_merged_and_special_tokens_dropped(minilm_insult_direction):
    text = "  Unbelievably   rude:\tyou idiots!! café 😀 ok"
    (explanation,) = minilm_insult_direction.explain(text, tags="toxic", method="gradient_x_input")
    words = [w.word for w in explanation.words]
    assert all(text[w.start : w.end] == w.word for w in explanation.words)
    assert words[:3] == ["Unbelievably", "rude", ":"]  # "unbelievably" is several pieces: one word
    assert "idiots" in words and "café" in words and "[CLS]" not in words and "[SEP]" not in words
    assert explanation.attributions["toxic"].shape == (len(words),)
    assert list(explanation.attributions) == ["toxic"]


def test_integrated_gradients_add_up_to_the_logit_above_the_baseline(minilm_insult_direction):
    model = minilm_insult_direction.model
    tokenized = tokenized_with_words(model.tokenizer, SENTENCE, 128)
    attributor = Attributor(model, 128, steps=64)
    explanation = attributor.explain(SENTENCE, [0, 1], "integrated_gradients")
    ids = torch.tensor([tokenized.input_ids])
    baseline = torch.where(torch.as_tensor(tokenized.token_word < 0), ids, model.tokenizer.pad_token_id)
    with torch.no_grad():
        gap = (model(ids, torch.ones_like(ids)) - model(baseline, torch.ones_like(ids)))[0].numpy()
    totals = [explanation.attributions[tag].sum() for tag in ("toxic", "insult")]
    np.testing.assert_allclose(totals, gap, rtol=0.02, atol=0.05)


def test_a_word_cut_off_by_max_length_is_listed_with_no_encoder_share(minilm_insult_direction):
    model = minilm_insult_direction.model
    text = "thanks " * 20 + "idiot"
    explanation = Attributor(model, max_length=12).explain(text, [0], "integrated_gradients")
    assert explanation.words[-1].word == "idiot" and explanation.attributions["toxic"][-1] == 0.0


def test_bad_input_is_refused_as_predict_refuses_it(minilm_insult_direction):
    with pytest.raises(TypeError, match="texts\\[1\\] is NoneType"):
        minilm_insult_direction.explain(["fine", None])
    with pytest.raises(TypeError, match="dict"):
        minilm_insult_direction.explain({"a": "b"})
    with pytest.raises(ValueError, match="unknown tag.*'threat'.*tags are \\['toxic', 'insult'\\]"):
        minilm_insult_direction.explain("fine", tags=["threat"])
    with pytest.raises(ValueError, match="method must be one of"):
        minilm_insult_direction.explain("fine", method="shap")
    (empty,) = minilm_insult_direction.explain("   ")
    assert empty.words == () and empty.attributions["toxic"].shape == (0,)


# --------------------------------------------------------------------------------------------- the hybrid
@pytest.fixture(scope="module")
def tiny_hybrid():
    torch.manual_seed(0)
    model = HybridTagger(encoder_config=TINY_ENCODER, pooling="mean", ngram_buckets=4096).eval()
    with torch.no_grad():
        model.ngrams.weight.normal_()
    return model


HYBRID_TEXTS = ["you idiot!! you IDIOT", "Café crème, s'il vous plaît", "y0u 1d10t", "x", "a " * 40 + "moron"]


def test_occurrences_are_the_ngrams_the_hasher_counts():
    hasher = NgramHasher(4096)
    words, chars = hasher._vectorizers
    for text in HYBRID_TEXTS:
        counts = (words.transform([text]) + chars.transform([text])).tocsr()
        expected = dict(zip(counts.indices.tolist(), counts.data.tolist()))
        assert Counter(bucket for bucket, _ in occurrences(hasher, text)) == expected


@pytest.mark.parametrize("text", HYBRID_TEXTS)
def test_hybrid_ngram_shares_sum_exactly_to_the_branch_logit(tiny_hybrid, text):
    words = tokenized_with_words(tiny_hybrid.tokenizer, text, 16).words
    shares = ngram_word_shares(tiny_hybrid.ngram_hasher, tiny_hybrid.ngrams.weight, text, words)
    bag = tiny_hybrid.ngram_hasher.matrix([text])
    branch = bag @ tiny_hybrid.ngrams.weight.detach().double().numpy()  # the branch's logits, in float64
    np.testing.assert_allclose(shares.sum(axis=0), np.asarray(branch)[0], rtol=1e-12, atol=1e-12)


def test_hybrid_attributions_are_the_encoders_plus_the_exact_ngram_shares(tiny_hybrid):
    text = "you idiot, thanks"
    attributor = Attributor(tiny_hybrid, 48)
    explanation = attributor.explain(text, [0, 3], "integrated_gradients")
    words = explanation.words
    shares = ngram_word_shares(tiny_hybrid.ngram_hasher, tiny_hybrid.ngrams.weight, text, words)
    tokenized = tokenized_with_words(tiny_hybrid.tokenizer, text, 48)
    encoder_only = attributor.gradient(text, tokenized, [0, 3], "integrated_gradients")
    np.testing.assert_allclose(
        explanation.attributions["toxic"], encoder_only[0] + shares[:, 0], rtol=1e-5, atol=1e-6
    )
    # occlusion re-hashes the text without the word: it sees both branches change
    occluded = attributor.explain(text, [0], "occlusion").attributions["toxic"]
    full = text_logits(tiny_hybrid, [text], 48)[0, 0]
    alone = text_logits(tiny_hybrid, [without_words(text, words, [1])], 48)[0, 0]
    assert occluded[1] == pytest.approx(full - alone, abs=1e-6)


# --------------------------------------------------------------------------- text-to-text and a new family
def test_text2text_refuses_gradients_naming_occlusion_which_works():
    from transformers import BertConfig, EncoderDecoderConfig

    shape = {
        "vocab_size": 30522,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
    }
    config = EncoderDecoderConfig.from_encoder_decoder_configs(
        BertConfig(**shape), BertConfig(**shape, is_decoder=True, add_cross_attention=True)
    )
    model = TextToTextTagger(model_config=config.to_dict(), max_length=64, max_target_length=4).eval()
    classifier = ToxicityClassifier(model, max_length=64)
    with pytest.raises(ValueError, match="greedy generation.*method='occlusion'"):
        classifier.explain("you idiot", method="integrated_gradients")
    (explanation,) = classifier.explain("you idiot", method="occlusion")
    assert [w.word for w in explanation.words] == ["you", "idiot"]
    assert all(np.isfinite(values).all() for values in explanation.attributions.values())


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_x_input", "occlusion"])
def test_explaining_works_under_inference_mode_as_a_serving_loop_may_call_it(minilm_insult_direction, method):
    with torch.inference_mode():
        (inside,) = minilm_insult_direction.explain("you idiot", tags="toxic", method=method)
    (outside,) = minilm_insult_direction.explain("you idiot", tags="toxic", method=method)
    np.testing.assert_allclose(inside.attributions["toxic"], outside.attributions["toxic"], rtol=1e-5)


def test_a_plugin_family_gets_explanations_with_no_code_of_its_own():
    """The toy family (tests/models/toy_family.py) defines no attribution hook: the shared default finds
    its encoder's embeddings, and its own input (the text's length) is held fixed, so it is no word's."""
    torch.manual_seed(0)
    model = CharLengthTagger(encoder_config=TINY_ENCODER, pooling="mean").eval()
    classifier = ToxicityClassifier(model, max_length=48)
    for method in ("integrated_gradients", "gradient_x_input", "occlusion"):
        (explanation,) = classifier.explain("you idiot, thanks", method=method)
        assert [w.word for w in explanation.words] == ["you", "idiot", ",", "thanks"]
        assert set(explanation.attributions) == set(model.labels)
        assert all(np.isfinite(v).all() and np.abs(v).sum() > 0 for v in explanation.attributions.values())
