"""A table checked and turned into text + 0/1 tag columns: validation, tag rules, binarising."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toxicity.core.errors import DataError
from toxicity.data.tables import (
    TableSource,
    separator_hint,
    table_format,
)

log = logging.getLogger(__name__)

UNSCORED = -1  # Kaggle's test_labels.csv marks rows it did not score with -1 in every tag column


# ------------------------------------------------------------------------------------------- validating
def validate_comments(
    frame: pd.DataFrame,
    source: object,
    text_column: str,
    label_columns: Sequence[str],
    allow_unscored: bool = False,
) -> pd.DataFrame:
    """Returns a frame with `text` and one 0/1 int column per tag (plus `id` when present).

    Rows with a missing or blank text are dropped and counted; with `allow_unscored`, rows whose tags
    are all -1 (Kaggle's unscored test rows) are dropped and counted too. Tags are compared as numbers:
    a CSV column with one non-numeric cell is read as strings, and Parquet may store "0"/"1" as text.
    """
    missing = [c for c in [text_column, *label_columns] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; it has {list(frame.columns)}. "
            f"Set text_column / label_columns to the names your file uses.{separator_hint(frame.columns)}"
        )
    original = frame
    labels = frame[list(label_columns)].apply(pd.to_numeric, errors="coerce")
    if allow_unscored:
        unscored = (labels == UNSCORED).all(axis=1)
        if unscored.any():
            log.info(
                "%s: %d unscored rows (tags -1) left out of %d.", source, int(unscored.sum()), len(frame)
            )
        frame, labels = frame[~unscored], labels[~unscored]
    _check_tags(original, labels, source, allow_unscored)
    texts = frame[text_column]
    blank = texts.isna() | texts.astype(str).str.strip().eq("")
    if blank.any():
        log.warning(
            "%s: dropped %d row(s) with a missing or empty '%s'.", source, int(blank.sum()), text_column
        )
    out = pd.DataFrame({"text": texts[~blank].astype(str)})
    if "id" in frame.columns:
        out.insert(0, "id", frame.loc[~blank, "id"])
    for column in label_columns:
        out[column] = labels.loc[~blank, column].astype(np.int64)
    if out.empty:
        raise DataError(
            f"{source}: no usable rows left (every '{text_column}' is empty or every row unscored)."
        )
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
    raise DataError(
        f"{source}: column '{column}' holds {shown} at {_row_name(original, row, source)}; "
        f"tags must be 0 or 1{' (or -1 for unscored rows)' if allow_unscored else ''}. "
        "Fix the value or map the column to 0/1."
    )


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
    """'COLUMN:VALUE=TAG+TAG,VALUE=TAG' as (column, {value: [tags]}), every tag one of `tags`, no value
    twice."""
    column, sep, rules = spec.partition(":")
    mapping: dict[str, list[str]] = {}
    repeated = []
    for rule in rules.split(",") if sep else []:
        value, eq, named = rule.partition("=")
        if value.strip() in mapping:
            repeated.append(value.strip())
        mapping[value.strip()] = [tag.strip() for tag in named.split("+") if tag.strip()] if eq else []
    unknown = sorted({tag for named in mapping.values() for tag in named} - set(tags))
    if (
        not column.strip()
        or not mapping
        or any(not named for named in mapping.values())
        or unknown
        or repeated
    ):
        raise DataError(
            f"--data.label_from {spec!r}: write COLUMN:VALUE=TAG+TAG,VALUE=TAG with tags among "
            f"label_columns {list(tags)}"
            + (f" (not tags: {unknown})" if unknown else "")
            + (f" and each value once (repeated: {repeated})" if repeated else "")
            + "."
        )
    return column.strip(), mapping


def tags_from_column(frame: pd.DataFrame, source: object, tags: Sequence[str], spec: str) -> pd.DataFrame:
    column, mapping = parse_label_from(spec, tags)
    if column not in frame.columns:
        raise DataError(
            f"{source}: --data.label_from names column '{column}', which is not there; it has "
            f"{list(frame.columns)}."
        )
    _refuse_blank_cells(frame, column, source)
    values, rules = comparable_values(frame[column], mapping, spec)
    _refuse_rules_matching_no_row(values, rules, column, source, spec)
    unmapped = ~values.isin(list(rules))
    if unmapped.any():
        log.info(
            "%s: %d row(s) with a '%s' value not in label_from (%s) have no tag.",
            source,
            int(unmapped.sum()),
            column,
            sorted(values[unmapped].unique().tolist())[:5],
        )
    frame = frame.copy()
    for tag in tags:
        frame[tag] = values.map(lambda value, tag=tag: int(tag in rules.get(value, []))).astype(np.int64)
    return frame


def comparable_values(
    column: pd.Series, mapping: dict[str, list[str]], spec: str
) -> tuple[pd.Series, dict[object, list[str]]]:
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
        raise DataError(
            f"--data.label_from {spec!r}: two values are the same number ({list(mapping)}); "
            "give each value once."
        )
    return numbers.astype(float), rules


def _refuse_blank_cells(frame: pd.DataFrame, column: str, source: object) -> None:
    blank = frame[column].isna() | frame[column].astype(str).str.strip().eq("")
    if blank.any():
        row = blank.idxmax()  # the first True
        raise DataError(
            f"{source}: column '{column}' (--data.label_from) is empty at {_row_name(frame, row, source)}"
            f" ({int(blank.sum())} empty cell(s) in all). Fill in a value (one not in label_from "
            "gives no tag) or drop the row."
        )


def _refuse_rules_matching_no_row(
    values: pd.Series, rules: dict, column: str, source: object, spec: str
) -> None:
    unmatched = [key for key in rules if not values.eq(key).any()]
    if unmatched:
        present = sorted(values.unique().tolist())
        raise DataError(
            f"{source}: --data.label_from {spec!r}: value(s) {[_plain(key) for key in unmatched]} match "
            f"no row of column '{column}', whose values are {[_plain(v) for v in present[:10]]}"
            f"{' ...' if len(present) > 10 else ''}. Use the column's own values."
        )


def _plain(value: object) -> object:
    """2.0 as 2 in messages: the user wrote the integer (or read it in the file)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_binarise_at(cut: float | None) -> None:
    """A cut in (0, 1]: tags are shares in [0, 1] made 1 at >= cut, so 0 tags every row and > 1 (or NaN)
    none."""
    if cut is not None and not 0 < cut <= 1:  # NaN fails both comparisons
        raise DataError(
            f"--data.binarise_at {cut}: give a cut above 0 and at most 1 (e.g. 0.5); fractional tags "
            "become 1 where the share is at least the cut, so 0 would tag every row and a cut above 1 "
            "(or nan) none."
        )


def binarise_tags(frame: pd.DataFrame, source: object, tags: Sequence[str], cut: float) -> pd.DataFrame:
    frame = frame.copy()
    for tag in tags:
        if tag not in frame.columns:
            continue  # the missing-column error comes from validation, with the file's columns
        values = pd.to_numeric(frame[tag], errors="coerce")
        if values.notna().all() and values.between(0, 1).all():
            log.info(
                "%s: column '%s' binarised at >= %g (%d of %d rows).",
                source,
                tag,
                cut,
                int((values >= cut).sum()),
                len(values),
            )
            frame[tag] = (values >= cut).astype(np.int64)
    return frame


NO_RULE = TagRule()  # tag columns used as they are
