"""Scoring every row of a table file into a CSV or TSV, in chunks, in flat memory, written atomically."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from toxicity.core.errors import DataError
from toxicity.core.files import atomic_output, refuse_to_overwrite
from toxicity.data.sources import TEXT_COLUMN
from toxicity.data.tables import DEFAULT_CHUNK_ROWS, check_columns, iter_table
from toxicity.inference.scorer import BatchScorer, ScoredTexts

log = logging.getLogger(__name__)


NOT_FINITE = "the model gave a NaN or infinite score"


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


def score_file(
    scorer: BatchScorer,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = TEXT_COLUMN,
    id_column: str | None = None,
    threshold: float | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    progress: bool = True,
) -> ScoringSummary:
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
    with (
        atomic_output(output_path) as partial,
        tqdm(unit="comment", desc="scoring", disable=not progress) as bar,
    ):
        pd.DataFrame(columns=header).to_csv(partial, sep=sep, index=False)
        for chunk in iter_table(input_path, [c for c in (id_column, text_column) if c], chunk_rows):
            texts, chunk_blank = clean_texts(chunk[text_column])
            scored = unscored_if_not_finite(scorer.score(texts, progress=False))
            score_table(scored, tags, cutoffs, chunk[id_column] if id_column else None).to_csv(
                partial, sep=sep, index=False, header=False, mode="a"
            )
            if scored.failed.size and first_unscored is None:
                first_unscored = (rows + int(scored.failed[0]) + 1, scored.first_error)
            rows, blank, unscored = rows + len(texts), blank + chunk_blank, unscored + scored.failed.size
            bar.update(len(texts))
    if blank:
        log.warning(
            "%s: %d row(s) with a missing or blank '%s' were scored as empty strings.",
            input_path,
            blank,
            text_column,
        )
    if unscored:
        log.warning(
            "%s: %d row(s) could not be scored and have empty scores in %s (the first is data row %d: %s).",
            input_path,
            unscored,
            output_path,
            *first_unscored,
        )
    return ScoringSummary(rows, blank, time.perf_counter() - started, unscored)


def unscored_if_not_finite(scored: ScoredTexts) -> ScoredTexts:
    """`scored` with every row that has a NaN or infinite score counted as unscored (empty cells, exit 3),
    as a row that failed is: a broken model must not pass for a run that scored everything."""
    broken = np.flatnonzero(~np.isfinite(scored.probs).all(axis=1))
    new = np.setdiff1d(broken, scored.failed)
    if not new.size:
        return scored
    probs = scored.probs.copy()
    probs[broken] = np.nan
    failed = np.union1d(scored.failed, new)
    first_error = NOT_FINITE if failed[0] == new[0] else scored.first_error
    return ScoredTexts(probs, failed, first_error)


def score_table(
    scored: ScoredTexts, tags: list[str], cutoffs: np.ndarray | None, ids: pd.Series | None
) -> pd.DataFrame:
    """One chunk's output rows: ids, probabilities, then 0/1 decisions; empty cells where a text has no
    scores."""
    scores = pd.DataFrame(scored.probs, columns=tags)
    if cutoffs is not None:
        decisions = pd.DataFrame(scored.probs >= cutoffs, columns=[f"{t}_pred" for t in tags]).astype("Int64")
        decisions.iloc[scored.failed] = pd.NA  # NaN >= x is False: a missing score must not read as "clean"
        scores = pd.concat([scores, decisions], axis=1)
    if ids is not None:
        scores.insert(0, ids.name, ids.to_numpy())
    return scores
