"""The TF-IDF + logistic regression baseline, scored by the same report as a checkpoint."""

import json

import numpy as np
import pytest

from tests.helpers import make_comments
from toxicity.baseline import main
from toxicity.core.tags import LABELS
from toxicity.evaluation.baseline import TfidfTagger


def test_the_baseline_learns_the_tags_it_is_given():
    frame = make_comments(n_clean=40, n_toxic=40)
    tagger = TfidfTagger(LABELS).fit(frame["comment_text"].tolist(), frame[list(LABELS)].to_numpy())
    probs = tagger.predict_proba(["you idiot number 99, stop it", "thanks for edit number 99 on the article"])
    assert probs.shape == (2, 6) and probs[0, 0] > 0.5 > probs[1, 0]  # toxic vs clean, unseen numbers


def test_a_tag_with_one_class_gets_a_constant_score():
    tagger = TfidfTagger(["a", "b"]).fit(
        ["red fox", "fox jumps", "jumps red"], np.array([[0, 1], [1, 1], [0, 1]])
    )
    assert tagger.predict_proba(["red"])[0, 1] == 1.0


def test_the_cli_reports_on_the_rows_a_fit_would_test_on(tmp_path, comments_csv):
    test = tmp_path / "test.csv"
    make_comments(n_clean=10, n_toxic=10).to_csv(test, index=False)
    results = main(
        ["--data", str(comments_csv), "--test-path", str(test), "--output", str(tmp_path / "report")]
    )
    assert results.rows == 20 and results.tags == list(LABELS)
    assert results.tuned.thresholds.label == "tuned on validation"
    assert results.speed["score_comments_per_s"] > 0
    assert (
        json.loads((tmp_path / "report" / "metrics.json").read_text())["ranking"]["per_tag"]["toxic"][
            "roc_auc"
        ]
        > 0.5
    )
    with pytest.raises(SystemExit):
        main(["--data", str(comments_csv), "--test-path", str(test), "--output", str(tmp_path / "report")])


def test_the_peer_is_scored_through_the_same_report(tmp_path, comments_csv):
    pytest.importorskip("profanity_check", reason="alt-profanity-check is an optional dependency (.[peer])")
    test = tmp_path / "test.csv"
    make_comments(n_clean=10, n_toxic=10).to_csv(test, index=False)
    results = main(
        [
            "--data",
            str(comments_csv),
            "--test-path",
            str(test),
            "--model",
            "peer",
            "--output",
            str(tmp_path / "peer"),
        ]
    )
    per_tag = results.ranking.per_tag
    assert results.checkpoint.startswith("alt-profanity-check") and per_tag["toxic"].roc_auc > 0.5
