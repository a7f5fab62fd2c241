"""`toxicity export`: a checkpoint as ONNX (fp32, optionally int8) or as a Hugging Face folder, each
format in its own folder (default exported/onnx, exported/hf), checked against PyTorch after writing.

ONNX (fp32, int8): toxicity.exporters.onnx; the Hugging Face folder: toxicity.exporters.huggingface.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import add_ckpt, add_output, add_overwrite, command_parser, fail, run_tool

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------- CLI
EXAMPLES = (
    "toxicity export --format onnx --int8      # the best checkpoint into exported/onnx",
    "toxicity export --format hf               # into exported/hf",
    "toxicity export --ckpt run.ckpt --format onnx --output models/run-onnx --overwrite",
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export", __doc__, EXAMPLES)
    add_ckpt(parser)
    parser.add_argument("--format", choices=["hf", "onnx"], required=True, help="ONNX or Hugging Face")
    add_output(parser, "the folder to write into (default: exported/<format>)", type=Path)
    add_overwrite(parser, "export in --output")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="onnx: also write a dynamically quantized int8 model (model.int8.onnx)",
    )
    parser.add_argument(
        "--threshold-rule",
        default="f1",
        help="int8's own thresholds: f1, macro_f1, youden, precision>=X or recall>=X "
        "(use the rule the checkpoint's thresholds were tuned with)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the exporters (torch, onnx, transformers) are imported when the command runs, not for --help
    from transformers.utils import logging as transformers_logging

    from toxicity.evaluation.thresholds import parse_rule
    from toxicity.exporters.checks import SAMPLE_TEXTS
    from toxicity.exporters.huggingface import export_huggingface
    from toxicity.exporters.onnx import export_onnx

    try:
        rule = parse_rule(args.threshold_rule)
    except ValueError as error:
        parser.error(str(error))

    output = args.output or Path("exported") / args.format
    transformers_logging.disable_progress_bar()  # no bars for writing and re-reading one small folder
    if args.int8 and args.format != "onnx":
        raise fail("--int8 applies to --format onnx only.")
    if args.format == "onnx":
        check = run_tool(
            lambda: export_onnx(args.ckpt, output, int8=args.int8, overwrite=args.overwrite, rule=rule)
        )
    else:
        check = run_tool(lambda: export_huggingface(args.ckpt, output, overwrite=args.overwrite))
    print(f"Exported {args.ckpt} as {args.format} to {output}.")
    for name, value in check.items():
        texts = check["int8_texts_checked"] if name.startswith("int8_") else len(SAMPLE_TEXTS)
        if name != "int8_texts_checked":
            print(f"  {name.replace('_', ' ')} vs PyTorch on {texts} texts: {value:.2e}")
    return check


if __name__ == "__main__":
    main()
