"""`python -m toxicity.evaluate`: score a checkpoint on labelled data and write a report.

    python -m toxicity.evaluate --ckpt checkpoints/best-checkpoint.ckpt  # the run's own val split
    python -m toxicity.evaluate --ckpt checkpoints/best-checkpoint.ckpt --split test  # Kaggle test rows
    python -m toxicity.evaluate --ckpt ... --data tweets.csv --split test --label-map label=toxic

Writes report.md, metrics.json and PNG plots to --out (default reports/<data>-<split>), prints the
report, and adds the figures and headline scores to the training run's TensorBoard folder.

The work is done by toxicity.evaluation.evaluator.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from toxicity.core.cli import run_tool

if TYPE_CHECKING:  # the evaluation (torch, scikit-learn) is imported when it runs, not for --help
    from toxicity.evaluation.evaluator import EvalOptions
    from toxicity.evaluation.results import EvalResults

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------- CLI
def parse_label_map(items: list[str] | None) -> dict[str, str]:
    label_map = {}
    for item in items or []:
        column, sep, tag = item.partition("=")
        if not sep or not column or not tag:
            raise argparse.ArgumentTypeError(f"--label-map {item!r}: write COLUMN=TAG, e.g. label=toxic.")
        label_map[column.strip()] = tag.strip()
    return label_map


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toxicity evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by toxicity.fit")
    parser.add_argument(
        "--data",
        help="Kaggle folder/zip, labelled table, or TweetEval folder "
        "(default: the checkpoint's training data)",
    )
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--text-column", help="column holding the text (default: the checkpoint's)")
    parser.add_argument(
        "--label-map", nargs="+", metavar="COLUMN=TAG", help="rename data columns to model tags"
    )
    parser.add_argument("--tags", nargs="+", help="evaluate only these tags (each must be in the data)")
    parser.add_argument(
        "--identity-columns",
        nargs="+",
        help="identity columns for the bias metrics (default: Jigsaw 2019 names found in the data)",
    )
    parser.add_argument("--bias-tag", default="toxic", help="tag the bias metrics are computed on")
    parser.add_argument(
        "--threshold-rule",
        default="f1",
        help="f1 (default), youden, precision>=X or recall>=X",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds for the tuned val column")
    parser.add_argument("--calibration-bins", type=int, default=10)
    parser.add_argument("--out", help="output folder (default: reports/<data>-<split>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    parser.add_argument("--log-dir", help="TensorBoard run folder (default: the one the checkpoint records)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    return parser


def options_from_args(argv: list[str] | None) -> EvalOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    from toxicity.evaluation.eval_sets import EvalRequest
    from toxicity.evaluation.evaluator import EvalOptions
    from toxicity.evaluation.thresholds import parse_rule

    try:
        label_map = parse_label_map(args.label_map)
        rule = parse_rule(args.threshold_rule)
    except (argparse.ArgumentTypeError, ValueError) as error:
        parser.error(str(error))
    request = EvalRequest(
        args.data, args.split, args.text_column, label_map, args.tags, args.identity_columns
    )
    return EvalOptions(
        args.ckpt,
        request,
        args.out,
        args.overwrite,
        rule,
        args.folds,
        args.calibration_bins,
        args.bias_tag,
        args.log_dir,
        args.batch_size,
        args.device,
    )


def main(argv: list[str] | None = None) -> EvalResults:
    options = options_from_args(argv)
    from toxicity.evaluation.evaluator import evaluate

    results, out = run_tool(lambda: evaluate(options), level=logging.INFO)
    print((out / "report.md").read_text())
    print(f"Report, metrics.json and plots in {out}/")
    return results


if __name__ == "__main__":
    main()
