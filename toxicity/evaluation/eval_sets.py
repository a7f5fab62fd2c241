"""Which labelled rows to evaluate on.

  --split val, the checkpoint's own data: exactly the training run's validation split (the same
      data module, rebuilt from the data settings stored in the checkpoint).
  --split val, other data: the same seeded split of that data (TweetEval: its val_* files).
  --split test: Kaggle's test.csv + test_labels.csv joined on id (rows marked -1 left out), the run's
      test_path, a labelled table taken whole, or a TweetEval folder's test_* files.
  A model trained on several sources (data.sources): --data names one source (its held-out rows, with its
      own label mapping: its validation split as training made it, or its official test split) or other
      labelled data; never the pooled validation rows, whose unknown tags are not 0.

A label map renames data columns to model tags (`label=toxic`); the tags evaluated are those the data
has (or the ones asked for, which must all be there). Fractional tag columns (0.0-1.0, Jigsaw 2019 style)
and identity columns are binarised at >= 0.5.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from toxicity.checkpoint import DataSettings
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.data.multisource import Source, load_sources, map_labels, read_raw_splits, read_sources
from toxicity.data.sources import find_kaggle_files, load_kaggle_test
from toxicity.data.splits import split_train_val
from toxicity.data.tables import (
    is_table_file,
    is_tweeteval_folder,
    read_table,
    read_tweeteval,
    tweeteval_task,
)
from toxicity.data.validation import validate_comments
from toxicity.evaluation.bias import IDENTITY_COLUMNS, binarise
from toxicity.evaluation.metrics import has_both_classes

log = logging.getLogger(__name__)

SPLITS = ("val", "test")


@dataclass(frozen=True)
class EvalRequest:
    """What the user asked for (None: the checkpoint's setting or the data's columns)."""

    data: str | None = None
    split: str = "val"
    text_column: str | None = None
    label_map: dict[str, str] = field(default_factory=dict)
    tags: Sequence[str] | None = None
    identity_columns: Sequence[str] | None = None  # None: detect the Jigsaw 2019 identity columns


@dataclass
class EvalSet:
    name: str  # short, for folder names and TensorBoard tags, e.g. "jigsaw_sample-val"
    source: str  # what was read, for the report
    split: str
    frame: pd.DataFrame  # `text`, one 0/1 column per tag and per identity
    tags: list[str]
    identity_columns: list[str] = field(default_factory=list)
    kaggle: bool = False  # Kaggle's scored test rows with all six tags: the competition score applies
    checkpoint_val: bool = False  # the training run's own validation split

    @property
    def texts(self) -> list[str]:
        return self.frame["text"].tolist()

    @property
    def labels(self) -> np.ndarray:
        return self.frame[self.tags].to_numpy(dtype=np.int64)


def load_eval_set(request: EvalRequest, run: DataSettings, model_tags: Sequence[str]) -> EvalSet:
    if request.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {request.split!r}")
    check_label_map(request.label_map, model_tags)
    check_tags(request.tags, model_tags)
    if run.sources:
        refuse_pooled_validation(request, run, model_tags)
        if (source := source_named_by(request, run, model_tags)) is not None:
            return source_split(request, run, source, model_tags)
    if request.split == "val" and is_run_data(request, run):
        return checkpoint_val_split(run, request.tags)
    data = existing_path(request.data, "--data") if request.data else default_data(run, request.split)
    name = f"{short_name(data)}-{request.split}"
    if is_tweeteval_folder(data):  # a missing split is refused by name, not read as a Kaggle folder
        raw, source = read_tweeteval(data, request.split)
        if (
            not request.label_map and tweeteval_task(data) in model_tags
        ):  # trained on this task: its label is the tag
            request = replace(request, label_map={"label": tweeteval_task(data)})
        frame, tags, identities = prepare_table(
            raw, source, "text", request, model_tags, request.split == "test"
        )
        return EvalSet(name, source, request.split, frame, tags, identities)
    if is_table_file(data):
        if request.split == "test" and is_training_data(data, run):
            raise DataError(
                f"{data}: the checkpoint was trained on this table (its train and val rows), so it "
                "has no test rows. Give a held-out labelled table with --data, or use --split val."
            )
        frame, tags, identities = prepare_table(
            read_table(data),
            str(data),
            request.text_column or run.text_column,
            request,
            model_tags,
            request.split == "test",
        )
        if request.split == "val":
            _, frame = split_train_val(frame, tags, run.val_fraction, run.seed)
        return EvalSet(name, str(data), request.split, frame, tags, identities)
    return kaggle_split(data, request, run, model_tags, name)


# ------------------------------------------------------------------------------------- the run's own data
def is_run_data(request: EvalRequest, run: DataSettings) -> bool:
    """True when the request names the checkpoint's training data with its own columns."""
    if request.label_map or request.identity_columns or request.text_column not in (None, run.text_column):
        return False
    return request.data is None or is_training_data(Path(request.data), run)


def is_training_data(data: Path, run: DataSettings) -> bool:
    """Whether `data` is the run's training table: its data_path, or the train.csv inside its Kaggle
    folder."""
    if run.data_path is None:
        return False
    training = Path(run.data_path)
    if data.resolve() == training.resolve():
        return True
    if not training.is_dir():
        return False
    try:
        train = find_kaggle_files(training).train
    except DataError:
        return False
    return train.member is None and data.resolve() == train.path.resolve()


def refuse_pooled_validation(request: EvalRequest, run: DataSettings, model_tags: Sequence[str]) -> None:
    """A model trained on several sources is evaluated one held-out set at a time: its pooled validation
    rows leave many tags unknown, which a report would have to read as 0."""
    if request.data is None:
        try:
            named = ", ".join(str(source.path) for source in read_sources(run.sources, model_tags))
        except DataError:  # the sources file is not where training read it: name it as stored
            named = str(run.sources)
        raise DataError(
            f"this model was trained on several sources ({named}): evaluate one at a time, on a "
            "source's held-out rows (--data <its path>: its validation split, or --split test where it has "
            "an official one) or on a labelled set it never saw (--data PATH --split test). TensorBoard has "
            "every source's validation figures (val_auroc_<tag>/<source>)."
        )


def source_named_by(request: EvalRequest, run: DataSettings, model_tags: Sequence[str]) -> Source | None:
    """The run's source that `--data` names (its folder, or a file inside it, or its table), or None."""
    try:
        sources = read_sources(run.sources, model_tags)
    except DataError as error:
        log.warning(
            "Cannot tell whether --data %s is one of the model's sources (%s); read as other data.",
            request.data,
            error,
        )
        return None
    given = Path(request.data).resolve()
    for source in sources:
        folder = source.path.resolve()
        if given == folder or folder in given.parents:
            return source
    return None


def source_split(
    request: EvalRequest, run: DataSettings, source: Source, model_tags: Sequence[str]
) -> EvalSet:
    """One source of the run on its held-out rows, with its own label mapping: its validation split as
    training made it, or its official test split. Evaluated on the tags it labels with both classes; rows
    that leave one of those unknown are left out and counted."""
    given = {
        "--label-map": request.label_map,
        "--text-column": request.text_column,
        "--identity-columns": request.identity_columns,
    }
    if any(given.values()):
        raise DataError(
            f"--data names {source}, which is read with its own settings from training: drop "
            f"{', '.join(flag for flag, value in given.items() if value)}."
        )
    if request.split == "val":
        frame = load_sources([source], model_tags, run.val_fraction, run.seed).frames["val"]
        described = f"{source}: its validation split as training made it (seed {run.seed})"
    else:
        raw = read_raw_splits(source)
        if "test" not in raw:
            raise DataError(
                f"this model was trained on several sources, and {source} has no test split (the model "
                "trained on its training rows): evaluate its validation split (--split val), or a labelled "
                "set it never saw (--data PATH --split test)."
            )
        frame = map_labels(raw["test"], source, model_tags, "test")
        described = f"{source}: its test split"
    frame, tags, left_out = rows_labelling(frame, request.tags or model_tags, source, request)
    described += ", its labels mapped as in training"
    if left_out:
        described += f"; {left_out} rows left out (one of the tags unknown)"
    kaggle = request.split == "test" and sorted(tags) == sorted(LABELS)  # only Kaggle's test has all six
    return EvalSet(f"{source.name}-{request.split}", described, request.split, frame, tags, kaggle=kaggle)


def rows_labelling(
    frame: pd.DataFrame, wanted: Sequence[str], source: Source, request: EvalRequest
) -> tuple[pd.DataFrame, list[str], int]:
    """The rows that label every tag of `wanted` the source labels with both classes, those tags as 0/1,
    and how many rows were left out; --tags the source does not label are refused."""
    labelled = [tag for tag in wanted if has_both_classes(frame[tag].dropna().to_numpy())]
    known = frame[labelled].notna().all(axis=1)
    frame = frame[known].reset_index(drop=True)
    labelled = [tag for tag in labelled if has_both_classes(frame[tag].to_numpy())]
    if not labelled or (request.tags and len(labelled) < len(request.tags)):
        offered = [tag for tag in LABELS if tag in frame and has_both_classes(frame[tag].dropna().to_numpy())]
        raise DataError(
            f"{source}: its {request.split} rows do not label {[t for t in wanted if t not in labelled]} "
            f"with both classes; it labels {offered} (give those to --tags, or none)."
        )
    return frame.astype({tag: "int64" for tag in labelled}), labelled, int((~known).sum())


def checkpoint_val_split(run: DataSettings, tags: Sequence[str] | None = None) -> EvalSet:
    """The training run's validation rows: the run's own data module, rebuilt from the stored settings."""
    data = existing_path(run.data_path, "the checkpoint's training data (data_path)")
    datamodule = ToxicCommentsDataModule(**run.datamodule_kwargs())
    datamodule.setup("validate")
    source = (
        f"{data}: validation split of the training run (val_fraction {run.val_fraction}, seed {run.seed})"
    )
    return EvalSet(
        f"{short_name(data)}-val",
        source,
        "val",
        datamodule.frames["val"],
        list(tags or run.label_columns),
        checkpoint_val=list(tags or run.label_columns) == list(run.label_columns),
    )


def default_data(run: DataSettings, split: str) -> Path:
    if split == "test" and run.test_path:
        return existing_path(run.test_path, "the checkpoint's test table (test_path)")
    return existing_path(run.data_path, "the checkpoint's training data (data_path)")


def existing_path(path: str | None, what: str) -> Path:
    if path is None:
        raise DataError(f"The checkpoint does not record {what}; pass --data.")
    if not Path(path).exists():
        raise DataError(
            f"{path}: {what} is not there (relative paths are read from the current folder, "
            f"{Path.cwd()}); give --data a folder or file that exists."
        )
    return Path(path)


def short_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".zip", ".bz2", ".xz", ".csv", ".tsv", ".parquet"):
        name = name.removesuffix(suffix)
    return name or "data"


# ----------------------------------------------------------------------------------------------- Kaggle
def kaggle_split(
    data: Path, request: EvalRequest, run: DataSettings, model_tags: Sequence[str], name: str
) -> EvalSet:
    if request.label_map:
        raise DataError(
            f"{data}: --label-map renames columns of a single table or a TweetEval folder; "
            "a Kaggle folder's tag columns already carry the tag names."
        )
    text_column = request.text_column or run.text_column
    tags = list(request.tags or model_tags)
    if request.split == "val":
        datamodule = ToxicCommentsDataModule(
            str(data),
            text_column=text_column,
            label_columns=tags,
            val_fraction=run.val_fraction,
            seed=run.seed,
        )
        datamodule.setup("validate")  # the same split a training run on this data would make
        frame = datamodule.frames["val"]
        return EvalSet(
            name,
            f"{data}: seeded validation split (val_fraction {run.val_fraction}, seed {run.seed})",
            "val",
            frame,
            tags,
        )
    files = find_kaggle_files(data)
    if files.test is None:
        raise DataError(
            f"{data}: no test.csv + test_labels.csv here. Use --split val, or give a labelled "
            "table as --data to evaluate all of it as a test set."
        )
    frame = load_kaggle_test(files, text_column, tags)
    return EvalSet(
        name,
        f"{files.test} + {files.test_labels} (rows scored by Kaggle)",
        "test",
        frame,
        tags,
        kaggle=sorted(tags) == sorted(LABELS),
    )


# ------------------------------------------------------------------------------------ tables and tweets
def prepare_table(
    raw: pd.DataFrame,
    source: str,
    text_column: str,
    request: EvalRequest,
    model_tags: Sequence[str],
    allow_unscored: bool,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Renames by the label map, picks tags and identity columns, binarises them, validates the rows."""
    raw = rename_columns(raw, request.label_map, source)
    tags = choose_tags(raw.columns, request.tags, model_tags, source)
    identities = choose_identity_columns(raw.columns, request.identity_columns, tags, source)
    raw = binarise_fractional_tags(raw, tags, source)
    for column in identities:
        raw[column] = binarise(raw[column]).astype(np.int64)
    frame = validate_comments(raw, source, text_column, [*tags, *identities], allow_unscored=allow_unscored)
    return frame, tags, identities


def check_label_map(label_map: dict[str, str], model_tags: Sequence[str]) -> None:
    for column, tag in label_map.items():
        if tag not in model_tags:
            raise DataError(
                f"--label-map {column}={tag}: '{tag}' is not a tag of this model; "
                f"its tags are {list(model_tags)}."
            )
    targets = list(label_map.values())
    repeated = sorted({tag for tag in targets if targets.count(tag) > 1})
    if repeated:
        raise DataError(f"--label-map maps several columns to {repeated}; map one column per tag.")


def check_tags(tags: Sequence[str] | None, model_tags: Sequence[str]) -> None:
    unknown = [tag for tag in tags or () if tag not in model_tags]
    if unknown:
        raise DataError(f"--tags {unknown}: not tags of this model; its tags are {list(model_tags)}.")


def rename_columns(raw: pd.DataFrame, label_map: dict[str, str], source: str) -> pd.DataFrame:
    missing = [column for column in label_map if column not in raw.columns]
    if missing:
        raise DataError(
            f"{source}: --label-map names column(s) {missing}, which the data does not have; "
            f"its columns are {list(raw.columns)}."
        )
    clashes = [tag for column, tag in label_map.items() if tag in raw.columns and tag != column]
    if clashes:
        raise DataError(
            f"{source}: already has column(s) {clashes}; --label-map cannot rename another column "
            "onto them. Map that column instead, or drop the mapping."
        )
    return raw.rename(columns=label_map)


def choose_tags(
    columns, requested: Sequence[str] | None, model_tags: Sequence[str], source: str
) -> list[str]:
    if requested:
        missing = [tag for tag in requested if tag not in columns]
        if missing:
            raise DataError(
                f"{source}: no column for tag(s) {missing}; its columns are {list(columns)}. "
                "Map a column onto a tag with --label-map COLUMN=TAG, or leave the tag out of --tags."
            )
        return list(requested)
    tags = [tag for tag in model_tags if tag in columns]
    if not tags:
        raise DataError(
            f"{source}: no column is named after a tag of this model {list(model_tags)}; its columns "
            f"are {list(columns)}. Map a 0/1 column onto a tag, e.g. --label-map label=toxic."
        )
    left_out = [tag for tag in model_tags if tag not in tags]
    if left_out:
        log.info("%s: tags %s are not in the data and are left out of the report.", source, left_out)
    return tags


def choose_identity_columns(
    columns, requested: Sequence[str] | None, tags: Sequence[str], source: str
) -> list[str]:
    if requested is None:
        return [column for column in IDENTITY_COLUMNS if column in columns and column not in tags]
    missing = [column for column in requested if column not in columns]
    if missing:
        raise DataError(
            f"{source}: identity column(s) {missing} are not in the data; its columns are {list(columns)}."
        )
    return list(requested)


def binarise_fractional_tags(raw: pd.DataFrame, tags: Sequence[str], source: str) -> pd.DataFrame:
    """A tag column of fractions in [0, 1] (annotator shares) becomes 0/1 at >= 0.5; others are left to
    validation."""
    raw = raw.copy()
    for tag in tags:
        values = pd.to_numeric(raw[tag], errors="coerce")
        if values.notna().all() and values.between(0, 1).all() and not values.isin([0, 1]).all():
            log.info("%s: column '%s' holds fractions; binarised at >= 0.5.", source, tag)
            raw[tag] = (values >= 0.5).astype(np.int64)
    return raw
