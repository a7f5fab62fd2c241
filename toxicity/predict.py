"""`python -m toxicity.predict`: score every comment of a table file (the classes are in
toxicity.inference.scorer).

    python -m toxicity.predict --ckpt checkpoints/best-checkpoint.ckpt --input comments.csv \\
        --text-column comment_text --output scores.csv [--id-column id] [--threshold 0.5|tuned]

The CLI reads CSV, TSV (optionally compressed) or Parquet `--chunk-rows` rows at a time, so a file of
any size scores in flat memory. It writes the id column (when there is one), one probability column
per tag and, with --threshold, one 0/1 column `<tag>_pred` per tag. Missing or blank texts are scored
as the empty string and counted in the summary. A row that cannot be scored (the model fails on its text
even alone) is still written, with empty scores and decisions, and counted; the command then exits with
status 3 (SOME_ROWS_UNSCORED), so a pipeline notices without parsing the log while the other rows are kept.
The output appears only once it is complete: a crash,
Ctrl-C or SIGTERM leaves no partial file; SIGKILL can leave a hidden `.<output>.<pid>-*.partial`
beside it, which the next write of the same output removes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import exit_on_sigterm, run_tool
from toxicity.core.files import refuse_to_overwrite
from toxicity.data.sources import TEXT_COLUMN
from toxicity.data.tables import check_columns
from toxicity.inference.files import DEFAULT_CHUNK_ROWS, ScoringSummary, output_separator, score_file
from toxicity.inference.scorer import ToxicityClassifier

log = logging.getLogger(__name__)


# Exit status when the output is complete but some rows have no scores: not 0, so a pipeline does not take
# empty scores for real ones; not 1 (a crash, no output) nor 2 (bad input, no output).
SOME_ROWS_UNSCORED = 3


# -------------------------------------------------------------------------------------------------- CLI
def _threshold(value: str) -> float | str:
    if value == "tuned":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number such as 0.5, or 'tuned'; got {value!r}") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toxicity.predict", description="Score every comment of a CSV/TSV/Parquet file."
    )
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--input", required=True, type=Path, help="CSV, TSV (maybe .gz) or Parquet file")
    parser.add_argument("--output", required=True, type=Path, help="scores CSV (TSV if it ends in .tsv)")
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--id-column", default=None, help="kept in the output (default: `id` if present)")
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="also write 0/1 <tag>_pred columns: a number, or 'tuned' (the checkpoint's "
        "thresholds from `python -m toxicity.evaluate`)",
    )
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument(
        "--chunk-rows",
        type=_positive,
        default=DEFAULT_CHUNK_ROWS,
        help="rows read from the input at a time (memory stays flat)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def main(argv: Sequence[str] | None = None) -> ScoringSummary:
    args = build_parser().parse_args(argv)

    def work() -> ScoringSummary:
        # the cheap checks first, before the model loads
        refuse_to_overwrite(args.output, args.input, overwrite=args.overwrite)
        output_separator(args.output)
        check_columns(args.input, args.text_column, args.id_column)
        classifier = ToxicityClassifier.from_checkpoint(args.ckpt, args.device, args.batch_size)
        return score_file(
            classifier,
            args.input,
            args.output,
            args.text_column,
            args.id_column,
            args.threshold,
            args.chunk_rows,
            args.overwrite,
        )

    summary = run_tool(work)
    blank = (
        f"; {summary.blank_texts} missing or blank '{args.text_column}' scored as empty strings"
        if summary.blank_texts
        else ""
    )
    unscored = (
        f"; {summary.unscored_rows} rows could not be scored (empty scores; see the warning above)"
        if summary.unscored_rows
        else ""
    )
    print(
        f"Scored {summary.rows} comments in {summary.seconds:.1f} s "
        f"({summary.comments_per_second:.1f} comments/s){blank}{unscored}. Wrote {args.output}."
    )
    if summary.unscored_rows:
        raise SystemExit(SOME_ROWS_UNSCORED)
    return summary


if __name__ == "__main__":
    exit_on_sigterm()
    main()
