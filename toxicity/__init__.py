"""Multi-label toxic-comment classifiers with PyTorch Lightning."""

from toxicity.labels import LABELS

__all__ = ["LABELS"]
