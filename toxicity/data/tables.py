"""Reading tables: one module for every tool that reads a table of comments.

Format detection (CSV, TSV, optionally .gz/.bz2/.xz/.zip compressed, or Parquet, by the file name),
reading a whole table (a file, or a member of a zip archive) with errors that name the file and what
to do, reading its header alone, checking columns, and reading it a chunk of rows at a time (as it comes,
or as numbered chunks of exact row ranges that a reader may skip: `iter_chunks`).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from toxicity.core.errors import DataError


@dataclass(frozen=True)
class TableSource:
    """A table on disk: a file, or a member of a zip archive (Kaggle's competition download)."""

    path: Path
    member: str | None = None
    separator: str | None = None  # None: by the name (tab for .tsv, comma otherwise)

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return (self.member or self.path.name).lower()


def read_table(source: TableSource | str | Path) -> pd.DataFrame:
    """Reads CSV, TSV (optionally .gz/.zip/.bz2/.xz compressed) or Parquet into a frame of at least one
    row."""
    if not isinstance(source, TableSource):
        source = TableSource(Path(source))
    if not source.path.is_file():
        raise DataError(
            f"{source}: file not found. Check the path (a folder with train.csv, a .zip, or a table)."
        )
    try:
        frame = _read(source)
    except _DAMAGED as error:
        raise _damaged(source, error) from error
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        ValueError,
    ) as error:
        raise DataError(
            f"{source}: cannot be read as a table ({_one_line(error)}). Give a CSV, TSV or Parquet file."
            f"{separator_hint(_header(source))}"
        ) from error
    if frame.empty:
        raise DataError(
            f"{source}: the file has no rows. Give a file with a header and at least one comment."
        )
    return frame


# Damaged compressed bytes surface from deep inside pandas as these, not as parser errors
# (a bad CRC-32 is zipfile.BadZipFile; gzip.BadGzipFile is an OSError, so it must be caught first).
_DAMAGED = (zlib.error, zipfile.BadZipFile, gzip.BadGzipFile, EOFError)


def _damaged(source: TableSource, error: Exception) -> DataError:
    """The archive or compressed file is broken, not the table in it: the fix is a fresh copy, not an edit."""
    where = f"{source.path}: member '{source.member}' of the archive" if source.member else f"{source.path}"
    return DataError(
        f"{where} is damaged ({type(error).__name__}: {_one_line(error)}). Download or copy it again "
        "(or unpack it elsewhere and give the unpacked table or folder)."
    )


def _one_line(error: Exception) -> str:
    """pandas' tokenizer errors end in a newline; a message stays one line for logs and CLI output."""
    return " ".join(str(error).split())


def _read(source: TableSource, nrows: int | None = None) -> pd.DataFrame:
    if source.member is None:
        return _read_handle(source.path, source.name, "infer", nrows, source.separator)
    compression = {"zip": "zip", "gz": "gzip", "bz2": "bz2", "xz": "xz"}.get(source.name.rsplit(".", 1)[-1])
    with zipfile.ZipFile(source.path) as archive, archive.open(source.member) as handle:
        return _read_handle(handle, source.name, compression, nrows, source.separator)


def _header(source: TableSource) -> list[str]:
    """The column names alone, or none: only used to word an error, so it must not raise one itself."""
    try:
        return [str(column) for column in _read(source, nrows=0).columns]
    except Exception:  # noqa: BLE001 - the caller is already reporting the real error
        return []


def separator_hint(columns: Sequence[object]) -> str:
    """A hint for a ';'-separated file read with ',': its whole header becomes one column name with ';' in it.

    Separators are not guessed: a comment may hold ';', so a guess could silently shift columns.
    """
    if len(columns) == 1 and ";" in str(columns[0]):
        return (
            " This looks semicolon-separated (the header is one column holding ';'); save the file with "
            "',' separators, as a .tsv, or as .parquet."
        )
    return ""


def table_format(name: str) -> str:
    """'parquet', 'tsv' or 'csv', from a file name (a .gz/.bz2/.xz/.zip suffix is compression)."""
    name = name.lower()
    for compression in (".gz", ".bz2", ".xz", ".zip"):
        name = name.removesuffix(compression)
    return "parquet" if name.endswith(".parquet") else "tsv" if name.endswith(".tsv") else "csv"


def _read_handle(
    handle, name: str, compression: str | None, nrows: int | None = None, separator: str | None = None
) -> pd.DataFrame:
    kind = table_format(name)
    if kind == "parquet":
        return pd.read_parquet(handle)
    sep = separator or ("\t" if kind == "tsv" else ",")
    return pd.read_csv(
        handle, sep=sep, compression=compression, keep_default_na=False, na_values=[""], nrows=nrows
    )


def is_table_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return (
        Path(path).is_file()
        and any(ext in name for ext in (".csv", ".tsv", ".parquet"))
        and not (name.endswith(".zip") and _is_competition_zip(Path(path)))
    )


def _is_competition_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(member.startswith("train.csv") for member in archive.namelist())


def table_columns(path: Path) -> list[str]:
    """The column names of a table file, read from its header (or Parquet schema) only."""
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        if table_format(path.name) == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).schema_arrow.names
        return pd.read_csv(
            path, sep="\t" if table_format(path.name) == "tsv" else ",", nrows=0
        ).columns.tolist()
    except Exception as error:  # pandas and pyarrow raise many kinds for a file that is not a table
        raise DataError(
            f"{path}: cannot be read as a table ({error}). Give a CSV, TSV or Parquet file."
        ) from error


def check_columns(path: Path, text_column: str, id_column: str | None) -> str | None:
    """Raises unless the table has the columns; returns the id column to keep (`id` if present by default)."""
    columns = table_columns(path)
    id_column = id_column or ("id" if "id" in columns else None)
    missing = [c for c in (text_column, id_column) if c is not None and c not in columns]
    if missing:
        raise DataError(
            f"{path}: no column(s) {missing}; it has {columns}. "
            "Name the text column with --text-column (and the id column with --id-column)."
        )
    return id_column


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}


def iter_table(path: Path, columns: list[str], chunk_rows: int, handle=None) -> Iterator[pd.DataFrame]:
    """`columns` of the table, `chunk_rows` rows at a time (CSV/TSV read as strings: an id 007 stays 007).

    `handle`: the file opened in binary (e.g. one that counts the bytes read); `path` still names it."""
    if table_format(path.name) == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
        return
    yield from pd.read_csv(
        path if handle is None else handle,
        sep="\t" if table_format(path.name) == "tsv" else ",",
        compression="infer" if handle is None else COMPRESSIONS.get(path.suffix.lower()),
        usecols=columns,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        chunksize=chunk_rows,
    )


# ----------------------------------------------------------------------------------- numbered chunks
@dataclass
class Chunk:
    """Chunk `number` of a table cut into `chunk_rows` rows: rows number*chunk_rows onwards."""

    number: int
    first_row: int
    frame: pd.DataFrame | None  # None for a chunk the reader does not want (read past, not kept)
    last: bool  # the table's last chunk


def row_ranges(rows: int, chunk_rows: int) -> list[range]:
    """The rows of each chunk of a table of `rows` rows: chunk k holds rows k*chunk_rows onwards, the last
    chunk fewer."""
    return [range(first, min(rows, first + chunk_rows)) for first in range(0, rows, chunk_rows)]


def parquet_rows(path: Path) -> int | None:
    """A Parquet file's rows, from its footer; None for CSV/TSV (known only once read through)."""
    if table_format(path.name) != "parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def iter_chunks(
    path: Path, columns: list[str], chunk_rows: int, wanted: Callable[[int], bool]
) -> Iterator[Chunk]:
    """Every chunk of the table in order, with its rows for the `wanted` ones.

    Parquet: only the row groups of wanted chunks are read. CSV/TSV cannot be entered mid-file, so the
    whole file is parsed (cheap next to scoring) and the wanted chunks kept.
    """
    if table_format(path.name) == "parquet":
        readers = _parquet_range_readers(path, columns, chunk_rows)
    else:
        chunks = iter_table(path, columns, chunk_rows)
        readers = (functools.partial(frame.reset_index, drop=True) for frame in chunks)
    for number, (read, last) in enumerate(_with_last(readers)):
        frame = read() if wanted(number) else None
        yield Chunk(number, number * chunk_rows, frame, last)


def _with_last(items: Iterator) -> Iterator[tuple[object, bool]]:
    """Each item with whether it is the last one (one item read ahead)."""
    ahead = next(items, None)
    while ahead is not None:
        item, ahead = ahead, next(items, None)
        yield item, ahead is None


def _parquet_range_readers(
    path: Path, columns: list[str], chunk_rows: int
) -> Iterator[Callable[[], pd.DataFrame]]:
    """Per chunk, a function that reads its exact rows (from the row groups that hold them)."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    sizes = (source.metadata.row_group(g).num_rows for g in range(source.num_row_groups))
    group_starts = list(itertools.accumulate(sizes, initial=0))
    for rows in row_ranges(source.metadata.num_rows, chunk_rows):
        yield functools.partial(_read_row_range, source, group_starts, rows, columns)


def _read_row_range(source, group_starts: list[int], rows: range, columns: list[str]) -> pd.DataFrame:
    import pyarrow as pa

    first, end = rows.start, rows.stop
    groups = [g for g, start in enumerate(group_starts[:-1]) if start < end and group_starts[g + 1] > first]
    position, pieces = group_starts[groups[0]], []
    for batch in source.iter_batches(batch_size=len(rows), row_groups=groups, columns=columns):
        lo, hi = max(first - position, 0), min(end - position, batch.num_rows)
        if hi > lo:
            pieces.append(batch.slice(lo, hi - lo))
        position += batch.num_rows
        if position >= end:
            break
    return pa.Table.from_batches(pieces).to_pandas()


# ------------------------------------------------------------------------------------- TweetEval folders
TWEETEVAL_SPLITS = ("train", "val", "test")
TWEETEVAL_KINDS = ("text", "labels")


def tweeteval_file(folder: Path, split: str, kind: str) -> Path | None:
    """`{split}_{kind}.txt` (or .gz) of a TweetEval task folder, if there."""
    for suffix in ("", ".gz"):
        path = folder / f"{split}_{kind}.txt{suffix}"
        if path.is_file():
            return path
    return None


def tweeteval_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    """`{split}_text.txt` and `{split}_labels.txt` (optionally .gz) of a TweetEval task folder."""
    if not folder.is_dir():
        return None
    text, labels = (tweeteval_file(folder, split, kind) for kind in TWEETEVAL_KINDS)
    return (text, labels) if text and labels else None


def is_tweeteval_folder(folder: Path) -> bool:
    """A folder holding any TweetEval split file: it claims to be a task folder, so it is read as one."""
    return folder.is_dir() and any(
        tweeteval_file(folder, split, kind) for split in TWEETEVAL_SPLITS for kind in TWEETEVAL_KINDS
    )


def require_tweeteval_split(folder: Path, split: str) -> tuple[Path, Path]:
    """The split's two files, or a DataError naming the missing one(s) and what the folder holds."""
    files = {kind: tweeteval_file(folder, split, kind) for kind in TWEETEVAL_KINDS}
    missing = [f"{split}_{kind}.txt" for kind, path in files.items() if path is None]
    if missing:
        held = sorted(path.name for path in folder.iterdir() if path.is_file())
        raise DataError(
            f"{folder}: this TweetEval folder has no {' and no '.join(missing)} (or .gz); it holds "
            f"{held}. Copy the task's complete folder (train, val and test text and labels files) "
            "from cardiffnlp/tweeteval"
            + (
                "."
                if split == "train"
                else f", or give the {split} rows as a labelled table (fit: --data.{split}_path)."
            )
        )
    return files["text"], files["labels"]


def read_lines(path: Path) -> list[str]:
    """One item per line; only the newline ends a line (a tweet may hold other line-break characters)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def tweeteval_task(folder: str | Path) -> str | None:
    """The task name of a TweetEval folder (`offensive` for tweeteval_offensive/ or offensive/), else None."""
    folder = Path(folder)
    if not is_tweeteval_folder(folder):
        return None
    return folder.resolve().name.removeprefix("tweeteval_") or "label"


def read_tweeteval(folder: Path, split: str) -> tuple[pd.DataFrame, str]:
    text_file, labels_file = require_tweeteval_split(folder, split)
    texts, labels = read_lines(text_file), read_lines(labels_file)
    if len(texts) != len(labels):
        raise DataError(
            f"{text_file} has {len(texts)} lines but {labels_file} has {len(labels)}; "
            "they must line up one item per line."
        )
    try:
        values = [int(label) for label in labels]
    except ValueError as error:
        raise DataError(f"{labels_file}: every line must be an integer label ({error}).") from error
    return pd.DataFrame({"text": texts, "label": values}), f"{text_file} + {labels_file.name}"
