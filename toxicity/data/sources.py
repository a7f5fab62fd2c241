"""Where labelled comments come from: the Kaggle files (folder or zip), a table, a TweetEval folder."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from toxicity.core.errors import DataError
from toxicity.core.tags import TEXT_COLUMN  # noqa: F401 - the data layer's modules import it from here
from toxicity.data.tables import (
    TWEETEVAL_SPLITS,
    TableSource,
    is_table_file,
    is_tweeteval_folder,
    read_table,
    read_tweeteval,
    require_tweeteval_split,
)
from toxicity.data.validation import NO_RULE, TagRule, validate_comments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KaggleFiles:
    train: TableSource
    test: TableSource | None = None
    test_labels: TableSource | None = None


_SUFFIXES = ("", ".zip", ".gz")


def find_kaggle_files(path: str | Path) -> KaggleFiles:
    """Finds train.csv (and test.csv + test_labels.csv) in a folder or in the competition .zip."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder. Give the Kaggle folder or .zip (with train.csv), "
            "or a labelled .csv / .tsv / .parquet table."
        )
    if path.is_dir():

        def find(stem: str) -> TableSource | None:
            found = [path / f"{stem}.csv{s}" for s in _SUFFIXES if (path / f"{stem}.csv{s}").is_file()]
            return TableSource(found[0]) if found else None
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())

        def find(stem: str) -> TableSource | None:
            found = [f"{stem}.csv{s}" for s in _SUFFIXES if f"{stem}.csv{s}" in members]
            return TableSource(path, found[0]) if found else None
    else:
        raise DataError(
            f"{path}: not a folder, a .zip holding train.csv, or a table with a .csv / .tsv / .parquet "
            "name (optionally .gz / .zip compressed)."
        )
    train = find("train")
    if train is None:
        raise DataError(
            f"{path}: no train.csv (or train.csv.zip / train.csv.gz) in it. "
            "Give the Kaggle folder or zip, or a single labelled table."
        )
    test, test_labels = find("test"), find("test_labels")
    if (test is None) != (test_labels is None):
        log.warning("%s: test.csv and test_labels.csv come as a pair; ignoring the one found alone.", path)
        test = test_labels = None
    return KaggleFiles(train, test, test_labels)


def load_kaggle_test(files: KaggleFiles, text_column: str, label_columns: Sequence[str]) -> pd.DataFrame:
    """Joins Kaggle's test.csv and test_labels.csv on `id` and keeps the scored rows only."""
    texts, labels = read_table(files.test), read_table(files.test_labels)
    for source, table in ((files.test, texts), (files.test_labels, labels)):
        if "id" not in table.columns:
            raise DataError(f"{source}: no 'id' column to join test.csv with test_labels.csv on.")
    joined = texts.merge(labels, on="id", how="inner", suffixes=("_text", ""))
    if len(joined) < len(labels):
        log.warning(
            "%s: %d label row(s) have no text in %s.",
            files.test_labels,
            len(labels) - len(joined),
            files.test,
        )
    return validate_comments(
        joined, f"{files.test} + {files.test_labels}", text_column, label_columns, allow_unscored=True
    )


def load_table(
    path: str | Path,
    text_column: str,
    label_columns: Sequence[str],
    rule: TagRule,
    separator: str | None = None,
    allow_unscored: bool = False,
) -> pd.DataFrame:
    """One labelled table, its tags made by `rule`, validated."""
    source = TableSource(Path(path), separator=separator)
    frame = rule.apply(read_table(source), source, label_columns)
    return validate_comments(frame, source, text_column, label_columns, allow_unscored=allow_unscored)


def load_tweeteval(
    folder: Path, label_columns: Sequence[str], splits: Sequence[str] = TWEETEVAL_SPLITS
) -> dict[str, pd.DataFrame]:
    """A TweetEval task folder's official `splits`; its `label` becomes the one tag.

    Every split asked for must be there: a folder of official splits missing its val files would otherwise
    train on a random split of train without saying so, and results would not compare with published ones.
    """
    for split in splits:
        require_tweeteval_split(folder, split)
    if len(label_columns) != 1:
        raise DataError(
            f"{folder}: a TweetEval folder has one label per tweet; give one tag "
            f"(--data.label_columns '[offensive]'), not {list(label_columns)}."
        )
    loaded = {}
    for split in splits:
        frame, source = read_tweeteval(folder, split)
        loaded[split] = validate_comments(
            frame.rename(columns={"label": label_columns[0]}), source, "text", label_columns
        )
    return loaded


def load_splits(
    data_path: str | Path,
    text_column: str,
    label_columns: Sequence[str],
    test_path: str | Path | None = None,
    val_path: str | Path | None = None,
    rule: TagRule = NO_RULE,
    separator: str | None = None,
) -> dict[str, pd.DataFrame]:
    """`train`, and `val` / `test` where the data has them: a Kaggle folder or zip (train.csv, and
    test.csv + test_labels.csv), a TweetEval task folder (official train / val / test), or one labelled
    table; `val_path` and `test_path` add or replace those splits with tables of their own."""
    data_path = Path(data_path)
    if is_tweeteval_folder(data_path):  # the splits a table of the user's own does not replace must be there
        wanted = ["train", *(["val"] if val_path is None else []), *(["test"] if test_path is None else [])]
        splits = load_tweeteval(data_path, label_columns, wanted)
    elif is_table_file(data_path):
        splits = {"train": load_table(data_path, text_column, label_columns, rule, separator)}
    else:
        files = find_kaggle_files(data_path)
        train = rule.apply(read_table(files.train), files.train, label_columns)
        splits = {"train": validate_comments(train, files.train, text_column, label_columns)}
        if files.test is not None:
            splits["test"] = load_kaggle_test(files, text_column, label_columns)
    if val_path is not None:
        splits["val"] = load_table(val_path, text_column, label_columns, rule, separator)
    if test_path is not None:
        splits["test"] = load_table(
            test_path, text_column, label_columns, rule, separator, allow_unscored=True
        )
    return splits
