"""Comments in, padded token batches out.

CSV → validated frame (text + 0/1 tag columns) → split → balance and augment (train only, optional)
→ token ids (once) → length-grouped batches padded per batch. Each arrow is one function below.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from toxicity.augment import obfuscated_copies
from toxicity.backbone import DEFAULT_BACKBONE, load_tokenizer
from toxicity.demo import DEMO_CSV
from toxicity.labels import LABELS
from toxicity.tables import (
    TWEETEVAL_SPLITS,
    DataError,
    TableSource,
    is_table_file,
    is_tweeteval_folder,
    read_table,
    read_tweeteval,
    require_tweeteval_split,
    separator_hint,
    table_format,
)

log = logging.getLogger(__name__)

TEXT_COLUMN = "comment_text"
DEFAULT_MAX_LENGTH = 128  # tokens; the model stores the value it was trained with
UNSCORED = -1  # Kaggle's test_labels.csv marks rows it did not score with -1 in every tag column


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
        raise DataError(f"{path}: no such file or folder. Give the Kaggle folder or .zip (with train.csv), "
                        "or a labelled .csv / .tsv / .parquet table.")
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
        raise DataError(f"{path}: not a folder, a .zip holding train.csv, or a table with a .csv / .tsv / .parquet "
                        "name (optionally .gz / .zip compressed).")
    train = find("train")
    if train is None:
        raise DataError(f"{path}: no train.csv (or train.csv.zip / train.csv.gz) in it. "
                        "Give the Kaggle folder or zip, or a single labelled table.")
    test, test_labels = find("test"), find("test_labels")
    if (test is None) != (test_labels is None):
        log.warning("%s: test.csv and test_labels.csv come as a pair; ignoring the one found alone.", path)
        test = test_labels = None
    return KaggleFiles(train, test, test_labels)


# ------------------------------------------------------------------------------------------- validating
def validate_comments(frame: pd.DataFrame, source: object, text_column: str, label_columns: Sequence[str],
                      allow_unscored: bool = False) -> pd.DataFrame:
    """Returns a frame with `text` and one 0/1 int column per tag (plus `id` when present).

    Rows with a missing or blank text are dropped and counted; with `allow_unscored`, rows whose tags
    are all -1 (Kaggle's unscored test rows) are dropped and counted too. Tags are compared as numbers:
    a CSV column with one non-numeric cell is read as strings, and Parquet may store "0"/"1" as text.
    """
    missing = [c for c in [text_column, *label_columns] if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; it has {list(frame.columns)}. "
                        f"Set text_column / label_columns to the names your file uses.{separator_hint(frame.columns)}")
    original = frame
    labels = frame[list(label_columns)].apply(pd.to_numeric, errors="coerce")
    if allow_unscored:
        unscored = (labels == UNSCORED).all(axis=1)
        if unscored.any():
            log.info("%s: %d unscored rows (tags -1) left out of %d.", source, int(unscored.sum()), len(frame))
        frame, labels = frame[~unscored], labels[~unscored]
    _check_tags(original, labels, source, allow_unscored)
    texts = frame[text_column]
    blank = texts.isna() | texts.astype(str).str.strip().eq("")
    if blank.any():
        log.warning("%s: dropped %d row(s) with a missing or empty '%s'.", source, int(blank.sum()), text_column)
    out = pd.DataFrame({"text": texts[~blank].astype(str)})
    if "id" in frame.columns:
        out.insert(0, "id", frame.loc[~blank, "id"])
    for column in label_columns:
        out[column] = labels.loc[~blank, column].astype(np.int64)
    if out.empty:
        raise DataError(f"{source}: no usable rows left (every '{text_column}' is empty or every row unscored).")
    return out.reset_index(drop=True)


def _check_tags(original: pd.DataFrame, labels: pd.DataFrame, source: object, allow_unscored: bool) -> None:
    """Raises on the first row (in file order) holding a tag other than 0/1, quoting the value as written."""
    bad = ~labels.isin([0, 1])
    bad_rows = bad.any(axis=1)
    if not bad_rows.any():
        return
    row = bad_rows.idxmax()  # the first True
    column = bad.columns[bad.loc[row].to_numpy()][0]
    value = original.at[row, column]
    value = value.item() if hasattr(value, "item") else value
    empty = pd.isna(value) or (isinstance(value, str) and not value.strip())
    shown = "an empty value" if empty else repr(value)
    raise DataError(f"{source}: column '{column}' holds {shown} at {_row_name(original, row, source)}; "
                    f"tags must be 0 or 1{' (or -1 for unscored rows)' if allow_unscored else ''}. "
                    "Fix the value or map the column to 0/1.")


def _row_name(frame: pd.DataFrame, row, source: object) -> str:
    """'data row 4 (line 5, id 'c3')': what a user searches for in an editor, a spreadsheet, or by id.

    `row` is the frame's original index (read_table's 0-based data row), so rows dropped before the
    check do not shift it. A line number is given for CSV/TSV only, and counts the line breaks inside
    quoted cells of earlier rows (comments often span lines). A join of two files has only its ids.
    """
    ident = f"id {frame.at[row, 'id']!r}" if "id" in frame.columns else ""
    if _table_kind(source) is None or not pd.api.types.is_integer_dtype(frame.index):
        return f"the row with {ident}" if ident else f"data row {frame.index.get_loc(row) + 1}"
    line = ""
    if _table_kind(source) != "parquet":
        earlier = frame[frame.index < row].select_dtypes(include=["object", "string"])
        breaks = sum(int(earlier[column].astype(str).str.count("\n").sum()) for column in earlier.columns)
        line = f"line {row + 2 + breaks}"
    details = ", ".join(filter(None, [line, ident]))
    return f"data row {row + 1}" + (f" ({details})" if details else "")


def _table_kind(source: object) -> str | None:
    """'csv', 'tsv' or 'parquet' for one table on disk; None for anything else (a join of two files)."""
    if isinstance(source, TableSource):
        return table_format(source.name)
    path = Path(str(source))
    return table_format(path.name) if path.is_file() else None


def load_kaggle_test(files: KaggleFiles, text_column: str, label_columns: Sequence[str]) -> pd.DataFrame:
    """Joins Kaggle's test.csv and test_labels.csv on `id` and keeps the scored rows only."""
    texts, labels = read_table(files.test), read_table(files.test_labels)
    for source, table in ((files.test, texts), (files.test_labels, labels)):
        if "id" not in table.columns:
            raise DataError(f"{source}: no 'id' column to join test.csv with test_labels.csv on.")
    joined = texts.merge(labels, on="id", how="inner", suffixes=("_text", ""))
    if len(joined) < len(labels):
        log.warning("%s: %d label row(s) have no text in %s.", files.test_labels, len(labels) - len(joined), files.test)
    return validate_comments(joined, f"{files.test} + {files.test_labels}", text_column, label_columns,
                             allow_unscored=True)


@dataclass(frozen=True)
class TagRule:
    """How tag columns are made from a table's own columns, before validation.

    `label_from` turns one categorical column into tags: "class:0=hate+offensive,1=offensive" gives a row
    with class 0 both tags, class 1 `offensive`, any other value none (Davidson's `class`).
    `binarise_at` turns fractional tags (annotator shares in [0, 1], e.g. ETHOS `isHate`) into 1 where
    the value is at least the cut.
    """

    label_from: str | None = None
    binarise_at: float | None = None

    def __post_init__(self):
        check_binarise_at(self.binarise_at)

    def apply(self, frame: pd.DataFrame, source: object, tags: Sequence[str]) -> pd.DataFrame:
        if self.label_from:
            frame = tags_from_column(frame, source, tags, self.label_from)
        if self.binarise_at is not None:
            frame = binarise_tags(frame, source, tags, self.binarise_at)
        return frame


def parse_label_from(spec: str, tags: Sequence[str]) -> tuple[str, dict[str, list[str]]]:
    """'COLUMN:VALUE=TAG+TAG,VALUE=TAG' as (column, {value: [tags]}), every tag one of `tags`, no value twice."""
    column, sep, rules = spec.partition(":")
    mapping: dict[str, list[str]] = {}
    repeated = []
    for rule in rules.split(",") if sep else []:
        value, eq, named = rule.partition("=")
        if value.strip() in mapping:
            repeated.append(value.strip())
        mapping[value.strip()] = [tag.strip() for tag in named.split("+") if tag.strip()] if eq else []
    unknown = sorted({tag for named in mapping.values() for tag in named} - set(tags))
    if not column.strip() or not mapping or any(not named for named in mapping.values()) or unknown or repeated:
        raise DataError(f"--data.label_from {spec!r}: write COLUMN:VALUE=TAG+TAG,VALUE=TAG with tags among "
                        f"label_columns {list(tags)}" + (f" (not tags: {unknown})" if unknown else "")
                        + (f" and each value once (repeated: {repeated})" if repeated else "") + ".")
    return column.strip(), mapping


def tags_from_column(frame: pd.DataFrame, source: object, tags: Sequence[str], spec: str) -> pd.DataFrame:
    column, mapping = parse_label_from(spec, tags)
    if column not in frame.columns:
        raise DataError(f"{source}: --data.label_from names column '{column}', which is not there; it has "
                        f"{list(frame.columns)}.")
    _refuse_blank_cells(frame, column, source)
    values, rules = comparable_values(frame[column], mapping, spec)
    _refuse_rules_matching_no_row(values, rules, column, source, spec)
    unmapped = ~values.isin(list(rules))
    if unmapped.any():
        log.info("%s: %d row(s) with a '%s' value not in label_from (%s) have no tag.", source,
                 int(unmapped.sum()), column, sorted(values[unmapped].unique().tolist())[:5])
    frame = frame.copy()
    for tag in tags:
        frame[tag] = values.map(lambda value, tag=tag: int(tag in rules.get(value, []))).astype(np.int64)
    return frame


def comparable_values(column: pd.Series, mapping: dict[str, list[str]],
                      spec: str) -> tuple[pd.Series, dict[object, list[str]]]:
    """The column's values and the rules' keys, as numbers when both are all numbers, else as stripped text.

    So `class:0=...` and `class:0.0=...` both match a column read as integers, or as floats (a column with a
    blank cell in it reads as floats). Two rule values that are the same number are refused.
    """
    numbers = pd.to_numeric(column, errors="coerce")
    keys = pd.to_numeric(pd.Series(list(mapping)), errors="coerce")
    if numbers.isna().any() or keys.isna().any():
        return column.astype(str).str.strip(), dict(mapping)
    rules = dict(zip(keys.astype(float), mapping.values()))
    if len(rules) < len(mapping):
        raise DataError(f"--data.label_from {spec!r}: two values are the same number ({list(mapping)}); "
                        "give each value once.")
    return numbers.astype(float), rules


def _refuse_blank_cells(frame: pd.DataFrame, column: str, source: object) -> None:
    blank = frame[column].isna() | frame[column].astype(str).str.strip().eq("")
    if blank.any():
        row = blank.idxmax()  # the first True
        raise DataError(f"{source}: column '{column}' (--data.label_from) is empty at {_row_name(frame, row, source)}"
                        f" ({int(blank.sum())} empty cell(s) in all). Fill in a value (one not in label_from "
                        "gives no tag) or drop the row.")


def _refuse_rules_matching_no_row(values: pd.Series, rules: dict, column: str, source: object, spec: str) -> None:
    unmatched = [key for key in rules if not values.eq(key).any()]
    if unmatched:
        present = sorted(values.unique().tolist())
        raise DataError(f"{source}: --data.label_from {spec!r}: value(s) {[_plain(key) for key in unmatched]} match "
                        f"no row of column '{column}', whose values are {[_plain(v) for v in present[:10]]}"
                        f"{' ...' if len(present) > 10 else ''}. Use the column's own values.")


def _plain(value: object) -> object:
    """2.0 as 2 in messages: the user wrote the integer (or read it in the file)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_binarise_at(cut: float | None) -> None:
    """A cut in (0, 1]: tags are shares in [0, 1] made 1 at >= cut, so 0 tags every row and > 1 (or NaN) none."""
    if cut is not None and not 0 < cut <= 1:  # NaN fails both comparisons
        raise DataError(f"--data.binarise_at {cut}: give a cut above 0 and at most 1 (e.g. 0.5); fractional tags "
                        "become 1 where the share is at least the cut, so 0 would tag every row and a cut above 1 "
                        "(or nan) none.")


def binarise_tags(frame: pd.DataFrame, source: object, tags: Sequence[str], cut: float) -> pd.DataFrame:
    frame = frame.copy()
    for tag in tags:
        if tag not in frame.columns:
            continue  # the missing-column error comes from validation, with the file's columns
        values = pd.to_numeric(frame[tag], errors="coerce")
        if values.notna().all() and values.between(0, 1).all():
            log.info("%s: column '%s' binarised at >= %g (%d of %d rows).", source, tag, cut,
                     int((values >= cut).sum()), len(values))
            frame[tag] = (values >= cut).astype(np.int64)
    return frame


def load_table(path: str | Path, text_column: str, label_columns: Sequence[str], rule: TagRule,
               separator: str | None = None, allow_unscored: bool = False) -> pd.DataFrame:
    """One labelled table, its tags made by `rule`, validated."""
    source = TableSource(Path(path), separator=separator)
    frame = rule.apply(read_table(source), source, label_columns)
    return validate_comments(frame, source, text_column, label_columns, allow_unscored=allow_unscored)


def load_tweeteval(folder: Path, label_columns: Sequence[str],
                   splits: Sequence[str] = TWEETEVAL_SPLITS) -> dict[str, pd.DataFrame]:
    """A TweetEval task folder's official `splits`; its `label` becomes the one tag.

    Every split asked for must be there: a folder of official splits missing its val files would otherwise
    train on a random split of train without saying so, and results would not compare with published ones.
    """
    for split in splits:
        require_tweeteval_split(folder, split)
    if len(label_columns) != 1:
        raise DataError(f"{folder}: a TweetEval folder has one label per tweet; give one tag "
                        f"(--data.label_columns '[offensive]'), not {list(label_columns)}.")
    loaded = {}
    for split in splits:
        frame, source = read_tweeteval(folder, split)
        loaded[split] = validate_comments(frame.rename(columns={"label": label_columns[0]}), source, "text",
                                          label_columns)
    return loaded


def load_splits(data_path: str | Path, text_column: str, label_columns: Sequence[str],
                test_path: str | Path | None = None, val_path: str | Path | None = None,
                rule: TagRule = TagRule(), separator: str | None = None) -> dict[str, pd.DataFrame]:
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
        splits["test"] = load_table(test_path, text_column, label_columns, rule, separator, allow_unscored=True)
    return splits


# ------------------------------------------------------------------------------- splitting and balancing
def split_train_val(frame: pd.DataFrame, label_columns: Sequence[str], val_fraction: float,
                    seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split, stratified on each row's rarest tag, that never puts one text on both sides.

    Rows with the same text form one group; each group is assigned by its rarest tag (or `clean`), and
    every stratum with two or more groups sends at least one to each side, so rare tags reach both.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    labels = frame[list(label_columns)].to_numpy()
    group_ids = pd.factorize(frame["text"])[0]
    group_labels = pd.DataFrame(labels).groupby(group_ids).max().to_numpy()
    rarity_order = np.argsort(labels.sum(axis=0), kind="stable")  # rarest tag first
    strata = np.full(len(group_labels), -1)
    for tag in rarity_order[::-1]:  # the rarest tag a group has is written last and wins
        strata[group_labels[:, tag] == 1] = tag
    rng = np.random.default_rng(seed)
    val_groups = []
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        n_val = round(val_fraction * len(members))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val_groups.append(members[:n_val])
    in_val = np.isin(group_ids, np.concatenate(val_groups))
    return frame[~in_val].reset_index(drop=True), frame[in_val].reset_index(drop=True)


def check_split_sizes(train: pd.DataFrame, val: pd.DataFrame, frame: pd.DataFrame, source: object,
                      val_fraction: float) -> None:
    """Raises when a split is empty, which a tiny or all-duplicate table gives (one text stays on one side).

    Without this, the run fails much later in Lightning, with early stopping missing its `val_loss`.
    """
    for name, split, fix in (("validation", val, "a larger"), ("training", train, "a smaller")):
        if split.empty:
            raise DataError(f"{source}: the {name} split is empty: the table has {len(frame)} usable row(s) with "
                            f"{frame['text'].nunique()} distinct text(s), and rows with the same text stay on one "
                            f"side of the split. Give more rows with distinct texts, or {fix} --data.val_fraction "
                            f"(now {val_fraction}).")


def warn_overlapping_texts(train: pd.DataFrame, others: dict[str, pd.DataFrame | None], source: object) -> None:
    """Warns when texts of a given validation or test table are also training texts.

    A warning, not a refusal: the official TweetEval files overlap a little (hate: 3 of 1,000 val and 233
    of 2,970 test texts are training texts), and reposted comments are common. The count says whether
    the scores on that split measure memory more than generalisation.
    """
    seen = set(train["text"])
    for name, frame in others.items():
        if frame is None:
            continue
        shared = frame["text"].isin(seen)
        if shared.any():
            log.warning("%s: %d of %d %s rows (%.0f%%) have a text that is also in the training rows, so %s scores "
                        "are optimistic; give a %s table without the training texts.", source, int(shared.sum()),
                        len(frame), name, 100 * shared.mean(), name, name)


def warn_one_class_tags(splits: dict[str, pd.DataFrame], label_columns: Sequence[str], source: object) -> None:
    """Warns for each tag with no positive (or no negative) row in a split: it cannot be learned or scored there."""
    for name, frame in splits.items():
        for tag in label_columns:
            positives = int(frame[tag].sum())
            if positives in (0, len(frame)):
                log.warning("%s: tag '%s' has %s in the %s split (%d rows); it cannot be %s there (AUROC n/a). "
                            "Check label_columns, label_from and binarise_at, or give more rows.", source, tag,
                            "no positive row" if positives == 0 else "no negative row", name, len(frame),
                            "learned" if name == "training" else "scored")


def balance_clean_rows(frame: pd.DataFrame, label_columns: Sequence[str], n_clean: int,
                       seed: int) -> pd.DataFrame:
    """Keeps every row with a tag plus a seeded sample of `n_clean` rows with none (the reference recipe)."""
    is_toxic = frame[list(label_columns)].to_numpy().any(axis=1)
    clean = frame[~is_toxic]
    sample = clean.sample(n=min(n_clean, len(clean)), random_state=seed)
    log.info("Balanced training rows: %d tagged + %d of %d clean.", int(is_toxic.sum()), len(sample), len(clean))
    return pd.concat([frame[is_toxic], sample]).sort_index().reset_index(drop=True)


# ------------------------------------------------------------------------------------ tokens and batches
Truncation = Literal["head", "head_tail"]
HEAD_SHARE = 0.25  # head_tail keeps the first quarter of the budget and the last three quarters (Sun et al. 2019)


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int, truncation: Truncation = "head",
                   chunk_size: int = 4096) -> list[list[int]]:
    """Token ids with special tokens, at most `max_length` of them, not padded.

    `head` keeps the start of a long text; `head_tail` keeps its start and its end, where a long
    comment's verdict often is ("... and that is why you are an idiot").
    """
    if truncation not in ("head", "head_tail"):
        raise ValueError(f"truncation must be 'head' or 'head_tail', got {truncation!r}.")
    ids: list[list[int]] = []
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start:start + chunk_size])
        if truncation == "head":
            ids.extend(tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"])
        else:
            front, back = special_tokens_around(tokenizer)
            budget = max_length - len(front) - len(back)
            ids.extend(front + head_and_tail(row, budget) + back
                       for row in tokenizer(chunk, add_special_tokens=False)["input_ids"])
    return ids


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a text ([CLS] / [SEP] for BERT, </s> after for T5)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    start = next(k for k in range(len(full)) if full[k:k + len(plain)] == plain)
    return full[:start], full[start + len(plain):]


def head_and_tail(ids: list[int], budget: int) -> list[int]:
    if len(ids) <= budget:
        return ids
    head = int(budget * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (budget - head):]


class TokenizedComments(Dataset):
    """Token ids and (optionally) tag rows; each item also carries its row index."""

    def __init__(self, input_ids: list[list[int]], labels: np.ndarray | None = None):
        self.input_ids = input_ids
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        item = {"input_ids": self.input_ids[index], "index": index}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


@dataclass
class PadToLongest:
    """Collates items into tensors padded to the longest sequence of the batch (or to `pad_to`)."""

    pad_token_id: int
    pad_to: int | None = None

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = self.pad_to or max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            ids = item["input_ids"]
            input_ids[row, :len(ids)] = torch.as_tensor(ids)
            attention_mask[row, :len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "index": torch.tensor([item["index"] for item in items])}
        if "labels" in items[0]:
            batch["labels"] = torch.stack([item["labels"] for item in items])
        return batch


class LengthGroupedSampler(Sampler[int]):
    """Training order in which each run of `batch_size` indices has similar lengths.

    Indices are shuffled, cut into mega-batches of `batch_size * mega_batches` that are sorted by length
    and cut into batches, and the batches are shuffled, the one short batch going last: little padding,
    still random batches. Seeded by (seed, epoch), so every DDP rank draws the same order. Under DDP,
    Lightning deals the order out to the ranks index by index (`order[rank::replicas]`), so batches are
    grouped `replicas` at a time: each rank's batch then comes from one group too.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, mega_batches: int = 50,
                 replicas: int = 1):
        self.lengths, self.seed, self.mega_batches = lengths, seed, mega_batches
        self.group_size = batch_size * replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1  # next epoch differs even where Lightning does not call set_epoch (inside DDP's wrapper)
        order = rng.permutation(len(self.lengths))
        mega = self.group_size * self.mega_batches
        groups = []
        for start in range(0, len(order), mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            groups.extend(chunk[i:i + self.group_size] for i in range(0, len(chunk), self.group_size))
        short = [groups.pop()] if len(groups[-1]) < self.group_size else []
        for group_number in rng.permutation(len(groups)):
            yield from groups[group_number].tolist()
        for group in short:  # last, so that every batch before it stays aligned with its group
            yield from group.tolist()


class SortedByLengthSampler(Sampler[int]):
    """Evaluation order: longest first, so batches hold similar lengths and memory peaks at the start."""

    def __init__(self, lengths: np.ndarray):
        self.order = np.argsort(-lengths, kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


# ------------------------------------------------------------------------------------------- datamodule
class ToxicCommentsDataModule(pl.LightningDataModule):
    """Kaggle Jigsaw files (or any labelled table) as train / val / test loaders of token batches.

    Args:
        data_path: a Kaggle folder or competition .zip (train.csv, optionally test.csv + test_labels.csv),
            a TweetEval task folder (its official train / val / test files), or one CSV/TSV/Parquet with a
            text column and 0/1 tag columns. Default: the embedded demo set.
        tokenizer: Hugging Face tokenizer name or folder (linked to `model.backbone` by the CLI).
        text_column: the column holding the comment.
        label_columns: the 0/1 tag columns, in the model's output order.
        label_from: make the tags from one categorical column, e.g. "class:0=hate+offensive,1=offensive".
        binarise_at: tag columns of fractions in [0, 1] become 1 at or above this cut (e.g. 0.5).
        separator: the column separator of CSV files when not ',' (e.g. ";"); .tsv files use a tab.
        test_path: an optional labelled table to test on (replaces the Kaggle test files).
        val_path: an optional labelled table to validate on; without it (and without official TweetEval
            val files), `val_fraction` of the training rows is held out.
        val_fraction: share of train.csv held out for validation (stratified, duplicate-safe).
        n_clean_train: if set, balance the training split to all tagged rows + this many clean rows.
        max_length: truncation length in tokens (up to the encoder's limit, 512 for BERT).
        truncation: `head` keeps the start of a longer comment; `head_tail` its first quarter and its end.
        batch_size: training batch size; eval_batch_size: validation / test batch size.
        length_grouping: group training batches by length (False: plain random batches).
        pad_to_max_length: pad every batch to `max_length` (slow; kept for comparison benchmarks).
        obfuscate_share: add, for this share of the tagged training rows, a copy whose most tag-indicative
            word is misspelled ("i d i o t", "1d10t"); 0 adds none (toxicity/augment.py).
    """

    def __init__(
        self,
        data_path: str = str(DEMO_CSV),
        tokenizer: str = DEFAULT_BACKBONE,
        text_column: str = TEXT_COLUMN,
        label_columns: list[str] = list(LABELS),  # noqa: B006 - LightningCLI shows it; never mutated
        label_from: str | None = None,
        binarise_at: float | None = None,
        separator: str | None = None,
        test_path: str | None = None,
        val_path: str | None = None,
        val_fraction: float = 0.1,
        n_clean_train: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        truncation: Truncation = "head",
        batch_size: int = 32,
        eval_batch_size: int = 64,
        length_grouping: bool = True,
        pad_to_max_length: bool = False,
        obfuscate_share: float = 0.0,
        num_workers: int = 0,
        seed: int = 42,
    ):
        super().__init__()
        if not 0 <= obfuscate_share <= 1:
            raise ValueError(f"obfuscate_share is a share of the tagged training rows, from 0 to 1; got {obfuscate_share}.")
        check_binarise_at(binarise_at)  # here, so a bad cut stops the run before a run folder is made
        self.save_hyperparameters()
        self.datasets: dict[str, TokenizedComments] = {}
        self.frames: dict[str, pd.DataFrame] = {}
        self._tokenizer = None

    @property
    def tokenizer(self):
        """Loaded on first use: reading and splitting the rows (as evaluation does) needs no tokenizer."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.tokenizer)
        return self._tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.frames:  # read and split once per run, whatever the stage
            return
        hp = self.hparams
        splits = load_splits(hp.data_path, hp.text_column, hp.label_columns, hp.test_path, hp.val_path,
                             TagRule(hp.label_from, hp.binarise_at), hp.separator)
        if "val" in splits:  # given (val_path, or TweetEval's official val files): no split of train
            train, val = splits["train"], splits["val"]
        else:
            train, val = split_train_val(splits["train"], hp.label_columns, hp.val_fraction, hp.seed)
        check_split_sizes(train, val, splits["train"], hp.data_path, hp.val_fraction)
        warn_overlapping_texts(train, {"validation": val, "test": splits.get("test")}, hp.data_path)
        warn_one_class_tags({"training": train, "validation": val}, hp.label_columns, hp.data_path)
        if hp.n_clean_train is not None:
            train = balance_clean_rows(train, hp.label_columns, hp.n_clean_train, hp.seed)
        if hp.obfuscate_share:
            copies = obfuscated_copies(train, hp.label_columns, hp.obfuscate_share, hp.seed)
            train = pd.concat([train, copies], ignore_index=True)
        self.frames = {"train": train, "val": val, **({"test": splits["test"]} if "test" in splits else {})}
        log.info("Rows: %s", {split: len(frame) for split, frame in self.frames.items()})

    def dataset(self, split: str) -> TokenizedComments:
        """The split's token ids: tokenized on first use, then kept for the rest of the run (every epoch)."""
        if split not in self.datasets:
            if split not in self.frames:
                raise DataError(f"{self.hparams.data_path}: there is no {split} split (a test split needs "
                                "Kaggle's test.csv + test_labels.csv, or --data.test_path).")
            frame, hp = self.frames[split], self.hparams
            ids = tokenize_texts(self.tokenizer, frame["text"].tolist(), hp.max_length, hp.truncation)
            self.datasets[split] = TokenizedComments(ids, frame[list(hp.label_columns)].to_numpy())
        return self.datasets[split]

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        dataset = self.dataset(split)
        batch_size = hp.batch_size if train else hp.eval_batch_size
        if train and hp.length_grouping:
            replicas = self.trainer.world_size if self.trainer is not None else 1
            sampler = LengthGroupedSampler(dataset.lengths, batch_size, seed=hp.seed, replicas=replicas)
            if self.trainer is not None:  # a resumed run goes on with the next epoch's order, not epoch 0's
                sampler.set_epoch(self.trainer.current_epoch)
        elif train:
            sampler = torch.utils.data.RandomSampler(dataset)
        else:
            sampler = SortedByLengthSampler(dataset.lengths)
        collate = PadToLongest(self.tokenizer.pad_token_id or 0, hp.max_length if hp.pad_to_max_length else None)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
