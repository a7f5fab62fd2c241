"""What every export shares: the encoder checkpoint it starts from, the probability model, parity checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from toxicity.checkpoint import TrainedCheckpoint
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.models.families import ENCODER

# texts of very different lengths (one past any max_length, one empty), so the check covers padding
SAMPLE_TEXTS = [
    "you are a complete idiot and everybody knows it",
    "Thanks for fixing the references, the article reads much better now.",
    "",
    "I will find you",
    "This edit removed sourced content again. " * 60,
    "ok",
]


class ExportError(ValueError):
    """A checkpoint that the asked format cannot represent exactly, or an export that fails its check."""


class ProbabilityModel(nn.Module):
    """The tagger with the sigmoid included: (input_ids, attention_mask) → per-tag probabilities."""

    def __init__(self, tagger: nn.Module):
        super().__init__()
        self.tagger = tagger

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.tagger(input_ids, attention_mask).float())


def encoder_checkpoint(ckpt_path: str | Path) -> TrainedCheckpoint:
    """The checkpoint, read once; any other family is refused with what to use instead.

    A text-to-text model scores by generating (a loop of decoder steps with its own stopping rule), and a
    hybrid one reads hashed n-grams computed outside the graph (scikit-learn's HashingVectorizer): neither
    a single ONNX graph of ours nor a stock Hugging Face classification head represents them.
    """
    checkpoint = TrainedCheckpoint.read(ckpt_path)
    if checkpoint.family != ENCODER:
        raise ExportError(
            f"{ckpt_path}: a {checkpoint.family} checkpoint; export supports encoder checkpoints "
            "only. Score it with ToxicityClassifier.from_checkpoint or `python -m toxicity.predict`, "
            "or serve the checkpoint itself."
        )
    return checkpoint


def encoder_classifier(ckpt_path: str | Path) -> ToxicityClassifier:
    """The checkpoint's classifier on the CPU (encoder checkpoints only)."""
    return ToxicityClassifier.from_trained(encoder_checkpoint(ckpt_path), "cpu")


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def checked_difference(export: Path, exported: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """The largest difference from PyTorch's probabilities; raises ExportError above `tolerance`."""
    difference = max_abs_diff(exported, expected)
    if difference > tolerance:
        raise ExportError(
            f"{export}: scores differ from PyTorch's by {difference:.1e} "
            f"(more than {tolerance}) on the sample texts; do not use this export."
        )
    return difference
