"""`toxicity evaluate`: score a checkpoint on labelled data and write a report.

Writes report.md, metrics.json, PNG plots and a TensorBoard folder under --output (default
reports/<data>-<split>) and nothing elsewhere unless asked: --save-thresholds writes the tuned thresholds
beside the checkpoint (for predict and serve), --log-dir adds the figures to a training run's TensorBoard.

The work is done by toxicity.evaluation.evaluator.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from toxicity.core.cli import (
    add_accelerator,
    add_batch_size,
    add_ckpt,
    add_data,
    add_output,
    add_overwrite,
    add_threads,
    command_parser,
    positive_int,
    run_tool,
    torch_device,
    use_threads,
)

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


EXAMPLES = (
    "toxicity evaluate                                  # the best checkpoint on its own validation split",
    "toxicity evaluate --split val --save-thresholds    # and save the tuned thresholds for predict/serve",
    "toxicity evaluate --split test                     # the Kaggle test rows",
    "toxicity evaluate --data tweets.csv --split test --label-map label=toxic --output reports/tweets",
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("evaluate", __doc__, EXAMPLES)
    add_ckpt(parser)
    add_data(
        parser,
        "Kaggle folder/zip, labelled table, or TweetEval folder (default: the checkpoint's training data)",
    )
    parser.add_argument("--split", choices=("val", "test"), default="val", help="which split of --data")
    add_output(parser, "the report folder (default: reports/<data>-<split>)")
    add_overwrite(parser, "report in --output")
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
        help="tuning rule: f1, youden, precision>=X or recall>=X",
    )
    parser.add_argument(
        "--save-thresholds",
        action="store_true",
        help="write the thresholds tuned on the checkpoint's validation split beside it, where "
        "`toxicity predict --threshold tuned` and `toxicity serve` read them",
    )
    parser.add_argument(
        "--folds", type=positive_int, default=5, help="cross-fitting folds for the tuned val column"
    )
    parser.add_argument(
        "--calibration-bins", type=positive_int, default=10, help="bins of the reliability plot"
    )
    parser.add_argument(
        "--explain-errors",
        type=positive_int,
        metavar="N",
        help="also write errors.html: each tag's N most confident false positives and false negatives, "
        "their words highlighted by what they added to the score (linked from the report)",
    )
    parser.add_argument(
        "--log-dir",
        help="also add the figures and scores to this TensorBoard run folder (the learning-rate plot is "
        "read from it; default: the run folder the checkpoint records, read only)",
    )
    add_batch_size(parser)
    add_accelerator(parser)
    add_threads(parser)
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
        args.output,
        args.overwrite,
        rule,
        args.folds,
        args.calibration_bins,
        args.bias_tag,
        args.log_dir,
        args.batch_size,
        torch_device(args.accelerator),
        args.save_thresholds,
        explain_errors=args.explain_errors or 0,
    )


def main(argv: list[str] | None = None) -> EvalResults:
    options = options_from_args(argv)
    use_threads(build_parser().parse_args(argv).threads)
    from toxicity.evaluation.evaluator import evaluate

    results, out = run_tool(lambda: evaluate(options), level=logging.INFO)
    print((out / "report.md").read_text())
    print(f"Report, metrics.json and plots in {out}/")
    return results


if __name__ == "__main__":
    main()
