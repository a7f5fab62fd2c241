"""The folder of Parquet shards a sharded scoring job writes: its layout, its records, its totals, its merge.

    scored/
        _manifest.json        the job (toxicity.inference.manifest): a rerun of another job is refused
        _done/000003.json     chunk 3's record (ChunkRecord), written once its shard is whole
        part-000003.parquet   chunk 3's rows: `row` (the position in the input), id, scores, decisions
        _merged.json          the files merged from the folder: {path: {"sha256", "rows"}}

A chunk counts as finished only once both its shard and its record are written (each atomically, the
shard first); a chunk cut short by a crash has no record and is scored again, its shard replaced whole.
Readers of the folder (pandas, pyarrow.dataset, DuckDB, Spark) ignore the names that start with `_` or
`.`, so the folder reads as one Parquet dataset; `merge_shards` writes it as one file in input order
(checking each shard's `row` column) and records it in `_merged.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toxicity.core.errors import DataError
from toxicity.core.files import atomic_output, file_sha256, refuse_to_overwrite, write_text_atomically
from toxicity.inference.files import ScoresFile, output_format

MANIFEST = "_manifest.json"
DONE_FOLDER = "_done"
MERGED = "_merged.json"
OUTPUT_FORMAT = 2  # bump when the shard layout changes: an old folder is then refused, not mixed
ROW_COLUMN = "row"  # each shard row's position in the input (0-based), so the dataset sorts back to it


def read_json(path: Path, what: str, remedy: str) -> dict:
    """A JSON object the scorer wrote; a damaged one is one DataError naming it and what to do."""
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: damaged {what} ({error}). {remedy}") from None
    if not isinstance(stored, dict):
        raise DataError(f"{path}: damaged {what} (not a JSON object). {remedy}")
    return stored


# -------------------------------------------------------------------------------------- shards, records
@dataclass(frozen=True)
class ChunkRecord:
    """One finished chunk: what `_done/<chunk>.json` holds."""

    chunk: int
    first_row: int
    rows: int
    blank_texts: int
    unscored_rows: int
    first_error: str | None  # "data row N: error" of the first unscored row
    last: bool  # the input's last chunk (so a merge knows how many there are)
    rank: int
    seconds: float


def record_path(folder: Path, chunk: int) -> Path:
    return folder / DONE_FOLDER / f"{chunk:06d}.json"


def shard_path(folder: Path, chunk: int) -> Path:
    return folder / f"part-{chunk:06d}.parquet"


def write_shard(folder: Path, record: ChunkRecord, table: pd.DataFrame) -> None:
    """The chunk's shard (`table`, after a `row` column of its rows' positions in the input), then its
    record: the chunk counts as finished only once both are whole."""
    table.insert(0, ROW_COLUMN, np.arange(record.first_row, record.first_row + record.rows, dtype=np.int64))
    with atomic_output(shard_path(folder, record.chunk)) as partial:
        table.to_parquet(partial, index=False)
    write_text_atomically(record_path(folder, record.chunk), json.dumps(asdict(record)) + "\n")


def read_record(path: Path) -> ChunkRecord:
    remedy = (
        f"Delete it and its shard {shard_path(path.parent.parent, int(path.stem)).name} (if any), then rerun "
        "the same command: that chunk is scored again."
    )
    stored = read_json(path, "chunk record", remedy)
    try:
        record = ChunkRecord(**stored)
    except TypeError:
        raise DataError(f"{path}: damaged chunk record (not the fields of one). {remedy}") from None
    if record.chunk != int(path.stem):
        raise DataError(f"{path}: damaged chunk record (it names chunk {record.chunk!r}). {remedy}")
    return record


def finished_chunks(folder: Path) -> dict[int, ChunkRecord]:
    records = {}
    for path in sorted((folder / DONE_FOLDER).glob("[0-9]*.json")):
        if not path.stem.isdigit():
            continue  # not a name the writer gives
        record = read_record(path)
        if shard_path(folder, record.chunk).is_file():  # a record never outlives its shard, but check
            records[record.chunk] = record
    return records


def chunk_count(records: dict[int, ChunkRecord]) -> int | None:
    """How many chunks the input has, once the last chunk's record tells (None before)."""
    last = [r.chunk for r in records.values() if r.last]
    return last[0] + 1 if last else None


def unfinished_chunks(records: dict[int, ChunkRecord]) -> list[int] | None:
    """The input's chunks without a record; None while their number is unknown."""
    count = chunk_count(records)
    return None if count is None else [chunk for chunk in range(count) if chunk not in records]


# ------------------------------------------------------------------------------------------ the totals
@dataclass(frozen=True)
class DistributedSummary:
    rows: int  # rows in the output folder
    rows_scored: int  # scored by this run (the others were finished before it)
    shards: int
    shards_skipped: int  # finished by an earlier run
    blank_texts: int
    unscored_rows: int
    first_error: str | None
    seconds: float
    complete: bool  # every chunk of the input has its shard

    @property
    def comments_per_second(self) -> float:
        return self.rows_scored / self.seconds if self.seconds > 0 else float("nan")


def summarize(folder: Path, before: set[int], seconds: float, rank: int | None = None) -> DistributedSummary:
    """The folder's totals; `rows_scored` counts the chunks finished since `before` (by `rank` alone when
    given)."""
    records = finished_chunks(folder)
    unscored = [r for r in sorted(records.values(), key=lambda r: r.chunk) if r.unscored_rows]
    return DistributedSummary(
        rows=sum(r.rows for r in records.values()),
        rows_scored=sum(r.rows for c, r in records.items() if c not in before and rank in (None, r.rank)),
        shards=len(records),
        shards_skipped=len(before & set(records)),
        blank_texts=sum(r.blank_texts for r in records.values()),
        unscored_rows=sum(r.unscored_rows for r in records.values()),
        first_error=unscored[0].first_error if unscored else None,
        seconds=seconds,
        complete=unfinished_chunks(records) == [],
    )


# ------------------------------------------------------------------------------------------- the merge
REMAKE_MERGE_RECORD = "Delete it, and the merged file or --merge another path, then rerun."


def check_merge_path(folder: Path, output: Path) -> None:
    """A merged file goes outside the shard folder (a reader of the folder would count its rows twice) and
    is one of the formats predict writes."""
    if output.resolve().is_relative_to(folder.resolve()):
        raise DataError(
            f"--merge {output} is inside the output folder {folder}: readers of the folder would take it "
            "for shards and count its rows twice. Give --merge a path outside that folder."
        )
    output_format(output)


def is_merged(folder: Path, output: Path) -> bool:
    """Whether `output` is a merge of `folder` written by `merge_shards`, unchanged since (same sha256)."""
    path = folder / MERGED
    if not path.is_file() or not output.is_file():
        return False
    merges = read_json(path, "merge record", REMAKE_MERGE_RECORD)
    written = merges.get(str(output.resolve()))
    return isinstance(written, dict) and written.get("sha256") == file_sha256(output)


def merge_shards(folder: Path, output: Path, overwrite: bool = False) -> int:
    """Writes every shard, in input order, as one file (without the `row` column: the same columns as
    `toxicity predict --output x.csv`); a shard at a time, so memory stays flat. Records it in
    `_merged.json` (so a rerun knows it). Returns the rows written."""
    check_merge_path(folder, output)
    refuse_to_overwrite(output, overwrite=overwrite)
    records = finished_chunks(folder)
    missing = unfinished_chunks(records)
    if missing != []:
        raise DataError(
            f"{folder}: chunk(s) {(missing or ['the last'])[:10]} are not scored yet; rerun the scoring "
            "command to finish them, then merge."
        )
    rows = 0
    with atomic_output(output) as partial, ScoresFile(partial, output_format(output)) as merged:
        for chunk in range(chunk_count(records)):
            table = read_shard(folder, records[chunk], rows)
            merged.write(table)
            rows += table.num_rows
    record_merge(folder, output, rows)
    return rows


def read_shard(folder: Path, record: ChunkRecord, first_row: int):
    """The chunk's shard without its `row` column, once that column holds exactly the chunk's rows, in
    order: `first_row` (the rows of the chunks before it) onwards. A shard swapped with another or copied
    from another folder is refused, never merged as rows twice and rows lost."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shard_path(folder, record.chunk)
    remedy = (
        f"Delete it and {record_path(folder, record.chunk)}, then rerun the scoring command: that chunk is "
        "scored again."
    )
    try:
        table = pq.read_table(path)
    except pa.ArrowException as error:
        raise DataError(f"{path}: not a readable shard ({error}). {remedy}") from None
    wanted = np.arange(first_row, first_row + record.rows)
    rows = table.column(ROW_COLUMN).to_numpy() if ROW_COLUMN in table.column_names else None
    if rows is None or not np.array_equal(rows, wanted):
        held = "no row column" if rows is None else _row_span(rows)
        raise DataError(
            f"{path}: chunk {record.chunk} is rows {_row_span(wanted)} of the input, but this shard holds "
            f"{held} (shards swapped, or copied from another folder?). {remedy}"
        )
    return table.drop_columns([ROW_COLUMN])


def _row_span(rows: np.ndarray) -> str:
    return f"{rows[0]}..{rows[-1]} ({len(rows)} rows)" if len(rows) else "no rows"


def record_merge(folder: Path, output: Path, rows: int) -> None:
    path = folder / MERGED
    merges = read_json(path, "merge record", REMAKE_MERGE_RECORD) if path.is_file() else {}
    merges[str(output.resolve())] = {"sha256": file_sha256(output), "rows": rows}
    write_text_atomically(path, json.dumps(merges, indent=2) + "\n")
