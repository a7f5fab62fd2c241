"""`python -m toxicity.compare`: finished runs side by side, from what they logged.

    python -m toxicity.compare lightning_logs/toxic-comments/version_0 lightning_logs/toxic-comments/version_1

The work is done by toxicity.evaluation.compare.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toxicity.core.cli import run_tool

if TYPE_CHECKING:  # the comparison (matplotlib, the model registry) is imported when it runs, not for --help
    from toxicity.evaluation.compare import RunSummary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toxicity compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run folders (lightning_logs/<name>/version_N)")
    parser.add_argument(
        "--out", default="reports/compare", help="folder for compare.md and training_loss.png"
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        default=0.6,
        help="TensorBoard-style smoothing weight, from 0 (none) up to but not including 1",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing compare.md")
    return parser


def main(argv: Sequence[str] | None = None) -> list[RunSummary]:
    args = build_parser().parse_args(argv)
    from toxicity.evaluation.compare import compare

    runs, markdown = run_tool(lambda: compare(args.runs, args.out, args.smoothing, args.overwrite))
    print(markdown)
    print(f"Wrote {Path(args.out) / 'compare.md'} and training_loss.png")
    return runs


if __name__ == "__main__":
    main()
