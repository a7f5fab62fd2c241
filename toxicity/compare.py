"""`toxicity compare`: finished runs side by side (per-tag F1 and AUROC on the validation split, loss
curves), from what they logged. Runs validated on different data or tags are refused unless
--allow-mixed-data, and then marked.

The work is done by toxicity.evaluation.compare.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from toxicity.core.cli import add_output, add_overwrite, command_parser, run_tool

if TYPE_CHECKING:  # the comparison (matplotlib, the model registry) is imported when it runs, not for --help
    from toxicity.evaluation.compare import RunSummary


EXAMPLES = (
    "toxicity compare lightning_logs/toxic-comments/version_0 lightning_logs/toxic-comments/version_1",
    "toxicity compare RUN_A RUN_B --output reports/encoder-vs-t5 --smoothing 0.9",
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("compare", __doc__, EXAMPLES)
    parser.add_argument("runs", nargs="+", help="run folders (lightning_logs/<name>/version_N)")
    add_output(
        parser, "folder for compare.md and training_loss.png (default: reports/compare-<run>-<run>...)"
    )
    add_overwrite(parser, "compare.md in --output")
    parser.add_argument(
        "--smoothing",
        type=float,
        default=0.6,
        help="TensorBoard-style smoothing weight, from 0 (none) up to but not including 1",
    )
    parser.add_argument(
        "--allow-mixed-data",
        action="store_true",
        help="compare runs validated on different data or tags anyway (the report marks them)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> list[RunSummary]:
    args = build_parser().parse_args(argv)
    from toxicity.evaluation.compare import compare

    runs, markdown, output = run_tool(
        lambda: compare(args.runs, args.output, args.smoothing, args.overwrite, args.allow_mixed_data)
    )
    print(markdown)
    print(f"Wrote {output / 'compare.md'} and training_loss.png")
    return runs


if __name__ == "__main__":
    main()
