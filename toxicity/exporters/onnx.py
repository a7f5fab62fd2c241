"""A checkpoint as ONNX, fp32 and optionally int8, checked against PyTorch.

ONNX (any pooling): `model.onnx` maps input_ids and attention_mask (int64, dynamic batch and sequence
axes) to `probabilities` (sigmoid of the tag logits). Beside it: the tokenizer and `toxicity.json`
(tags, max_length, tuned thresholds, family, backbone), which `toxicity.inference.onnx.OnnxToxicityClassifier`
reads; the checkpoint is named by file name and SHA-256, not by its path. After writing, the export scores a
few sample texts through onnxruntime and through PyTorch and fails if fp32 differs by more than 1e-4.

--int8 also writes `model.int8.onnx`: dynamically quantized (int8 weights per channel, activation scales
picked per run), scored one text per run by OnnxToxicityClassifier, so a text's score never depends on
the other texts of a batch (batched, one neighbour moved a score by 0.05). Measured against static
quantization with calibrated scales (benchmarks/results/int8_parity-2026-12-02-cpu.md): per-text
dynamic is about ten times closer to PyTorch and about as fast. The export checks int8 against PyTorch on
the run's validation rows (batch vs alone, largest difference, decisions flipped) and refuses it beyond
INT8_*; it tunes int8's own thresholds on the same rows (`int8_thresholds`). Without the run's data, int8
is checked on the demo comments and gets no tuned thresholds.
The legacy TorchScript exporter (`dynamo=False`) is used: the dynamo exporter needs `onnxscript`.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.errors import DataError
from toxicity.core.files import atomic_output, file_sha256, refuse_to_overwrite, write_text_atomically
from toxicity.data.tokenize import tokenize_texts
from toxicity.evaluation.eval_sets import EvalSet
from toxicity.evaluation.thresholds import DEFAULT_RULE, ThresholdRule, tune_thresholds
from toxicity.exporters.checks import (
    SAMPLE_TEXTS,
    ExportError,
    ProbabilityModel,
    checked_difference,
    encoder_checkpoint,
    max_abs_diff,
)
from toxicity.inference.onnx import ONNX_FP32, ONNX_INT8, ONNX_METADATA, OnnxToxicityClassifier
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.models.families import ENCODER

log = logging.getLogger(__name__)


ONNX_TOLERANCE = 1e-4


# int8, per text, on the trained demo model (benchmarks/results/int8_parity-demo-2026-12-02-cpu.md): max
# difference 0.087, 0.2% of decisions flipped at int8's own thresholds; static calibrated int8 reached
# 0.57. The limits refuse a broken quantization and let a sound one through.
INT8_BATCH_TOLERANCE = 1e-6  # a text scored alone and with neighbours: float rounding only, never the batch
INT8_TOLERANCE = 0.15  # largest score difference from PyTorch
INT8_FLIP_TOLERANCE = 0.005  # share of tag decisions (int8 at its thresholds vs torch at its own) that differ


BATCH_CHECK_TEXTS = 64  # texts also scored one at a time for the batch check


# ------------------------------------------------------------------------------------------------- ONNX
def export_onnx(
    ckpt_path: str | Path,
    out: str | Path,
    int8: bool = False,
    overwrite: bool = False,
    rule: ThresholdRule = DEFAULT_RULE,
) -> dict:
    """Writes model.onnx (and model.int8.onnx), the tokenizer and toxicity.json into `out`.

    Returns the parity checks against PyTorch: {"fp32_max_abs_diff": ...} and, with int8, those of
    `export_int8`. `rule` tunes int8's own thresholds.
    """
    out = Path(out)
    for name in (ONNX_FP32, ONNX_INT8) if int8 else (ONNX_FP32,):
        refuse_to_overwrite(out / name, ckpt_path, overwrite=overwrite)
    checkpoint = encoder_checkpoint(ckpt_path)
    classifier = ToxicityClassifier.from_trained(checkpoint, "cpu")
    _write_onnx(classifier, out / ONNX_FP32)
    classifier.tokenizer.save_pretrained(out)
    metadata = onnx_metadata(classifier, ckpt_path)
    write_text_atomically(out / ONNX_METADATA, json.dumps(metadata, indent=2) + "\n")
    expected = classifier.predict_proba(SAMPLE_TEXTS)
    onnx_probs = OnnxToxicityClassifier.from_folder(out).predict_proba(SAMPLE_TEXTS)
    check = {"fp32_max_abs_diff": checked_difference(out / ONNX_FP32, onnx_probs, expected, ONNX_TOLERANCE)}
    (out / ONNX_INT8).unlink(
        missing_ok=True
    )  # an earlier --int8 export of another model must not stay beside
    if int8:
        check.update(export_int8(classifier, out, metadata, validation_rows(checkpoint), rule))
    log.info("ONNX export in %s: %s", out, check)
    return check


def onnx_metadata(classifier: ToxicityClassifier, ckpt_path: str | Path) -> dict:
    """toxicity.json. The checkpoint by file name and SHA-256: an absolute path would tell every reader of
    the export where the exporter kept its files, and means nothing on another machine."""
    return {
        "labels": classifier.tags,
        "max_length": classifier.max_length,
        "truncation": classifier.truncation,
        "thresholds": classifier.thresholds,
        "checkpoint": Path(ckpt_path).resolve().name,
        "checkpoint_sha256": file_sha256(ckpt_path),
        "family": ENCODER,
        "backbone": classifier.model.hparams.get("backbone"),
    }


def validation_rows(checkpoint: TrainedCheckpoint) -> EvalSet | None:
    """The training run's validation rows, or None (with a warning) when its data is not here."""
    from toxicity.evaluation.eval_sets import checkpoint_val_split

    try:
        return checkpoint_val_split(checkpoint.data)
    except (DataError, OSError) as error:
        log.warning(
            "%s: cannot rebuild the run's validation rows (%s); int8 is checked on the demo comments "
            "and gets no tuned thresholds.",
            checkpoint.ckpt_path,
            error,
        )
        return None


# ------------------------------------------------------------------------------------------------- int8
def export_int8(
    classifier: ToxicityClassifier, out: Path, metadata: dict, validation: EvalSet | None, rule: ThresholdRule
) -> dict:
    """Writes model.int8.onnx and its own tuned thresholds, after checking it against PyTorch.

    Raises ExportError (and removes model.int8.onnx) when a score depends on the batch, or differs from
    PyTorch's, or flips decisions, beyond the INT8_* tolerances; model.onnx stays valid either way.
    """
    texts = validation.texts if validation is not None else check_texts()
    quantize_int8(out / ONNX_FP32, out / ONNX_INT8)
    try:
        parity = int8_parity(
            classifier, OnnxToxicityClassifier.from_folder(out, int8=True), texts, validation, rule
        )
    except ExportError:
        (out / ONNX_INT8).unlink()
        raise
    metadata = {
        **metadata,
        "int8_method": "dynamic, one text per run",
        "int8_thresholds": parity.pop("thresholds"),
        "int8_threshold_rule": str(rule) if validation is not None else None,
        "int8_parity": parity,
    }
    write_text_atomically(out / ONNX_METADATA, json.dumps(metadata, indent=2) + "\n")
    return parity


def check_texts() -> list[str]:
    """Texts to check int8 on when the run's validation rows are not here: the sample and demo comments."""
    import pandas as pd

    from toxicity.data.demo import DEMO_CSV

    return SAMPLE_TEXTS + pd.read_csv(DEMO_CSV, keep_default_na=False)["comment_text"].tolist()[:400]


def int8_parity(
    reference: ToxicityClassifier,
    int8: OnnxToxicityClassifier,
    texts: list[str],
    validation: EvalSet | None,
    rule: ThresholdRule,
) -> dict:
    """int8 against PyTorch on `texts`; raises ExportError beyond a tolerance. With labelled validation rows,
    also int8's own thresholds (tuned on its scores with `rule`) and the decisions they flip."""
    expected, probs = reference.predict_proba(texts), int8.predict_proba(texts)
    alone = np.concatenate([int8.predict_proba([text]) for text in texts[:BATCH_CHECK_TEXTS]])
    parity = {
        "int8_texts_checked": len(texts),
        "int8_batch_vs_alone_max_diff": max_abs_diff(alone, probs[:BATCH_CHECK_TEXTS]),
        "int8_max_abs_diff": max_abs_diff(probs, expected),
        "thresholds": None,
    }
    if validation is not None:
        parity["thresholds"] = tune_thresholds(validation.labels, probs, validation.tags, rule)
        cutoffs = {
            "torch": reference.thresholds_for("tuned") if reference.thresholds else None,
            "int8": np.array([parity["thresholds"][tag] for tag in validation.tags]),
        }
        if cutoffs["torch"] is not None:
            flipped = (expected >= cutoffs["torch"]) != (probs >= cutoffs["int8"])
            parity["int8_decisions_flipped_share"] = float(flipped.mean())
    refuse_int8_beyond_tolerance(int8, parity)
    return parity


def refuse_int8_beyond_tolerance(int8: OnnxToxicityClassifier, parity: dict) -> None:
    limits = {
        "int8_batch_vs_alone_max_diff": INT8_BATCH_TOLERANCE,
        "int8_max_abs_diff": INT8_TOLERANCE,
        "int8_decisions_flipped_share": INT8_FLIP_TOLERANCE,
    }
    over = [
        f"{name.removeprefix('int8_').replace('_', ' ')} {parity[name]:.2e} (limit {limit:g})"
        for name, limit in limits.items()
        if parity.get(name, 0.0) > limit
    ]
    if over:
        raise ExportError(
            f"{ONNX_INT8}: int8 scores are too far from PyTorch's on {parity['int8_texts_checked']} "
            f"texts: {'; '.join(over)}. It was not kept; use {ONNX_FP32}, or export without --int8."
        )


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
        torch.onnx.export(
            ProbabilityModel(classifier.model.cpu()).eval(),
            (example["input_ids"], example["attention_mask"]),
            str(partial),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["probabilities"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "probabilities": {0: "batch"}},
            opset_version=17,
        )


def quantize_int8(fp32: Path, int8: Path) -> None:
    """int8 weights (per channel) and activations, activation scales picked per run: scored one text per
    run (OnnxToxicityClassifier), a text's score depends on that text alone."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_output(int8) as partial:
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
