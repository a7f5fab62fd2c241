"""Evaluation figures, drawn with matplotlib's Agg renderer (no display needed).

Each function returns a `matplotlib.figure.Figure` built without pyplot, so nothing global is kept
open; `save_png` writes one atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from toxicity.core.files import atomic_output
from toxicity.evaluation.metrics import average_precision_or_none, has_both_classes, roc_auc_or_none


def new_figure(title: str, size=(6.4, 4.8)):
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def save_png(figure: Figure, path: str | Path) -> None:
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def roc_curves(y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str]) -> Figure:
    figure, axes = new_figure("ROC curves")
    for k, tag in enumerate(tags):
        if has_both_classes(y_true[:, k]):
            fpr, tpr, _ = roc_curve(y_true[:, k], y_prob[:, k])
            axes.plot(fpr, tpr, label=f"{tag} (AUC {roc_auc_or_none(y_true[:, k], y_prob[:, k]):.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right", fontsize="small")
    return figure


def precision_recall_curves(y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str]) -> Figure:
    figure, axes = new_figure("Precision-recall curves")
    for k, tag in enumerate(tags):
        if has_both_classes(y_true[:, k]):
            precision, recall, _ = precision_recall_curve(y_true[:, k], y_prob[:, k])
            ap = average_precision_or_none(y_true[:, k], y_prob[:, k])
            axes.step(
                recall,
                precision,
                where="post",
                label=f"{tag} (AP {ap:.3f}, prevalence {y_true[:, k].mean():.3f})",
            )
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper right", fontsize="small")
    return figure


def tag_frequencies(y_true: np.ndarray, tags: Sequence[str]) -> Figure:
    figure, axes = new_figure(f"Rows with each tag (of {len(y_true)})")
    counts = y_true.sum(axis=0)
    bars = axes.bar(list(tags), counts)
    axes.bar_label(
        bars, labels=[f"{int(c)} ({c / max(len(y_true), 1):.1%})" for c in counts], fontsize="small"
    )
    axes.set(ylabel="rows")
    axes.tick_params(axis="x", labelrotation=30)
    return figure


def clean_vs_toxic(y_true: np.ndarray) -> Figure:
    figure, axes = new_figure("Clean rows (no tag) vs rows with at least one tag")
    tagged = int(y_true.any(axis=1).sum())
    bars = axes.bar(
        ["clean", "toxic (any tag)"], [len(y_true) - tagged, tagged], color=["tab:green", "tab:red"]
    )
    axes.bar_label(bars)
    axes.set(ylabel="rows")
    return figure


def token_lengths(lengths: np.ndarray, max_length: int) -> Figure:
    figure, axes = new_figure("Tokens per text (before truncation)")
    axes.hist(lengths, bins=50, color="tab:blue")
    truncated = float(np.mean(lengths > max_length)) if len(lengths) else 0.0
    axes.axvline(
        max_length,
        color="tab:red",
        linestyle="--",
        label=f"max_length {max_length}: {truncated:.1%} of texts truncated",
    )
    axes.set(xlabel="tokens (with special tokens)", ylabel="texts")
    axes.legend()
    return figure


def reliability_diagram(
    y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str], eces: Mapping[str, float], n_bins: int = 10
) -> Figure:
    figure, axes = new_figure(f"Reliability diagram ({n_bins} equal-width bins)")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for k, tag in enumerate(tags):
        prob_true, prob_pred = calibration_curve(
            y_true[:, k], y_prob[:, k], n_bins=n_bins, strategy="uniform"
        )
        axes.plot(prob_pred, prob_true, marker="o", label=f"{tag} (ECE {eces[tag]:.3f})")
    axes.set(xlabel="mean predicted probability", ylabel="fraction of positives", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper left", fontsize="small")
    return figure


def learning_rate_schedule(series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    figure, axes = new_figure("Learning rate during training")
    for tag, (steps, values) in series.items():
        axes.plot(steps, values, marker=".", label=tag)
    axes.set(xlabel="optimizer step", ylabel="learning rate")
    axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axes.legend(fontsize="small")
    return figure
