"""Typed evaluation results: built once by `evaluator.compute_results`, read by the report, the TensorBoard
scalars, the baseline and the tests, and written as metrics.json (whose keys are published: `to_json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from toxicity.evaluation.metrics import CalibrationReport, DecisionReport, RankingReport
from toxicity.evaluation.thresholds import apply_thresholds


@dataclass(frozen=True)
class TunedThresholds:
    """Per-tag thresholds tuned on validation rows, and the 0/1 decisions they give on the evaluated rows."""

    label: str  # how the decisions were made: "cross-fitted" or "tuned on validation"
    rule: str | None  # None when read from a file tuned earlier
    thresholds: dict[str, float]
    description: str
    decisions: np.ndarray = field(repr=False)

    @classmethod
    def applied(
        cls, label: str, rule: str | None, thresholds: dict[str, float], description: str, probs: np.ndarray
    ) -> TunedThresholds:
        """Thresholds applied as they are to `probs` (columns in the order of `thresholds`)."""
        return cls(label, rule, thresholds, description, apply_thresholds(probs, list(thresholds.values())))


@dataclass(frozen=True)
class TunedScores:
    thresholds: TunedThresholds
    report: DecisionReport


@dataclass(frozen=True)
class KaggleScore:
    score: float | None  # mean column-wise ROC AUC
    scored_rows: int
    tags: int


@dataclass
class EvalResults:
    """Everything an evaluation found; `plots` and `notes` are filled in as figures are drawn."""

    name: str
    checkpoint: str
    data: str
    split: str
    rows: int
    tags: list[str]
    tags_left_out: list[str]
    ranking: RankingReport
    calibration: CalibrationReport
    default_threshold: float
    default: DecisionReport
    tuned: TunedScores | None = None
    kaggle: KaggleScore | None = None
    bias: dict | None = None  # toxicity.evaluation.bias.bias_report
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    speed: dict[str, float | None] | None = None  # the baseline's training and scoring speed
    explained_errors: str | None = None  # the page of the most confident errors (evaluate --explain-errors)

    def to_json(self) -> dict:
        """metrics.json: the published layout (keys unchanged since the first release)."""
        tuned = None
        if self.tuned:
            chosen = self.tuned.thresholds
            tuned = {
                "label": chosen.label,
                "rule": chosen.rule,
                "thresholds": chosen.thresholds,
                "description": chosen.description,
                "report": asdict(self.tuned.report),
            }
        published = {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "data": self.data,
            "split": self.split,
            "rows": self.rows,
            "tags": self.tags,
            "tags_left_out": self.tags_left_out,
            "ranking": asdict(self.ranking),
            "calibration": asdict(self.calibration),
            "default": {"threshold": self.default_threshold, "report": asdict(self.default)},
            "tuned": tuned,
            "kaggle": asdict(self.kaggle) if self.kaggle else None,
            "bias": self.bias,
            "plots": self.plots,
            "notes": self.notes,
        }
        if self.speed is not None:
            published["speed"] = self.speed
        return published
