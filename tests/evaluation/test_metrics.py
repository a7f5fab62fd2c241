"""Metrics, thresholds and bias scores on small fixed arrays, against scikit-learn and hand computation."""

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold

from toxicity.checkpoint import load_thresholds, save_thresholds
from toxicity.evaluation.bias import bias_report, power_mean
from toxicity.evaluation.metrics import (
    calibration_report,
    decision_report,
    expected_calibration_error,
    kaggle_score,
    ranking_report,
    reliability_bins,
)
from toxicity.evaluation.thresholds import (
    ThresholdRule,
    apply_thresholds,
    cross_fitted_decisions,
    parse_rule,
    tune_threshold,
    tune_thresholds,
)

TAGS = ["a", "b", "never"]


@pytest.fixture
def fixture_arrays():
    """40 rows, 3 tags; tag `never` has no positives (its AUC and AP are undefined)."""
    rng = np.random.default_rng(7)
    y_true = np.zeros((40, 3), dtype=np.int64)
    y_true[:12, 0] = 1
    y_true[5:9, 1] = 1
    y_prob = np.clip(0.5 * y_true + rng.uniform(0, 0.6, size=y_true.shape), 0, 1)
    return y_true, y_prob


# ---------------------------------------------------------------------------------------------- ranking
def test_ranking_matches_sklearn_and_marks_undefined_auc(fixture_arrays):
    y_true, y_prob = fixture_arrays
    report = ranking_report(y_true, y_prob, TAGS)
    for k, tag in enumerate(TAGS[:2]):
        row = report.per_tag[tag]
        assert row.roc_auc == pytest.approx(roc_auc_score(y_true[:, k], y_prob[:, k]))
        assert row.average_precision == pytest.approx(average_precision_score(y_true[:, k], y_prob[:, k]))
        assert row.positives == y_true[:, k].sum() and row.true_prevalence == pytest.approx(
            y_true[:, k].mean()
        )
    never = report.per_tag["never"]
    assert never.roc_auc is None and never.average_precision is None and never.positives == 0
    assert report.tags_with_defined_auc == 2
    assert report.roc_auc_macro == pytest.approx(roc_auc_score(y_true[:, :2], y_prob[:, :2], average="macro"))
    assert report.roc_auc_micro == pytest.approx(roc_auc_score(y_true, y_prob, average="micro"))
    assert report.average_precision_micro == pytest.approx(
        average_precision_score(y_true, y_prob, average="micro")
    )


def test_kaggle_score_is_sklearn_macro_auc_and_skips_one_class_tags(fixture_arrays):
    y_true, y_prob = fixture_arrays
    assert kaggle_score(y_true[:, :2], y_prob[:, :2]) == pytest.approx(
        roc_auc_score(y_true[:, :2], y_prob[:, :2], average="macro")
    )
    assert kaggle_score(y_true, y_prob) == pytest.approx(kaggle_score(y_true[:, :2], y_prob[:, :2]))
    assert kaggle_score(y_true[:, 2:], y_prob[:, 2:]) is None


# -------------------------------------------------------------------------------------------- decisions
def test_decision_report_matches_sklearn(fixture_arrays):
    y_true, y_prob = fixture_arrays
    y_pred = (y_prob >= 0.5).astype(int)
    report = decision_report(y_true, y_pred, TAGS)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    for k, tag in enumerate(TAGS):
        row = report.per_tag[tag]
        assert (row.precision, row.recall, row.f1) == pytest.approx((p[k], r[k], f[k]))
        assert row.support == s[k]
        assert row.predicted_positive_rate == pytest.approx(y_pred[:, k].mean())
    assert report.per_tag["never"].recall == 0.0  # 0/0 with zero_division=0
    for average in ("micro", "macro", "weighted"):
        expected = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)[:3]
        got = report.averages[average]
        assert (got.precision, got.recall, got.f1) == pytest.approx(expected)
    expected = precision_recall_fscore_support(y_true, y_pred, average="samples", zero_division=1.0)[:3]
    got = report.averages["samples"]
    assert (got.precision, got.recall, got.f1) == pytest.approx(expected)
    assert report.subset_accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert report.hamming_accuracy == pytest.approx(1 - hamming_loss(y_true, y_pred))


def test_decision_report_for_a_single_tag_is_binary():
    y_true = np.array([[1], [0], [1], [0], [1]])
    y_pred = np.array([[1], [1], [0], [0], [1]])
    report = decision_report(y_true, y_pred, ["toxic"])
    row = report.per_tag["toxic"]
    assert (row.precision, row.recall, row.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert row.support == 3
    assert report.averages["macro"].f1 == pytest.approx(f1_score(y_true[:, 0], y_pred[:, 0]))
    assert report.averages["samples"] is None
    assert report.subset_accuracy == pytest.approx(0.6) and report.hamming_accuracy == pytest.approx(0.6)


def test_a_one_tag_report_gives_tweeteval_macro_f1_of_both_classes():
    """The figure the README's TweetEval rows quote: toxicity baseline and evaluate print it too."""
    from toxicity.evaluation.report import both_classes_f1

    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true, y_pred = rng.integers(0, 2, (50, 1)), rng.integers(0, 2, (50, 1))
        report = decision_report(y_true, y_pred, ["offensive"])
        expected = f1_score(y_true[:, 0], y_pred[:, 0], average="macro")
        assert both_classes_f1(report, len(y_true)) == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ calibration
def test_expected_calibration_error_by_hand():
    y_true = np.array([0, 0, 1, 1])
    y_prob = np.array([0.05, 0.15, 0.85, 0.95])  # four bins of one row: gaps 0.05, 0.15, 0.15, 0.05
    assert expected_calibration_error(y_true, y_prob, n_bins=10) == pytest.approx(0.1)
    y_prob = np.array(
        [0.1, 0.3, 0.7, 0.9]
    )  # 2 bins: [0, .5) mean .2 with 0 positives, [.5, 1] mean .8 all positive
    assert expected_calibration_error(y_true, y_prob, n_bins=2) == pytest.approx(0.2)


def test_reliability_bins_match_sklearn(fixture_arrays):
    y_true, y_prob = fixture_arrays
    prob_true, prob_pred, counts = reliability_bins(y_true[:, 0], y_prob[:, 0], n_bins=10)
    expected_true, expected_pred = calibration_curve(y_true[:, 0], y_prob[:, 0], n_bins=10)
    assert np.allclose(prob_true, expected_true) and np.allclose(prob_pred, expected_pred)
    assert counts.sum() == len(y_true) and len(counts) == len(prob_true)
    report = calibration_report(y_true, y_prob, TAGS, n_bins=10)
    assert set(report.ece) == set(TAGS) and report.ece["never"] >= 0  # defined without positives too


# ------------------------------------------------------------------------------------------- thresholds
CRAFTED_LABELS = np.array([0, 0, 1, 0, 1, 1])
CRAFTED_PROBS = np.array([0.1, 0.3, 0.35, 0.6, 0.8, 0.9])
# threshold -> F1: 0.1 -> .667, 0.3 -> .75, 0.35 -> .857 (best), 0.6 -> .667, 0.8 -> .8, 0.9 -> .5


def test_f1_rule_picks_the_f1_optimal_threshold():
    chosen = tune_threshold(CRAFTED_LABELS, CRAFTED_PROBS, ThresholdRule("f1"))
    assert chosen == pytest.approx(0.35)
    f1_at = {t: f1_score(CRAFTED_LABELS, CRAFTED_PROBS >= t) for t in CRAFTED_PROBS}
    assert f1_score(CRAFTED_LABELS, CRAFTED_PROBS >= chosen) == max(f1_at.values())


def test_macro_f1_rule_picks_the_best_mean_of_both_classes_f1():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    probs = np.round(np.clip(0.35 * labels + 0.65 * rng.random(400), 0, 1), 2)  # ties, as real scores have
    chosen = tune_threshold(labels, probs, parse_rule("macro_f1"))
    macro_at = {t: f1_score(labels, probs >= t, average="macro") for t in np.unique(probs)}
    assert f1_score(labels, probs >= chosen, average="macro") == pytest.approx(max(macro_at.values()))
    assert chosen != tune_threshold(labels, probs, ThresholdRule("f1"))  # a different rule, not the same cut


def test_other_rules():
    assert tune_threshold(CRAFTED_LABELS, CRAFTED_PROBS, parse_rule("precision>=0.9")) == pytest.approx(0.8)
    assert tune_threshold(CRAFTED_LABELS, CRAFTED_PROBS, parse_rule("recall>=1")) == pytest.approx(0.35)
    # Youden's J = TPR - FPR: at 0.35 it is 1 - 1/3, the highest
    assert tune_threshold(CRAFTED_LABELS, CRAFTED_PROBS, parse_rule("youden")) == pytest.approx(0.35)
    assert (
        tune_threshold(np.zeros(6, dtype=int), CRAFTED_PROBS, parse_rule("f1")) == 0.5
    )  # one class: default
    with pytest.raises(ValueError, match="precision>=X"):
        parse_rule("accuracy")
    with pytest.raises(ValueError):
        parse_rule("precision>=1.5")


def test_thresholds_apply_with_greater_or_equal_and_round_trip_a_file(tmp_path):
    thresholds = tune_thresholds(
        CRAFTED_LABELS[:, None], CRAFTED_PROBS[:, None], ["toxic"], ThresholdRule("f1")
    )
    assert apply_thresholds(CRAFTED_PROBS[:, None], [thresholds["toxic"]])[:, 0].tolist() == [
        0,
        0,
        1,
        1,
        1,
        1,
    ]
    path = tmp_path / "best.thresholds.json"
    save_thresholds(path, thresholds)
    assert load_thresholds(path) == thresholds
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="tag: threshold"):
        load_thresholds(path)


def test_cross_fitting_decides_each_fold_with_thresholds_from_the_other_folds(fixture_arrays):
    y_true, y_prob = fixture_arrays
    rule = ThresholdRule("f1")
    decisions = cross_fitted_decisions(y_true, y_prob, rule, folds=4, seed=1)
    labels, probs = y_true[:, 1], y_prob[:, 1]  # 4 positives: 4 folds of one positive each
    for tune_rows, held_out in StratifiedKFold(4, shuffle=True, random_state=1).split(probs, labels):
        threshold = tune_threshold(labels[tune_rows], probs[tune_rows], rule)
        assert (decisions[held_out, 1] == (probs[held_out] >= threshold)).all()
    assert (decisions[:, 2] == (y_prob[:, 2] >= 0.5)).all()  # no positives: decided at 0.5


# ------------------------------------------------------------------------------------------------- bias
def test_bias_metrics_match_a_hand_computed_example():
    # rows 0-3 mention identity `one`, rows 4-7 identity `two`; labels and identities are fractions
    labels = np.array([0.7, 1.0, 0.3, 0.0, 0.5, 0.66, 0.1, 0.0])  # -> 1 1 0 0 1 1 0 0
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.65, 0.7, 0.2])
    one = np.array([0.6, 1.0, 0.5, 0.9, np.nan, 0.0, 0.2, 0.4])  # -> 1 1 1 1 0 0 0 0 (NaN: not mentioned)
    two = np.array([0.0, 0.0, 0.1, 0.0, 1.0, 0.8, 0.5, 0.95])  # -> 0 0 0 0 1 1 1 1
    nobody = np.zeros(8)
    report = bias_report(labels, scores, {"one": one, "two": two, "nobody": nobody})
    # AUC = share of (positive, negative) pairs where the positive scores higher.
    # one: subgroup {.9,.4} vs {.6,.1}: 3/4; BPSN background pos {.8,.65} vs subgroup neg {.6,.1}: 4/4;
    #      BNSP subgroup pos {.9,.4} vs background neg {.7,.2}: 3/4
    # two: subgroup {.8,.65} vs {.7,.2}: 3/4; BPSN {.9,.4} vs {.7,.2}: 3/4; BNSP {.8,.65} vs {.6,.1}: 4/4
    assert report["per_identity"]["one"] == {
        "rows": 4,
        "positives": 2,
        "subgroup_auc": 0.75,
        "bpsn_auc": 1.0,
        "bnsp_auc": 0.75,
    }
    assert report["per_identity"]["two"] == {
        "rows": 4,
        "positives": 2,
        "subgroup_auc": 0.75,
        "bpsn_auc": 0.75,
        "bnsp_auc": 1.0,
    }
    assert "nobody" not in report["per_identity"]
    assert report["overall_auc"] == pytest.approx(13 / 16)  # pos {.9,.4,.8,.65} vs neg {.6,.1,.7,.2}
    mixed = ((0.75**-5 + 1.0**-5) / 2) ** (-1 / 5)  # power mean, p = -5, of 0.75 and 1.0 (= 0.8256)
    assert mixed == pytest.approx(0.8256, abs=1e-4)
    assert report["power_means"] == pytest.approx(
        {"subgroup_auc": 0.75, "bpsn_auc": mixed, "bnsp_auc": mixed}
    )
    assert report["final_score"] == pytest.approx(0.25 * 13 / 16 + 0.25 * (0.75 + mixed + mixed))


def test_undefined_subgroup_auc_is_none_and_left_out_of_the_power_mean():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    only_positive = np.array([1, 1, 0, 0, 0, 0])
    report = bias_report(labels, scores, {"g": only_positive})
    assert report["per_identity"]["g"]["subgroup_auc"] is None
    assert report["power_means"]["subgroup_auc"] is None and report["final_score"] is None
    assert power_mean([None, 0.5, 0.5]) == pytest.approx(0.5)
    assert math.isclose(power_mean([1.0, 0.5]), ((1 + 0.5**-5) / 2) ** (-1 / 5))
