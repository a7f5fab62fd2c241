"""Scoring comments with a trained model: PyTorch and ONNX scorers, and whole table files."""
