"""`python -m toxicity.export`: a checkpoint as ONNX (fp32, optionally int8) or as a Hugging Face folder.

    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format onnx --int8 --out exported/
    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format hf --out exported/

ONNX (any pooling): `model.onnx` maps input_ids and attention_mask (int64, dynamic batch and sequence
axes) to `probabilities` (sigmoid of the tag logits). Beside it: the tokenizer and `toxicity.json`
(tags, max_length, tuned thresholds, family, backbone), which `toxicity.inference.onnx.OnnxToxicityClassifier`
reads; the checkpoint is named by file name and SHA-256, not by its path. After writing, the export scores a
few sample texts through onnxruntime and through PyTorch and fails if fp32 differs by more than 1e-4.

--int8 also writes `model.int8.onnx`: dynamically quantized (int8 weights per channel, activation scales
picked per run), scored one text per run by OnnxToxicityClassifier, so a text's score never depends on
the other texts of a batch (batched, one neighbour moved a score by 0.05). Measured against static
quantization with calibrated scales (benchmarks/results/int8_parity.md): per-text dynamic is about ten
times closer to PyTorch and about as fast. The export checks int8 against PyTorch on the run's validation
rows (batch vs alone, largest difference, decisions flipped) and refuses it beyond INT8_*; it tunes int8's
own thresholds on the same rows (`int8_thresholds`). Without the run's data, int8 is checked on the demo
comments and gets no tuned thresholds.
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
import logging
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import fail, run_tool
from toxicity.evaluation.thresholds import DEFAULT_RULE, parse_rule
from toxicity.exporters.checks import SAMPLE_TEXTS
from toxicity.exporters.huggingface import export_huggingface
from toxicity.exporters.onnx import export_onnx

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toxicity.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--format", choices=["hf", "onnx"], required=True)
    parser.add_argument(
        "--int8", action="store_true", help="onnx: also write a statically quantized int8 model"
    )
    parser.add_argument(
        "--threshold-rule",
        type=parse_rule,
        default=DEFAULT_RULE,
        help="int8's own thresholds: f1, macro_f1, youden, precision>=X or recall>=X "
        "(use the rule the checkpoint's thresholds were tuned with)",
    )
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
        check = run_tool(
            lambda: export_onnx(
                args.ckpt, args.out, int8=args.int8, overwrite=args.overwrite, rule=args.threshold_rule
            )
        )
    else:
        check = run_tool(lambda: export_huggingface(args.ckpt, args.out, overwrite=args.overwrite))
    print(f"Exported {args.ckpt} as {args.format} to {args.out}.")
    for name, value in check.items():
        texts = check["int8_texts_checked"] if name.startswith("int8_") else len(SAMPLE_TEXTS)
        if name != "int8_texts_checked":
            print(f"  {name.replace('_', ' ')} vs PyTorch on {texts} texts: {value:.2e}")
    return check


if __name__ == "__main__":
    main()
