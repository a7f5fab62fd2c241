"""Multi-label toxic-comment classifiers with PyTorch Lightning."""

from toxicity.core.tags import LABELS

__all__ = ["LABELS", "ToxicityClassifier"]


def __getattr__(name: str):
    if name == "ToxicityClassifier":  # imported on first use: `import toxicity` stays light
        from toxicity.inference.scorer import ToxicityClassifier

        return ToxicityClassifier
    raise AttributeError(f"module 'toxicity' has no attribute {name!r}")
