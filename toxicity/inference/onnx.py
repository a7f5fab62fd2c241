"""OnnxToxicityClassifier: the same scoring through onnxruntime, from a folder written by
`toxicity.export --format onnx`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from toxicity.core.errors import CheckpointError
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH
from toxicity.inference.scorer import BatchScorer

# dynamic int8 picks activation scales per run: one text per run keeps a score independent of its neighbours
INT8_TEXTS_PER_RUN = 1


ONNX_FP32, ONNX_INT8, ONNX_METADATA = (
    "model.onnx",
    "model.int8.onnx",
    "toxicity.json",
)  # an ONNX export folder


def read_onnx_folder(folder: str | Path, int8: bool = False) -> tuple[Path, dict]:
    """The model file and the metadata of a folder written by `toxicity.export --format onnx`."""
    folder = Path(folder)
    model_file = folder / (ONNX_INT8 if int8 else ONNX_FP32)
    if not (folder / ONNX_METADATA).is_file() or not model_file.is_file():
        raise CheckpointError(
            f"{folder}: no {ONNX_METADATA} and {model_file.name} in it. Export with "
            f"`toxicity export --format onnx{' --int8' if int8 else ''} --output {folder}`."
        )
    return model_file, json.loads((folder / ONNX_METADATA).read_text())


class OnnxToxicityClassifier(BatchScorer):
    """The same scoring through onnxruntime, from a folder written by `toxicity.export --format onnx`.

    Same tokenizer, truncation, length sorting and padding as ToxicityClassifier; `int8=True` loads the
    quantized model (written with --int8) and its own tuned thresholds (`int8_thresholds` in toxicity.json).
    """

    def __init__(
        self,
        session,
        tokenizer,
        tags: Sequence[str],
        max_length: int = DEFAULT_MAX_LENGTH,
        thresholds: dict[str, float] | None = None,
        batch_size: int = 64,
        truncation: str = "head",
    ):
        self.session = session
        super().__init__(tokenizer, tags, max_length, thresholds, batch_size, truncation)

    @classmethod
    def from_folder(
        cls, folder: str | Path, int8: bool = False, batch_size: int = 64, threads: int | None = None
    ) -> OnnxToxicityClassifier:
        import onnxruntime
        from transformers import AutoTokenizer

        model_file, metadata = read_onnx_folder(folder, int8)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        # int8 scores differ from fp32's a little: torch's thresholds would flip decisions,
        # so int8 has its own
        thresholds = metadata.get("int8_thresholds") if int8 else metadata.get("thresholds")
        if int8:
            batch_size = INT8_TEXTS_PER_RUN
        return cls(
            session,
            AutoTokenizer.from_pretrained(model_file.parent),
            metadata["labels"],
            metadata["max_length"],
            thresholds,
            batch_size,
            metadata.get("truncation", "head"),
        )

    def _probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return self.session.run(["probabilities"], feeds)[0]
