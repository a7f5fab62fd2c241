"""Several differently-labelled sources as one training set with partial labels (`data.sources`).

A source is a path `fit` reads (a Kaggle folder or zip, a table, a TweetEval folder, a feedback export),
how its labels map onto the model's tags, and a sampling weight. A tag a source does not label is
*unknown* for its rows (NaN in the label matrix), never 0: the loss (masked BCE), the per-tag metrics and
the n-gram warm start skip it. The default mappings of the five datasets in ../shared/data are PRESETS,
argued in docs/data.md (what each dataset's annotators were asked); a source may give its own.

    sources:
      - path: ../shared/data/davidson_hate_offensive      # a preset, found by the folder's name
      - path: ../shared/data/tweeteval_hate
        weight: 2.0                                        # twice the share weight 1 would give it
      - name: in_house
        path: our_comments.csv
        text_column: body
        labels:                                            # model tag: its column (0/1) ...
          toxic: is_toxic
          insult: {column: kind, positive: [insult], negative: [clean]}   # ... or values; others unknown

Every source is read, mapped, checked and split on its own (its own validation rows unless it has official
ones, its own balancing), then the sources are stacked with a `source` column (the source's number).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toxicity.core.errors import DataError
from toxicity.data.sources import TEXT_COLUMN, find_kaggle_files
from toxicity.data.splits import balance_clean_rows, check_split_sizes, split_train_val
from toxicity.data.tables import (
    TWEETEVAL_SPLITS,
    TableSource,
    is_table_file,
    is_tweeteval_folder,
    read_table,
    read_tweeteval,
    tweeteval_files,
)
from toxicity.data.validation import binarise_tags, check_binarise_at

log = logging.getLogger(__name__)

SOURCE_COLUMN = "source"  # the stacked frames' column holding each row's source number
DEFAULT_MIX_EXPONENT = 0.5  # a source's share of the rows drawn ~ weight * rows ** 0.5 (1: proportional)
_KEYS = ("name", "path", "preset", "file", "labels", "weight", "text_column", "separator", "binarise_at")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")

_EVERY_OTHER_TAG_0 = {"positive": [], "negative": [0]}  # OLID "not offensive": no tag at all


# The five datasets of ../shared/data, keyed by their folder's name. Why each tag is mapped as it is (what
# the annotators were asked) is in docs/data.md, "Several sources with partial labels"; a tag a preset
# leaves out is unknown for that dataset's rows.
PRESETS: dict[str, dict] = {
    # Wikipedia talk pages; raters marked each of the six tags on every row: every tag known.
    "jigsaw_sample": {
        "labels": {t: t for t in ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")}
    },
    # Tweets; coders chose hate speech (0), offensive but not hate (1) or neither (2). Hate and offensive are
    # both toxic; hate is identity_hate, offensive-not-hate is not; "neither" is no tag at all. Nothing
    # inside "offensive" separates insult, obscenity, threat or severity: those are unknown on classes 0, 1.
    "davidson_hate_offensive": {
        "file": "labeled_data.csv.gz",
        "text_column": "tweet",
        "labels": {
            "toxic": {"column": "class", "positive": [0, 1], "negative": [2]},
            "identity_hate": {"column": "class", "positive": [0], "negative": [1, 2]},
            **{
                tag: {"column": "class", "positive": [], "negative": [2]}
                for tag in ("severe_toxic", "obscene", "threat", "insult")
            },
        },
    },
    # HatEval: hate against immigrants or women, 1 / 0. Hate is identity_hate and toxic; 0 means "no hate
    # against these targets" only: not identity_hate (the tweets were collected about those targets), and
    # unknown for toxic and the rest (rude, profane, non-hateful tweets are labelled 0 too).
    "tweeteval_hate": {
        "labels": {
            "identity_hate": "label",
            "toxic": {"column": "label", "positive": [1], "negative": []},
        }
    },
    # OLID subtask A: offensive = profanity or a targeted offence (insults, threats), veiled or direct. 1 is
    # toxic (which of the finer tags it is, unknown); 0 is "neither profane nor offending": no tag at all.
    "tweeteval_offensive": {
        "labels": {
            "toxic": "label",
            **{
                tag: {"column": "label", **_EVERY_OTHER_TAG_0}
                for tag in ("severe_toxic", "obscene", "threat", "insult", "identity_hate")
            },
        }
    },
    # ETHOS Binary: isHate is the share of annotators calling the comment hate speech (attacks on protected
    # characteristics), binarised at 0.5 as ETHOS does. Hate is identity_hate and toxic; not-hate is not
    # identity_hate, and unknown for toxic (a rude comment that attacks no group is not hate speech).
    "ethos": {
        "file": "Ethos_Dataset_Binary.csv.gz",
        "separator": ";",
        "text_column": "comment",
        "binarise_at": 0.5,
        "labels": {
            "identity_hate": "isHate",
            "toxic": {"column": "isHate", "positive": [1], "negative": []},
        },
    },
}


# ------------------------------------------------------------------------------------------ the recipe
@dataclass(frozen=True)
class TagFrom:
    """A model tag from one column: 1 where the column holds a `positive` value, 0 where a `negative`
    one, unknown (NaN) anywhere else."""

    column: str
    positive: tuple = (1,)
    negative: tuple = (0,)
    strict: bool = True  # `tag: column`: a value other than 0, 1 or an empty cell (unknown) is an error


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    labels: dict[str, TagFrom] | None  # None: the model's tags that the table has as columns (identity)
    weight: float = 1.0
    file: str | None = None  # the table inside a folder (a preset's)
    text_column: str = TEXT_COLUMN
    separator: str | None = None
    binarise_at: float | None = None
    preset: str | None = None
    dropped_tags: tuple[str, ...] = field(default=())  # a preset's tags the model lacks

    def __str__(self) -> str:
        return f"source '{self.name}' ({self.path})"


def read_sources(value: str | Path | Sequence[Mapping], tags: Sequence[str]) -> list[Source]:
    """`data.sources`: a list of source mappings, or the path of a YAML / JSON file holding one (under a
    `sources:` key or alone). Relative paths in a file are relative to the file's folder; in a recipe's
    own list, to the working directory."""
    base = Path(".")
    where = "--data.sources"
    if isinstance(value, (str, Path)):
        import yaml

        path = Path(value)
        if not path.is_file():
            raise DataError(
                f"--data.sources {value}: no such file. Give a YAML or JSON file holding a list of sources "
                "(each with a `path`), or the list itself in the recipe."
            )
        try:
            value = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise DataError(f"{path}: not YAML or JSON ({' '.join(str(error).split())}).") from error
        if isinstance(value, dict) and "sources" in value:
            value = value["sources"]
        base, where = path.parent, str(path)
    if not isinstance(value, list) or not value or not all(isinstance(item, Mapping) for item in value):
        raise DataError(
            f"{where}: give a non-empty list of sources, each a mapping with a `path` (and optionally "
            f"{', '.join(k for k in _KEYS if k != 'path')}); got {type(value).__name__}."
        )
    sources = [_source(item, number, base, tags, where) for number, item in enumerate(value, 1)]
    names = [source.name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"{where}: source name(s) {repeated} given twice; give each source its own `name` (metrics are "
            "logged per source name)."
        )
    return sources


def _source(item: Mapping, number: int, base: Path, tags: Sequence[str], where: str) -> Source:
    unknown = sorted(set(item) - set(_KEYS))
    if unknown or "path" not in item:
        raise DataError(
            f"{where}: source {number} "
            + (f"has unknown key(s) {unknown}" if unknown else "has no `path`")
            + f"; a source's keys are {list(_KEYS)}."
        )
    path = Path(item["path"]).expanduser()
    path = path if path.is_absolute() else base / path
    preset_name = item.get("preset") or (_preset_for(path) if "labels" not in item else None)
    if preset_name is not None and preset_name not in PRESETS:
        raise DataError(f"{where}: source {number}: no preset {preset_name!r}; presets: {sorted(PRESETS)}.")
    settings = {**PRESETS.get(preset_name, {}), **{k: v for k, v in item.items() if v is not None}}
    name = str(settings.get("name") or preset_name or _slug(path))
    if not _NAME.fullmatch(name):
        raise DataError(
            f"{where}: source name {name!r}: use letters, digits, '_', '.' or '-' only (it names metrics)."
        )
    weight = settings.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise DataError(f"{where}: source '{name}': weight {weight!r}; give a number above 0 (default 1).")
    check_binarise_at(settings.get("binarise_at"))
    labels, dropped = None, ()
    if settings.get("labels") is not None:
        labels = _labels(settings["labels"], name, path, where)
        lacking = sorted(set(labels) - set(tags))
        if lacking and "labels" in item:  # the user's own mapping: a tag the model lacks is a mistake
            raise DataError(
                f"source '{name}' ({path}): maps onto tag(s) {lacking}, which the model lacks (its tags: "
                f"{list(tags)}). Map onto the model's tags, or add the tag(s) to --data.label_columns."
            )
        dropped = tuple(lacking)  # a preset written for the six Jigsaw tags, on a model with fewer
        labels = {tag: rule for tag, rule in labels.items() if tag in tags}
        if not labels:
            raise DataError(
                f"source '{name}' ({path}) labels none of the model's tags {list(tags)} (its mapping "
                f"names {sorted(dropped)}); give it `labels` mapping model tags onto its columns, or drop it."
            )
    return Source(
        name=name,
        path=path,
        labels=labels,
        weight=float(weight),
        file=settings.get("file"),
        text_column=settings.get("text_column", TEXT_COLUMN),
        separator=settings.get("separator"),
        binarise_at=settings.get("binarise_at"),
        preset=preset_name,
        dropped_tags=dropped,
    )


def _labels(value: object, name: str, path: Path, where: str) -> dict[str, TagFrom]:
    fix = (
        "write `labels:` as model tag -> column (a 0/1 column), or model tag -> {column: C, positive: "
        "[values], negative: [values]}"
    )
    if not isinstance(value, Mapping) or not value:
        raise DataError(f"source '{name}' ({path}) labels no tag: {fix}.")
    rules = {}
    for tag, rule in value.items():
        if isinstance(rule, str):
            rules[str(tag)] = TagFrom(rule)
        elif (
            isinstance(rule, Mapping) and "column" in rule and set(rule) <= {"column", "positive", "negative"}
        ):
            positive, negative = tuple(rule.get("positive", ())), tuple(rule.get("negative", ()))
            if not positive and not negative or set(map(str, positive)) & set(map(str, negative)):
                raise DataError(
                    f"{where}: source '{name}', tag '{tag}': give `positive` and / or `negative` values, no "
                    "value in both."
                )
            rules[str(tag)] = TagFrom(str(rule["column"]), positive, negative, strict=False)
        else:
            raise DataError(f"{where}: source '{name}', tag '{tag}': {rule!r}; {fix}.")
    return rules


def _preset_for(path: Path) -> str | None:
    """The preset of one of the five datasets by its folder's name (the path, or a table's folder)."""
    for candidate in (path.name, path.parent.name):
        if candidate in PRESETS:
            return candidate
    return None


def _slug(path: Path) -> str:
    stem = path.name if path.is_dir() else path.name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "source"


# ------------------------------------------------------------------------------------------ reading
def read_raw_splits(source: Source) -> dict[str, pd.DataFrame]:
    """The source's splits as the files have them (`text` plus its own columns, and `id` where there is
    one): `train`, and `val` / `test` where the source has official ones."""
    path = source.path / source.file if source.file and source.path.is_dir() else source.path
    if is_tweeteval_folder(path):
        splits = {}
        for split in TWEETEVAL_SPLITS:
            if split == "train" or tweeteval_files(path, split):
                splits[split] = read_tweeteval(path, split)[0]
        return splits
    if is_table_file(path):
        return {"train": _with_text(read_table(TableSource(path, separator=source.separator)), source)}
    files = find_kaggle_files(path)
    splits = {"train": _with_text(read_table(files.train), source)}
    if files.test is not None:
        texts, labels = read_table(files.test), read_table(files.test_labels)
        joined = _with_text(texts, source).merge(labels, on="id", how="inner", suffixes=("_text", ""))
        scored = joined.drop(columns=["id", "text"]).apply(pd.to_numeric, errors="coerce").ne(-1).any(axis=1)
        log.info("%s: %d unscored Kaggle test rows (tags -1) left out.", source, int((~scored).sum()))
        splits["test"] = joined[scored].reset_index(drop=True)
    return splits


def _with_text(frame: pd.DataFrame, source: Source) -> pd.DataFrame:
    if source.text_column not in frame.columns:
        raise DataError(
            f"{source}: no text column '{source.text_column}'; it has {list(frame.columns)}. Set the "
            "source's `text_column`."
        )
    return frame.rename(columns={source.text_column: "text"})


def map_labels(frame: pd.DataFrame, source: Source, tags: Sequence[str], split: str) -> pd.DataFrame:
    """`text` (and `id`) and one float column per model tag: 1, 0, or NaN (unknown for this source).

    Rows with an empty text, and rows the mapping gives no known tag, are dropped and counted."""
    labels = source.labels
    if labels is None:  # a table of the model's own tag columns (a Kaggle folder, a feedback export)
        labels = {tag: TagFrom(tag) for tag in tags if tag in frame.columns}
        if not labels:
            raise DataError(
                f"{source} labels none of the model's tags {list(tags)}: it has no such columns (it has "
                f"{list(frame.columns)}). Give the source `labels` mapping model tags onto its columns."
            )
    missing = sorted({rule.column for rule in labels.values()} - set(frame.columns))
    if missing:
        raise DataError(
            f"{source}: its label mapping reads column(s) {missing}, which the {split} rows lack (they "
            f"have {list(frame.columns)}). Fix the source's `labels`."
        )
    if source.binarise_at is not None:
        frame = binarise_tags(frame, source, sorted({r.column for r in labels.values()}), source.binarise_at)
    texts = frame["text"]
    blank = texts.isna() | texts.astype(str).str.strip().eq("")
    out = pd.DataFrame({"text": texts.astype(str)})
    if "id" in frame.columns:
        out.insert(0, "id", frame["id"].astype(str))
    for tag in tags:
        out[tag] = _tag_values(frame, labels[tag], source, tag) if tag in labels else np.nan
    unlabelled = out[list(tags)].isna().all(axis=1) & ~blank
    if blank.any() or unlabelled.any():
        log.warning(
            "%s, %s split: dropped %d row(s) with an empty text and %d the mapping gives no known tag.",
            source,
            split,
            int(blank.sum()),
            int(unlabelled.sum()),
        )
    return out[~blank & ~unlabelled].reset_index(drop=True)


def _tag_values(frame: pd.DataFrame, rule: TagFrom, source: Source, tag: str) -> pd.Series:
    column = frame[rule.column]
    empty = column.isna() | column.astype(str).str.strip().eq("")  # an empty cell: unknown, as unlisted
    numbers = pd.to_numeric(column, errors="coerce")
    keys = pd.to_numeric(pd.Series([*rule.positive, *rule.negative], dtype=object), errors="coerce")
    if numbers[~empty].notna().all() and keys.notna().all():  # compare as numbers: 0, 0.0 and "0" alike
        values = numbers.astype(float)
        positive, negative = [float(v) for v in rule.positive], [float(v) for v in rule.negative]
    else:
        values = column.astype(str).str.strip()
        positive, negative = [str(v) for v in rule.positive], [str(v) for v in rule.negative]
    result = pd.Series(np.nan, index=frame.index)
    result[values.isin(positive)] = 1.0
    result[values.isin(negative)] = 0.0
    other = result.isna() & ~empty
    if rule.strict and other.any():
        first = other.idxmax()
        raise DataError(
            f"{source}: column '{rule.column}' (tag '{tag}') holds {column[first]!r} at data row "
            f"{list(frame.index).index(first) + 1}; a `{tag}: {rule.column}` mapping takes 0 or 1. Map its "
            f"values with {{column: {rule.column}, positive: [...], negative: [...]}} (others unknown)."
        )
    return result


# ------------------------------------------------------------------------------------------ the mix
@dataclass
class MixedSources:
    """The stacked splits (each row's source number in `source`) and the sources, in recipe order."""

    frames: dict[str, pd.DataFrame]
    sources: list[Source]

    @property
    def names(self) -> list[str]:
        return [source.name for source in self.sources]

    def shares(self, exponent: float = DEFAULT_MIX_EXPONENT) -> np.ndarray:
        """Each source's share of the training rows drawn per epoch: weight * rows ** exponent, normalised."""
        sizes = np.bincount(self.frames["train"][SOURCE_COLUMN], minlength=len(self.sources))
        return mix_shares(sizes, [source.weight for source in self.sources], exponent)


def mix_shares(sizes: Sequence[int], weights: Sequence[float], exponent: float) -> np.ndarray:
    """weight * size ** exponent, normalised: exponent 1 draws rows in proportion to the sources' sizes, 0
    gives every source the same share (times its weight), 0.5 (the default) is between."""
    raw = np.asarray(weights, dtype=float) * np.asarray(sizes, dtype=float) ** exponent
    raw[np.asarray(sizes) == 0] = 0.0
    return raw / raw.sum()


def load_sources(
    sources: list[Source],
    tags: Sequence[str],
    val_fraction: float,
    seed: int,
    n_clean_train: int | None = None,
) -> MixedSources:
    """Reads, maps, checks, splits (and balances) every source, then stacks them."""
    per_source: list[dict[str, pd.DataFrame]] = []
    for number, source in enumerate(sources):
        if source.dropped_tags:
            log.info(
                "%s: preset tag(s) %s left out (the model lacks them).", source, list(source.dropped_tags)
            )
        raw = read_raw_splits(source)
        splits = {split: map_labels(frame, source, tags, split) for split, frame in raw.items()}
        refuse_one_class(source, splits["train"], tags)
        if "val" not in splits:
            train, val = split_train_val(splits["train"], tags, val_fraction, seed)
            check_split_sizes(train, val, splits["train"], source, val_fraction)
            splits["train"], splits["val"] = train, val
        if n_clean_train is not None:
            splits["train"] = balance_clean_rows(splits["train"], tags, n_clean_train, seed)
        for frame in splits.values():
            frame[SOURCE_COLUMN] = number
        log_counts(source, splits, tags)
        per_source.append(splits)
    refuse_shared_ids(sources, per_source)
    frames = {}
    for split in ("train", "val", "test"):
        parts = [splits[split] for splits in per_source if split in splits]
        if parts:
            frames[split] = pd.concat(parts, ignore_index=True)
    return MixedSources(frames, sources)


def refuse_one_class(source: Source, train: pd.DataFrame, tags: Sequence[str]) -> None:
    """A source whose every known label is the same (all 0, or all 1) after mapping teaches a tag only one
    answer and skews it for every other source: refused."""
    known = train[list(tags)].to_numpy(dtype=float)
    known = known[~np.isnan(known)]
    if known.size == 0:
        raise DataError(f"{source} labels no row with any of the model's tags; check its `labels` mapping.")
    if known.min() == known.max():
        raise DataError(
            f"{source}: every label it gives is {int(known[0])} after mapping ({known.size} labels on "
            f"{len(train)} training rows), so it can only push its tags one way; check its `labels` "
            "(the positive and negative values), or drop the source."
        )


def refuse_shared_ids(sources: list[Source], per_source: list[dict[str, pd.DataFrame]]) -> None:
    """Two sources holding rows with the same `id`: the same comment labelled twice, or ids that clash."""
    seen: dict[str, tuple[int, set]] = {}
    for number, splits in enumerate(per_source):
        ids = set().union(*(set(frame["id"]) for frame in splits.values() if "id" in frame.columns))
        for other, (other_number, other_ids) in seen.items():
            shared = ids & other_ids
            if shared:
                raise DataError(
                    f"source '{sources[number].name}' ({sources[number].path}) and source '{other}' share "
                    f"{len(shared)} id(s) (e.g. {min(shared)!r}): one comment would be trained and "
                    "validated under two labellings. Drop those rows from one source, or give one source "
                    "ids of its own."
                )
        seen[sources[number].name] = (number, ids)


def log_counts(source: Source, splits: dict[str, pd.DataFrame], tags: Sequence[str]) -> None:
    """Rows per split and, per tag, positives / negatives / unknown in training: nothing dropped unseen."""
    train = splits["train"][list(tags)]
    per_tag = {
        tag: f"{int((train[tag] == 1).sum())}/{int((train[tag] == 0).sum())}/{int(train[tag].isna().sum())}"
        for tag in tags
    }
    log.info(
        "%s: rows %s; training tags positive/negative/unknown %s",
        source,
        {split: len(frame) for split, frame in splits.items()},
        per_tag,
    )
