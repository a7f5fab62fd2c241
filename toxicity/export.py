"""`python -m toxicity.export`: a checkpoint as ONNX (fp32, optionally int8) or as a Hugging Face folder.

    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format onnx --int8 --out exported/
    python -m toxicity.export --ckpt checkpoints/best-checkpoint.ckpt --format hf --out exported/

ONNX (fp32, int8): toxicity.exporters.onnx; the Hugging Face folder: toxicity.exporters.huggingface.
Each export is checked against PyTorch after writing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import fail, run_tool

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toxicity export",
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
        default="f1",
        help="int8's own thresholds: f1, macro_f1, youden, precision>=X or recall>=X "
        "(use the rule the checkpoint's thresholds were tuned with)",
    )
    parser.add_argument("--out", type=Path, default=Path("exported"), help="folder to write into")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
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

    transformers_logging.disable_progress_bar()  # no bars for writing and re-reading one small folder
    if args.int8 and args.format != "onnx":
        raise fail("--int8 applies to --format onnx only.")
    if args.format == "onnx":
        check = run_tool(
            lambda: export_onnx(args.ckpt, args.out, int8=args.int8, overwrite=args.overwrite, rule=rule)
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
