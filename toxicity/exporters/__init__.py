"""A trained encoder as ONNX (fp32, int8) or a Hugging Face folder, each checked against PyTorch."""
