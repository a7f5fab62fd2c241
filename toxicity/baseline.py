"""`toxicity baseline`: the classical baseline (TF-IDF + logistic regression) or the peer,
alt-profanity-check, trained and scored on the same rows as a checkpoint, with the same report.

The models and the run: toxicity.evaluation.baseline.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toxicity.core.cli import add_data, add_output, add_overwrite, command_parser, run_tool
from toxicity.core.tags import LABELS, TEXT_COLUMN

if TYPE_CHECKING:  # the models and the data module (Lightning) are imported when it runs, not for --help
    from toxicity.evaluation.results import EvalResults

BASELINES = ("peer", "tfidf")  # toxicity.evaluation.baseline.MODELS (a test keeps the two in step)

log = logging.getLogger(__name__)


EXAMPLES = (
    "toxicity baseline --data ../shared/data/jigsaw_sample                  # Kaggle test rows",
    "toxicity baseline --data ../shared/data/jigsaw_sample --model peer     # the peer, same rows",
    "toxicity baseline --data ../shared/data/tweeteval_offensive --split test",
    (
        "toxicity baseline --data davidson.csv.gz --text-column tweet --label-columns hate offensive "
        "--label-from 'class:0=hate+offensive,1=offensive'"
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("baseline", __doc__, EXAMPLES)
    add_data(parser, "the labelled data, as fit's --data.data_path", required=True)
    parser.add_argument("--model", choices=BASELINES, default="tfidf", help="tfidf, or the peer")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="the split reported")
    add_output(parser, "the report folder (default: reports/<model>-<data>-<split>)")
    add_overwrite(parser, "report in --output")
    parser.add_argument("--text-column", default=TEXT_COLUMN, help="the column holding the text")
    parser.add_argument(
        "--label-columns",
        nargs="+",
        default=None,
        help="default: the Jigsaw tags (a TweetEval folder: its task)",
    )
    parser.add_argument("--label-from", default=None, help="as fit's --data.label_from")
    parser.add_argument("--binarise-at", type=float, default=None, help="as fit's --data.binarise_at")
    parser.add_argument("--separator", default=None, help="as fit's --data.separator")
    parser.add_argument("--val-path", default=None, help="as fit's --data.val_path")
    parser.add_argument("--test-path", default=None, help="as fit's --data.test_path")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="as fit's --data.val_fraction")
    parser.add_argument("--seed", type=int, default=42, help="the data split's seed (as fit's --data.seed)")
    return parser


def main(argv: Sequence[str] | None = None) -> EvalResults:
    args = build_parser().parse_args(argv)
    from toxicity.data.datamodule import ToxicCommentsDataModule
    from toxicity.data.tables import tweeteval_task
    from toxicity.evaluation.baseline import run_baseline

    tags = args.label_columns or ([tweeteval_task(args.data)] if tweeteval_task(args.data) else list(LABELS))
    datamodule = ToxicCommentsDataModule(
        args.data,
        text_column=args.text_column,
        label_columns=tags,
        label_from=args.label_from,
        binarise_at=args.binarise_at,
        separator=args.separator,
        val_path=args.val_path,
        test_path=args.test_path,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    out = Path(args.output or f"reports/{args.model}-{Path(args.data).name.split('.')[0]}-{args.split}")
    results = run_tool(
        lambda: run_baseline(datamodule, args.split, out, args.overwrite, args.model), level=logging.INFO
    )
    print((out / "report.md").read_text())
    print(f"Report and metrics.json in {out}/")
    return results


if __name__ == "__main__":
    main()
