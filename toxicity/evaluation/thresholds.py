"""Per-tag decision thresholds: chosen on validation by a rule, kept next to the checkpoint.

Rules: `f1` (the threshold with the highest F1), `youden` (highest TPR − FPR), `precision>=X` (the highest
recall among thresholds with precision ≥ X) and `recall>=X` (the highest precision among thresholds with
recall ≥ X). A candidate threshold is a score seen in the data; a row is positive when its probability
is ≥ the threshold. A tag with only one class in the rows keeps the default 0.5.

Reporting tuned thresholds on the rows they were tuned on flatters them. `cross_fitted_decisions`
gives honest decisions for the validation split itself: each fold is decided with thresholds tuned on
the other folds (stratified per tag).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.model_selection import StratifiedKFold

from toxicity.evaluation.metrics import has_both_classes

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
_BOUND = re.compile(r"^(precision|recall)\s*>=\s*([0-9]*\.?[0-9]+)$")


@dataclass(frozen=True)
class ThresholdRule:
    name: str  # "f1", "macro_f1", "youden", "precision" or "recall"
    minimum: float | None = None  # the X of precision>=X / recall>=X

    def __str__(self) -> str:
        return self.name if self.minimum is None else f"{self.name}>={self.minimum:g}"


DEFAULT_RULE = ThresholdRule("f1")


def parse_rule(text: str) -> ThresholdRule:
    text = text.strip().lower()
    if text in ("f1", "macro_f1", "youden"):
        return ThresholdRule(text)
    bound = _BOUND.match(text)
    if bound and 0.0 <= float(bound.group(2)) <= 1.0:
        return ThresholdRule(bound.group(1), float(bound.group(2)))
    raise ValueError(
        f"Unknown threshold rule {text!r}: use f1, macro_f1, youden, precision>=X or recall>=X "
        "with X between 0 and 1 (e.g. precision>=0.9)."
    )


def tune_threshold(y_true: np.ndarray, y_prob: np.ndarray, rule: ThresholdRule) -> float:
    """The threshold for one tag that `rule` prefers (0.5 when the rows hold a single class)."""
    if not has_both_classes(y_true):
        return DEFAULT_THRESHOLD
    if rule.name == "macro_f1":
        return macro_f1_threshold(y_true, y_prob)
    if rule.name == "youden":
        fpr, tpr, thresholds = roc_curve(y_true, y_prob)
        return float(min(thresholds[np.argmax(tpr - fpr)], 1.0))  # roc_curve's first threshold is +inf
    precision, recall, thresholds = precision_recall_curve(y_true, y_prob)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    if rule.name == "f1":
        total = precision + recall
        f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
        return float(thresholds[np.argmax(f1)])
    achieved, other = (precision, recall) if rule.name == "precision" else (recall, precision)
    allowed = achieved >= rule.minimum
    if not allowed.any():
        log.warning("No threshold reaches %s; using the one with the highest %s.", rule, rule.name)
        return float(thresholds[np.argmax(achieved)])
    candidates = np.flatnonzero(allowed)
    best = candidates[np.lexsort((achieved[candidates], other[candidates]))[-1]]  # best other, then achieved
    return float(thresholds[best])


def macro_f1_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The threshold with the best mean of the F1 of both classes (the TweetEval leaderboard's metric)."""
    order = np.argsort(-y_prob, kind="stable")
    labels, probs = np.asarray(y_true)[order].astype(float), np.asarray(y_prob)[order]
    true_pos, false_pos = np.cumsum(labels), np.cumsum(1 - labels)  # predicting the top k rows positive
    false_neg, true_neg = labels.sum() - true_pos, (1 - labels).sum() - false_pos
    f1_positive = 2 * true_pos / (2 * true_pos + false_pos + false_neg)
    f1_negative = np.divide(
        2 * true_neg,
        2 * true_neg + false_neg + false_pos,
        out=np.zeros_like(true_neg),
        where=(2 * true_neg + false_neg + false_pos) > 0,
    )
    last_of_ties = np.r_[probs[1:] != probs[:-1], True]
    best = np.argmax(np.where(last_of_ties, f1_positive + f1_negative, -1.0))
    return float(probs[best])


def tune_thresholds(
    y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str], rule: ThresholdRule
) -> dict[str, float]:
    one_class = [tag for k, tag in enumerate(tags) if not has_both_classes(y_true[:, k])]
    if one_class:
        log.warning(
            "Tags with a single class in the tuning rows keep threshold %.1f: %s",
            DEFAULT_THRESHOLD,
            one_class,
        )
    return {tag: tune_threshold(y_true[:, k], y_prob[:, k], rule) for k, tag in enumerate(tags)}


def apply_thresholds(y_prob: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    return (y_prob >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)


def cross_fitted_decisions(
    y_true: np.ndarray, y_prob: np.ndarray, rule: ThresholdRule, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """0/1 decisions where every row is decided by a threshold tuned without it.

    Per tag, rows are split into stratified folds (at most `folds`, at least one positive and one
    negative in each); a tag with fewer than 2 positives or 2 negatives is decided at 0.5.
    """
    decisions = np.zeros_like(y_true, dtype=np.int64)
    for k in range(y_true.shape[1]):
        labels, probs = y_true[:, k], y_prob[:, k]
        n_splits = min(folds, int(labels.sum()), int(len(labels) - labels.sum()))
        if n_splits < 2:
            decisions[:, k] = probs >= DEFAULT_THRESHOLD
            continue
        for tune_rows, held_out in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(
            probs, labels
        ):
            threshold = tune_threshold(labels[tune_rows], probs[tune_rows], rule)
            decisions[held_out, k] = probs[held_out] >= threshold
    return decisions
