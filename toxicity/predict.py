"""`python -m toxicity.predict`: score every comment of a table file (the classes are in toxicity.classifier).

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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from toxicity.checkpoint import CheckpointError, read_thresholds, thresholds_path  # noqa: F401 (public names)
from toxicity.classifier import (  # noqa: F401 (ToxicityClassifier and OnnxToxicityClassifier, re-exported)
    BatchScorer,
    OnnxToxicityClassifier,
    ScoredTexts,
    ToxicityClassifier,
)
from toxicity.cli import exit_on_sigterm, run_tool
from toxicity.data import TEXT_COLUMN
from toxicity.files import atomic_output, refuse_to_overwrite
from toxicity.tables import DataError, check_columns, iter_table

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 10_000  # rows the CLI reads from the input file at a time
# Exit status when the output is complete but some rows have no scores: not 0, so a pipeline does not take
# empty scores for real ones; not 1 (a crash, no output) nor 2 (bad input, no output).
SOME_ROWS_UNSCORED = 3


# ------------------------------------------------------------------------------------------ scoring files
def output_separator(path: Path) -> str:
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"{path}: scores are written as CSV or TSV; give an output ending in .csv or .tsv.")
    return "\t" if path.suffix.lower() == ".tsv" else ","


def clean_texts(column: pd.Series) -> tuple[list[str], int]:
    """The texts with missing values as "", and how many were missing or blank."""
    missing = column.isna().to_numpy()
    texts = ["" if gone else str(text) for text, gone in zip(column.tolist(), missing)]
    return texts, sum(not text.strip() for text in texts)


@dataclass(frozen=True)
class ScoringSummary:
    rows: int
    blank_texts: int
    seconds: float
    unscored_rows: int = 0

    @property
    def comments_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def score_file(scorer: BatchScorer, input_path: str | Path, output_path: str | Path,
               text_column: str = TEXT_COLUMN, id_column: str | None = None,
               threshold: float | str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               overwrite: bool = False, progress: bool = True) -> ScoringSummary:
    """Scores every row of a table into a CSV (or TSV), `chunk_rows` rows at a time.

    Writes `id_column` (default: `id` when the file has one) first, then one probability column per tag,
    then `<tag>_pred` 0/1 columns when `threshold` is given. The output appears only when complete.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}.")
    refuse_to_overwrite(output_path, input_path, overwrite=overwrite)
    sep = output_separator(output_path)
    id_column = check_columns(input_path, text_column, id_column)
    cutoffs = None if threshold is None else scorer.thresholds_for(threshold)  # fails before any work
    tags, pred_columns = scorer.tags, [f"{tag}_pred" for tag in scorer.tags]
    header = ([id_column] if id_column else []) + tags + (pred_columns if cutoffs is not None else [])
    rows = blank = unscored = 0
    first_unscored: tuple[int, str | None] | None = None  # (row number in the file, its error)
    started = time.perf_counter()
    with atomic_output(output_path) as partial, \
            tqdm(unit="comment", desc="scoring", disable=not progress) as bar:
        pd.DataFrame(columns=header).to_csv(partial, sep=sep, index=False)
        for chunk in iter_table(input_path, [c for c in (id_column, text_column) if c], chunk_rows):
            texts, chunk_blank = clean_texts(chunk[text_column])
            scored = scorer.score(texts, progress=False)
            score_table(scored, tags, cutoffs, chunk[id_column] if id_column else None) \
                .to_csv(partial, sep=sep, index=False, header=False, mode="a")
            if scored.failed.size and first_unscored is None:
                first_unscored = (rows + int(scored.failed[0]) + 1, scored.first_error)
            rows, blank, unscored = rows + len(texts), blank + chunk_blank, unscored + scored.failed.size
            bar.update(len(texts))
    if blank:
        log.warning("%s: %d row(s) with a missing or blank '%s' were scored as empty strings.",
                    input_path, blank, text_column)
    if unscored:
        log.warning("%s: %d row(s) could not be scored and have empty scores in %s (the first is data row %d: %s).",
                    input_path, unscored, output_path, *first_unscored)
    return ScoringSummary(rows, blank, time.perf_counter() - started, unscored)


def score_table(scored: ScoredTexts, tags: list[str], cutoffs: np.ndarray | None,
                ids: pd.Series | None) -> pd.DataFrame:
    """One chunk's output rows: ids, probabilities, then 0/1 decisions; empty cells where a text has no scores."""
    scores = pd.DataFrame(scored.probs, columns=tags)
    if cutoffs is not None:
        decisions = pd.DataFrame(scored.probs >= cutoffs, columns=[f"{t}_pred" for t in tags]).astype("Int64")
        decisions.iloc[scored.failed] = pd.NA  # NaN >= x is False: a missing score must not read as "clean"
        scores = pd.concat([scores, decisions], axis=1)
    if ids is not None:
        scores.insert(0, ids.name, ids.to_numpy())
    return scores


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
    parser = argparse.ArgumentParser(prog="python -m toxicity.predict",
                                     description="Score every comment of a CSV/TSV/Parquet file.")
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--input", required=True, type=Path, help="CSV, TSV (maybe .gz) or Parquet file")
    parser.add_argument("--output", required=True, type=Path, help="scores CSV (TSV if it ends in .tsv)")
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--id-column", default=None, help="kept in the output (default: `id` if present)")
    parser.add_argument("--threshold", type=_threshold, default=None,
                        help="also write 0/1 <tag>_pred columns: a number, or 'tuned' (the checkpoint's "
                             "thresholds from `python -m toxicity.evaluate`)")
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument("--chunk-rows", type=_positive, default=DEFAULT_CHUNK_ROWS,
                        help="rows read from the input at a time (memory stays flat)")
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
        return score_file(classifier, args.input, args.output, args.text_column, args.id_column,
                          args.threshold, args.chunk_rows, args.overwrite)

    summary = run_tool(work)
    blank = (f"; {summary.blank_texts} missing or blank '{args.text_column}' scored as empty strings"
             if summary.blank_texts else "")
    unscored = (f"; {summary.unscored_rows} rows could not be scored (empty scores; see the warning above)"
                if summary.unscored_rows else "")
    print(f"Scored {summary.rows} comments in {summary.seconds:.1f} s "
          f"({summary.comments_per_second:.1f} comments/s){blank}{unscored}. Wrote {args.output}.")
    if summary.unscored_rows:
        raise SystemExit(SOME_ROWS_UNSCORED)
    return summary


if __name__ == "__main__":
    exit_on_sigterm()
    main()
