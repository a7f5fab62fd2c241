"""Scoring comments with a trained model: PyTorch and ONNX scorers, whole table files, and tables too big
for one process, sharded over Lightning's DDP (distributed: the Lightning pieces; shards: the folder's
format and merge; manifest: the job a folder belongs to; launch: the launcher's environment; sharded: the
run the predict command starts)."""

__all__ = ["OnnxToxicityClassifier", "ToxicityClassifier"]

_HOMES = {"ToxicityClassifier": "scorer", "OnnxToxicityClassifier": "onnx"}


def __getattr__(name: str):
    if name in _HOMES:  # imported on first use: the package stays light for the commands' --help
        from importlib import import_module

        return getattr(import_module(f"toxicity.inference.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'toxicity.inference' has no attribute {name!r}")
