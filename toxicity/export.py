"""`python -m toxicity.export`: a checkpoint as ONNX (fp32, optionally int8) or as a Hugging Face folder.

    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format onnx --int8 --out exported/
    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format hf --out exported/

ONNX (any pooling): `model.onnx` maps input_ids and attention_mask (int64, dynamic batch and sequence
axes) to `probabilities` (sigmoid of the tag logits). Beside it: the tokenizer and `toxicity.json`
(tags, max_length, tuned thresholds, family, backbone), which `toxicity.classifier.OnnxToxicityClassifier`
reads. --int8 also writes `model.int8.onnx`: int8 weights (per channel), activations quantized on the fly
by onnxruntime. After writing, the export scores a few sample texts through onnxruntime and through PyTorch and fails
if the fp32 model differs by more than 1e-4 (the int8 difference is reported, not checked).
The legacy TorchScript exporter (`dynamo=False`) is used: the dynamo exporter needs `onnxscript`.

Hugging Face (pooling="pooler" with a BERT encoder only): a folder that
`AutoModelForSequenceClassification.from_pretrained` loads as BertForSequenceClassification with
problem_type="multi_label_classification", so `pipeline("text-classification", model=folder,
top_k=None, truncation=True)` applies the sigmoid itself and returns our probabilities (checked to 1e-5
after writing). The tokenizer is saved with model_max_length = the checkpoint's max_length, so
`truncation=True` cuts texts where ToxicityClassifier does.

Why only pooling="pooler": a stock BertForSequenceClassification computes
classifier(dropout(pooler(hidden)[CLS])), where the pooler is dense + tanh. That is exactly our
encoder → pooler_output → dropout → head, so the weights copy over unchanged. Our other poolings have no
stock equivalent: `mean` (masked mean of all tokens) is not computed by any BERT head, and `cls` (the raw
first hidden state) always goes through the pooler's tanh in BertForSequenceClassification. Faking them
(a custom architecture needing trust_remote_code, or a near-identity pooler) would either not load with
plain transformers offline or give scores that only approximately match, so those checkpoints raise
ExportError; export them to ONNX, or train with --model.pooling pooler when a Hub-style folder is needed.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from toxicity.checkpoint import ENCODER, TrainedCheckpoint
from toxicity.classifier import (
    ONNX_FP32,
    ONNX_INT8,
    ONNX_METADATA,
    OnnxToxicityClassifier,
    ToxicityClassifier,
)
from toxicity.cli import fail, run_tool
from toxicity.data import tokenize_texts
from toxicity.files import atomic_output, refuse_to_overwrite, write_text_atomically

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4
HF_TOLERANCE = 1e-5
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


def encoder_classifier(ckpt_path: str | Path) -> ToxicityClassifier:
    """The checkpoint's classifier on the CPU; a text-to-text checkpoint is refused with what to use instead.

    A text-to-text model scores by generating (a loop of decoder steps with its own stopping rule), which
    neither a single ONNX graph of ours nor a stock Hugging Face classification head represents.
    """
    checkpoint = TrainedCheckpoint.read(ckpt_path)
    if checkpoint.family != ENCODER:
        raise ExportError(f"{ckpt_path}: a {checkpoint.family} checkpoint; export supports encoder checkpoints "
                          "only. Score it with ToxicityClassifier.from_checkpoint or `python -m toxicity.predict`, "
                          "or serve the checkpoint itself.")
    return ToxicityClassifier.from_trained(checkpoint, "cpu")


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def checked_difference(export: Path, exported: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """The largest difference from PyTorch's probabilities; raises ExportError above `tolerance`."""
    difference = max_abs_diff(exported, expected)
    if difference > tolerance:
        raise ExportError(f"{export}: scores differ from PyTorch's by {difference:.1e} "
                          f"(more than {tolerance}) on the sample texts; do not use this export.")
    return difference


# ------------------------------------------------------------------------------------------------- ONNX
def export_onnx(ckpt_path: str | Path, out: str | Path, int8: bool = False, overwrite: bool = False) -> dict:
    """Writes model.onnx (and model.int8.onnx), the tokenizer and toxicity.json into `out`.

    Returns the parity check: {"fp32_max_abs_diff": ..., "int8_max_abs_diff": ...} against PyTorch.
    """
    out = Path(out)
    for name in (ONNX_FP32, ONNX_INT8) if int8 else (ONNX_FP32,):
        refuse_to_overwrite(out / name, ckpt_path, overwrite=overwrite)
    classifier = encoder_classifier(ckpt_path)
    _write_onnx(classifier, out / ONNX_FP32)
    classifier.tokenizer.save_pretrained(out)
    metadata = {"labels": classifier.labels, "max_length": classifier.max_length, "truncation": classifier.truncation,
                "thresholds": classifier.thresholds, "checkpoint": str(Path(ckpt_path).resolve()),
                "family": ENCODER, "backbone": classifier.model.hparams.get("backbone")}
    write_text_atomically(out / ONNX_METADATA, json.dumps(metadata, indent=2) + "\n")
    expected = classifier.predict_proba(SAMPLE_TEXTS)
    onnx_probs = OnnxToxicityClassifier.from_folder(out).predict_proba(SAMPLE_TEXTS)
    check = {"fp32_max_abs_diff": checked_difference(out / ONNX_FP32, onnx_probs, expected, ONNX_TOLERANCE)}
    if not int8 and (out / ONNX_INT8).exists():  # left by an earlier --int8 export of another model
        (out / ONNX_INT8).unlink()
    if int8:
        _quantize(out / ONNX_FP32, out / ONNX_INT8)
        int8_probs = OnnxToxicityClassifier.from_folder(out, int8=True).predict_proba(SAMPLE_TEXTS)
        check["int8_max_abs_diff"] = max_abs_diff(int8_probs, expected)
    log.info("ONNX export in %s: %s", out, check)
    return check


def _write_onnx(classifier: ToxicityClassifier, path: Path) -> None:
    ids = tokenize_texts(classifier.tokenizer, SAMPLE_TEXTS[:2], classifier.max_length, classifier.truncation)
    example = classifier.collate([{"input_ids": row, "index": k} for k, row in enumerate(ids)])
    assert example["attention_mask"].min() == 0, "trace with padding, or the mask could be traced away"
    axes = {0: "batch", 1: "sequence"}
    with atomic_output(path) as partial, warnings.catch_warnings():
        # the legacy exporter is deprecated in favour of dynamo (which needs onnxscript) and warns about
        # Python-level shape checks in transformers; the parity check below is what guards the result
        warnings.simplefilter("ignore")
        # .eval() on the wrapper too: the exporter restores the wrapper's mode onto the whole tree afterwards
        torch.onnx.export(ProbabilityModel(classifier.model.cpu()).eval(),
                          (example["input_ids"], example["attention_mask"]), str(partial), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["probabilities"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "probabilities": {0: "batch"}},
                          opset_version=17)


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_output(int8) as partial:
        # per-channel weight scales: about half the error of per-tensor ones, at the same speed
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)


# ------------------------------------------------------------------------------------------ Hugging Face
def export_huggingface(ckpt_path: str | Path, out: str | Path, overwrite: bool = False) -> dict:
    """Writes a BertForSequenceClassification folder (config, weights, tokenizer) into `out`.

    Returns the parity check {"max_abs_diff": ...} of the text-classification pipeline against PyTorch.
    """
    from transformers import BertForSequenceClassification

    out = Path(out)
    refuse_to_overwrite(out / "config.json", ckpt_path, overwrite=overwrite)
    classifier = encoder_classifier(ckpt_path)
    tagger = classifier.model
    _check_exportable_to_huggingface(ckpt_path, tagger)
    config = copy.deepcopy(tagger.encoder.config)
    config.update({
        "architectures": ["BertForSequenceClassification"], "problem_type": "multi_label_classification",
        "id2label": dict(enumerate(classifier.labels)),
        "label2id": {tag: k for k, tag in enumerate(classifier.labels)},
        "classifier_dropout": tagger.hparams.dropout,
    })
    model = BertForSequenceClassification(config).eval()
    model.bert.load_state_dict(tagger.encoder.state_dict())
    model.classifier.load_state_dict(tagger.head.state_dict())
    model.save_pretrained(out)
    classifier.tokenizer.model_max_length = classifier.max_length
    classifier.tokenizer.save_pretrained(out)
    pipeline_probs = pipeline_probabilities(out, SAMPLE_TEXTS, classifier.labels)
    check = {"max_abs_diff": checked_difference(out, pipeline_probs, classifier.predict_proba(SAMPLE_TEXTS),
                                                HF_TOLERANCE)}
    log.info("Hugging Face export in %s: %s", out, check)
    return check


def _check_exportable_to_huggingface(ckpt_path: str | Path, tagger) -> None:
    pooling, model_type = tagger.hparams.pooling, tagger.encoder.config.model_type
    if pooling != "pooler" or model_type != "bert":
        raise ExportError(
            f"{ckpt_path}: pooling='{pooling}' with a '{model_type}' encoder has no exact stock "
            "transformers equivalent; only pooling='pooler' with a BERT encoder maps onto "
            "BertForSequenceClassification (see `python -m toxicity.export --help`). Export it with "
            "--format onnx instead, or train with --model.pooling pooler.")
    if tagger.hparams.get("truncation", "head") != "head":
        raise ExportError(
            f"{ckpt_path}: trained with --data.truncation {tagger.hparams.truncation}, which the transformers "
            "pipeline cannot do (it keeps the head of a long text); export it with --format onnx instead.")


def pipeline_probabilities(folder: str | Path, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Probabilities of the transformers text-classification pipeline on an exported folder, tags in order."""
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    results = classify(list(texts), truncation=True)
    return np.array([[{r["label"]: r["score"] for r in result}[tag] for tag in labels] for result in results],
                    dtype=np.float32)


# -------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m toxicity.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--format", choices=["hf", "onnx"], required=True)
    parser.add_argument("--int8", action="store_true", help="onnx: also write a dynamically quantized model")
    parser.add_argument("--out", type=Path, default=Path("exported"), help="folder to write into")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no bars for writing and re-reading one small folder
    if args.int8 and args.format != "onnx":
        raise fail("--int8 applies to --format onnx only.")
    if args.format == "onnx":
        check = run_tool(lambda: export_onnx(args.ckpt, args.out, int8=args.int8, overwrite=args.overwrite))
    else:
        check = run_tool(lambda: export_huggingface(args.ckpt, args.out, overwrite=args.overwrite))
    print(f"Exported {args.ckpt} as {args.format} to {args.out}.")
    for name, value in check.items():
        print(f"  {name.replace('_', ' ')} vs PyTorch on {len(SAMPLE_TEXTS)} sample texts: {value:.2e}")
    return check


if __name__ == "__main__":
    main()
