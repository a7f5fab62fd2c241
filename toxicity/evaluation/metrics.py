"""Scores for multi-label predictions, all computed by scikit-learn.

Arrays are (n_rows, n_tags): `y_true` 0/1, `y_prob` probabilities, `y_pred` 0/1 decisions.
A score that does not exist for the data (ROC AUC of a tag with no positives) is None, never 0.

Ratios that divide by zero (precision of a tag never predicted, recall of a tag with no positives) are
0 in the per-tag rows and in the micro / macro / weighted averages (`zero_division=0`, the conservative
choice). In the samples average a row with no true and no predicted tag is a correct clean prediction
and counts 1 (`zero_division=1`); otherwise the many clean rows would drag it to near zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

ZERO_DIVISION = 0.0
SAMPLES_ZERO_DIVISION = 1.0
AVERAGES = ("micro", "macro", "weighted", "samples")


@dataclass(frozen=True)
class TagRanking:
    positives: int
    true_prevalence: float
    roc_auc: float | None
    average_precision: float | None


@dataclass(frozen=True)
class RankingReport:
    """Threshold-free scores per tag, and their macro (over tags with a defined AUC) and micro means."""

    per_tag: dict[str, TagRanking]
    roc_auc_macro: float | None
    average_precision_macro: float | None
    tags_with_defined_auc: int
    roc_auc_micro: float | None
    average_precision_micro: float | None


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class TagDecisions(Scores):
    support: int
    predicted_positive_rate: float


@dataclass(frozen=True)
class DecisionReport:
    """Scores of 0/1 decisions: per tag, the averages (None where undefined), subset and Hamming accuracy."""

    per_tag: dict[str, TagDecisions]
    averages: dict[str, Scores | None]
    subset_accuracy: float
    hamming_accuracy: float

    @property
    def macro_f1(self) -> float:
        return self.averages["macro"].f1


@dataclass(frozen=True)
class CalibrationReport:
    bins: int
    ece: dict[str, float]  # expected calibration error per tag


def has_both_classes(y: np.ndarray) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def roc_auc_or_none(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """ROC AUC of one tag, or None when the rows hold only one class (the AUC is undefined)."""
    return float(roc_auc_score(y_true, y_score)) if has_both_classes(y_true) else None


def average_precision_or_none(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """Average precision of one tag, or None when the rows hold only one class."""
    return float(average_precision_score(y_true, y_score)) if has_both_classes(y_true) else None


def mean_of_defined(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


# ------------------------------------------------------------------------------- threshold-free scores
def ranking_report(y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str]) -> RankingReport:
    """Per tag: positives, true prevalence, ROC AUC, average precision; plus their macro and micro means.

    Macro is the mean over tags whose AUC is defined; micro pools every (row, tag) pair.
    """
    per_tag = {
        tag: TagRanking(
            positives=int(y_true[:, k].sum()),
            true_prevalence=float(y_true[:, k].mean()),
            roc_auc=roc_auc_or_none(y_true[:, k], y_prob[:, k]),
            average_precision=average_precision_or_none(y_true[:, k], y_prob[:, k]),
        )
        for k, tag in enumerate(tags)
    }
    aucs = [row.roc_auc for row in per_tag.values()]
    return RankingReport(
        per_tag=per_tag,
        roc_auc_macro=mean_of_defined(aucs),
        average_precision_macro=mean_of_defined([row.average_precision for row in per_tag.values()]),
        tags_with_defined_auc=sum(a is not None for a in aucs),
        roc_auc_micro=roc_auc_or_none(y_true.ravel(), y_prob.ravel()),
        average_precision_micro=average_precision_or_none(y_true.ravel(), y_prob.ravel()),
    )


def kaggle_score(y_true: np.ndarray, y_prob: np.ndarray) -> float | None:
    """The Jigsaw 2018 competition metric: mean column-wise ROC AUC (scikit-learn's macro average).

    Tags with one class in the rows are left out of the mean (None if every tag is one-class).
    """
    if all(has_both_classes(y_true[:, k]) for k in range(y_true.shape[1])):
        return float(roc_auc_score(y_true, y_prob, average="macro"))
    return mean_of_defined([roc_auc_or_none(y_true[:, k], y_prob[:, k]) for k in range(y_true.shape[1])])


# --------------------------------------------------------------------------------- scores at a decision
def _sklearn_form(y_true: np.ndarray, y_pred: np.ndarray):
    """scikit-learn reads a one-column matrix as binary; give it 1-D arrays and the positive label then."""
    if y_true.shape[1] == 1:
        return y_true[:, 0], y_pred[:, 0], [1]
    return y_true, y_pred, None


def decision_report(y_true: np.ndarray, y_pred: np.ndarray, tags: Sequence[str]) -> DecisionReport:
    """Per-tag precision, recall, F1, support and predicted-positive rate for 0/1 decisions, their
    micro / macro / weighted / samples averages, subset accuracy and Hamming accuracy."""
    true, pred, labels = _sklearn_form(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, average=None, zero_division=ZERO_DIVISION
    )
    per_tag = {
        tag: TagDecisions(
            float(precision[k]), float(recall[k]), float(f1[k]), int(support[k]), float(y_pred[:, k].mean())
        )
        for k, tag in enumerate(tags)
    }
    averages = {}
    for average in AVERAGES:
        if average == "samples" and labels is not None:
            averages[average] = None  # one tag: a row's "set of tags" is that one decision
            continue
        zero = SAMPLES_ZERO_DIVISION if average == "samples" else ZERO_DIVISION
        p, r, f, _ = precision_recall_fscore_support(
            true, pred, labels=labels, average=average, zero_division=zero
        )
        averages[average] = Scores(float(p), float(r), float(f))
    return DecisionReport(
        per_tag,
        averages,
        subset_accuracy=float(accuracy_score(true, pred)),
        hamming_accuracy=float(1.0 - hamming_loss(true, pred)),
    )


# ---------------------------------------------------------------------------------------- calibration
def reliability_bins(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10):
    """scikit-learn's equal-width calibration bins, with the number of rows in each non-empty bin.

    Returns (fraction of positives, mean probability, row count), one entry per non-empty bin.
    """
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(
        np.searchsorted(edges[1:-1], y_prob), minlength=n_bins
    )  # calibration_curve's binning
    return prob_true, prob_pred, counts[counts > 0]


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """Sum over equal-width bins of (share of rows in the bin) × |fraction positive − mean probability|."""
    prob_true, prob_pred, counts = reliability_bins(y_true, y_prob, n_bins)
    return float(np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred)))


def calibration_report(
    y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str], n_bins: int = 10
) -> CalibrationReport:
    return CalibrationReport(
        n_bins,
        {tag: expected_calibration_error(y_true[:, k], y_prob[:, k], n_bins) for k, tag in enumerate(tags)},
    )
