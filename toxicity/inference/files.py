"""Scoring every row of a table file into a CSV, TSV, Parquet or JSON Lines file, in chunks, in flat
memory, written atomically, with a progress bar that knows the total."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from toxicity.core.errors import DataError
from toxicity.core.files import DEFAULT_CHUNK_ROWS, OUTPUT_FORMATS, atomic_output, refuse_to_overwrite
from toxicity.core.tags import TEXT_COLUMN
from toxicity.data.tables import check_columns, iter_table, parquet_rows
from toxicity.inference.scorer import BatchScorer, ScoredTexts

log = logging.getLogger(__name__)


NOT_FINITE = "the model gave a NaN or infinite score"


# ------------------------------------------------------------------------------------------ output files
def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        formats = ", ".join(OUTPUT_FORMATS)
        raise DataError(f"{path}: scores are written as {formats}; give a name ending in one of them.")
    return suffix


class ScoresFile:
    """Writes chunks of scores (DataFrames or Arrow tables) to one file in the format `kind` (one of
    OUTPUT_FORMATS): CSV, TSV, Parquet (one row group a chunk, the schema of the first) or JSON Lines (one
    object a row, null for a missing score). With no chunk at all, the `header` alone."""

    def __init__(self, path: Path, kind: str, header: list[str] | None = None):
        self.path, self.kind, self.header = path, kind, header
        self.parquet = None
        self.chunks = 0

    def __enter__(self):
        return self

    def write(self, chunk) -> None:
        if self.kind == ".parquet":
            self._write_parquet(chunk)
        else:
            frame = chunk if isinstance(chunk, pd.DataFrame) else chunk.to_pandas()
            first = self.chunks == 0
            if self.kind == ".jsonl":
                with self.path.open("w" if first else "a", encoding="utf-8") as handle:
                    frame.to_json(handle, orient="records", lines=True, force_ascii=False)
                    handle.write("" if frame.empty else "\n")
            else:
                sep = "\t" if self.kind == ".tsv" else ","
                frame.to_csv(self.path, sep=sep, index=False, header=first, mode="w" if first else "a")
        self.chunks += 1

    def _write_parquet(self, chunk) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(chunk, pd.DataFrame):
            chunk = pa.Table.from_pandas(chunk, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, chunk.schema)
        self.parquet.write_table(chunk.cast(self.parquet.schema))

    def __exit__(self, kind, error, traceback) -> None:
        if error is None and self.chunks == 0:  # no rows: the header alone
            self.write(pd.DataFrame({column: pd.Series(dtype="float32") for column in self.header or []}))
        if self.parquet is not None:
            self.parquet.close()


@contextmanager
def reading_with_progress(
    path: Path, columns: list[str], chunk_rows: int, enabled: bool
) -> Iterator[tuple[Iterator[pd.DataFrame], Callable[[int, int], None]]]:
    """The table's chunks, and `scored(chunk_rows, rows_so_far)` to call after each: it moves a bar with a
    total and an ETA, in rows for Parquet (its footer counts them), in bytes read for CSV/TSV (their rows
    are known only once read through), with the rows scored so far beside it."""
    rows = parquet_rows(path)
    if rows is not None:
        with tqdm(total=rows, unit="comment", desc=f"scoring {path.name}", disable=not enabled) as bar:
            yield iter_table(path, columns, chunk_rows), lambda chunk, done: bar.update(chunk)
        return
    with (
        path.open("rb") as raw,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"scoring {path.name}",
            disable=not enabled,
        ) as bar,
    ):
        chunks = iter_table(path, columns, chunk_rows, handle=CountingReader(raw, bar))
        yield chunks, lambda chunk, done: bar.set_postfix_str(f"{done} comments")


class CountingReader:
    """A binary file that moves a progress bar by the bytes read from it (compressed bytes for .gz)."""

    def __init__(self, raw, bar: tqdm):
        self.raw, self.bar = raw, bar

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bar.update(len(data))
        return data

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def __iter__(self):
        return iter(self.raw)


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
    """Scores every row of a table into a CSV, TSV, Parquet or JSON Lines file, `chunk_rows` rows at a time.

    Writes `id_column` (default: `id` when the file has one) first, then one probability column per tag,
    then `<tag>_pred` 0/1 columns when `threshold` is given. The output appears only when complete.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}.")
    refuse_to_overwrite(output_path, input_path, overwrite=overwrite)
    kind = output_format(output_path)
    id_column = check_columns(input_path, text_column, id_column)
    cutoffs = None if threshold is None else scorer.thresholds_for(threshold)  # fails before any work
    tags, pred_columns = scorer.tags, [f"{tag}_pred" for tag in scorer.tags]
    header = ([id_column] if id_column else []) + tags + (pred_columns if cutoffs is not None else [])
    rows = blank = unscored = 0
    first_unscored: tuple[int, str | None] | None = None  # (row number in the file, its error)
    started = time.perf_counter()
    columns = [c for c in (id_column, text_column) if c]
    with (
        atomic_output(output_path) as partial,
        ScoresFile(partial, kind, header) as scores,
        reading_with_progress(input_path, columns, chunk_rows, progress) as (chunks, scored_rows),
    ):
        for chunk in chunks:
            texts, chunk_blank = clean_texts(chunk[text_column])
            scored = unscored_if_not_finite(scorer.score(texts, progress=False))
            scores.write(score_table(scored, tags, cutoffs, chunk[id_column] if id_column else None))
            if scored.failed.size and first_unscored is None:
                first_unscored = (rows + int(scored.failed[0]) + 1, scored.first_error)
            rows, blank, unscored = rows + len(texts), blank + chunk_blank, unscored + scored.failed.size
            scored_rows(len(texts), rows)
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
