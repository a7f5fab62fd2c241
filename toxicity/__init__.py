"""Multi-label toxic-comment classifiers with PyTorch Lightning."""

from importlib.metadata import PackageNotFoundError, version

from toxicity.core.tags import LABELS

__all__ = ["LABELS", "ToxicityClassifier", "__version__"]

try:
    __version__ = version("toxicity")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name == "ToxicityClassifier":  # imported on first use: `import toxicity` stays light
        from toxicity.inference.scorer import ToxicityClassifier

        return ToxicityClassifier
    raise AttributeError(f"module 'toxicity' has no attribute {name!r}")
