import logging

import numpy as np
import pandas as pd
import pytest

from tests.helpers import make_comments
from toxicity.core.tags import LABELS
from toxicity.data.augment import indicative_words, misspell, obfuscated_copies
from toxicity.data.datamodule import ToxicCommentsDataModule


def frame_of(comments: pd.DataFrame) -> pd.DataFrame:
    return comments.rename(columns={"comment_text": "text"})


def test_indicative_words_are_learned_from_the_tagged_rows():
    texts = (
        [f"you idiot, number {k}" for k in range(6)]
        + [f"thanks for the number {k} edit" for k in range(20)]
        + ["what an idiot I was to forget the link"]
    )
    tagged = np.array([True] * 6 + [False] * 21)
    scores = indicative_words(texts, tagged)
    assert "idiot" in scores  # 6 of 6 tagged rows, 1 of 21 clean ones
    assert "number" not in scores  # in every row, tagged or not
    assert (
        "thanks" not in scores and "edit" not in scores
    )  # clean rows only; "edit" is also too short to count


@pytest.mark.parametrize("word", ["idiot", "Moron", "fool", "asshole"])
def test_misspell_always_writes_the_word_another_way(word):
    rng = np.random.default_rng(0)
    written = {misspell(word, rng) for _ in range(200)}
    assert word not in written and all(variant.lower() != word.lower() for variant in written)
    assert " ".join(word) in written or ".".join(word) in written or "-".join(word) in written
    assert any(len(variant) == len(word) - 1 for variant in written)  # a letter dropped
    assert len(written) > 10


def test_copies_keep_the_tags_and_misspell_the_abusive_word(caplog):
    frame = frame_of(make_comments(n_clean=30, n_toxic=12))
    with caplog.at_level(logging.INFO, logger="toxicity.data.augment"):
        copies = obfuscated_copies(frame, LABELS, share=0.5, seed=1)
    assert len(copies) == 6 and "Obfuscated copies: 6 of 12 tagged training rows (0 skipped" in caplog.text
    originals = frame.set_index("id").loc[copies["id"]]
    assert (copies[list(LABELS)].to_numpy() == originals[list(LABELS)].to_numpy()).all()
    assert not copies["text"].str.contains("idiot").any()
    assert frame["text"].str.contains("idiot").sum() == 12  # the given rows are left as they were
    assert obfuscated_copies(frame, LABELS, share=0.5, seed=1).equals(copies)  # seeded


def test_rows_without_an_indicative_word_are_skipped_and_counted(caplog):
    frame = frame_of(make_comments(n_clean=30, n_toxic=12))
    frame.loc[frame["id"] == "t0", "text"] = "no"  # a tagged row with no word of 4+ letters
    with caplog.at_level(logging.INFO, logger="toxicity.data.augment"):
        copies = obfuscated_copies(frame, LABELS, share=1.0, seed=0)
    assert len(copies) == 11 and "(1 skipped: no indicative word)" in caplog.text


def test_datamodule_adds_copies_to_the_training_rows_only(comments_csv):
    plain = ToxicCommentsDataModule(data_path=str(comments_csv), val_fraction=0.25)
    augmented = ToxicCommentsDataModule(data_path=str(comments_csv), val_fraction=0.25, obfuscate_share=1.0)
    plain.setup(), augmented.setup()
    tagged_train = int((plain.frames["train"][list(LABELS)].max(axis=1) > 0).sum())
    assert len(augmented.frames["train"]) == len(plain.frames["train"]) + tagged_train
    assert augmented.frames["val"].equals(plain.frames["val"])


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_0_1_is_a_clear_error(share):
    with pytest.raises(
        ValueError, match="obfuscate_share is a share of the tagged training rows, from 0 to 1"
    ):
        ToxicCommentsDataModule(obfuscate_share=share)
