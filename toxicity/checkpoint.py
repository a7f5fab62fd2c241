"""The checkpoint contract: the one place that reads a checkpoint written by `python -m toxicity.fit`.

Every tool (predict, evaluate, export, the benchmarks, the notebook) goes through `TrainedCheckpoint.read`:
it reads the file once and says which model family it holds, its tags, its tokenizer, its data settings,
its `max_length` and where its tuned thresholds live.

Loading is safe: `torch.load(weights_only=True)` unpickles tensors, numbers, strings, bytes, lists and
dicts only, which is all a toxicity checkpoint holds. A file carrying any other pickled object (which
an unrestricted unpickler would construct, running whatever code it names) is refused before anything
in it runs. Building the model uses the checkpoint alone: the embedded tokenizer (known file names only,
bounded size, no custom code), the stored config (its shapes checked against the stored weights on the
`meta` device before anything is allocated); no backbone is fetched, no code from the file runs.

A checkpoint whose weights hold NaN or infinite values (a diverged run, a damaged file) is refused when it
is read, naming the tensor: it would score every text NaN (or 1.0) rather than fail.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from toxicity.core.errors import CheckpointError
from toxicity.core.files import write_text_atomically
from toxicity.core.tags import LABELS, TEXT_COLUMN
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH
from toxicity.models.base import FAMILY_KEY, RUN_FOLDER_KEY, describe_non_finite, non_finite_tensors
from toxicity.models.families import ENCODER, UnknownFamily, family_class

log = logging.getLogger(__name__)


def load_safely(ckpt_path: str | Path, map_location="cpu") -> dict:
    """The checkpoint's contents, unpickled with `weights_only=True` (no code can run)."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise CheckpointError(
            f"{ckpt_path}: checkpoint not found. Train one with `python -m toxicity.fit` "
            "(it links the best one at checkpoints/best-checkpoint.ckpt)."
        )
    try:
        return torch.load(ckpt_path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        named = [line.strip() for line in str(error).splitlines() if "global" in line.lower()]
        if not named:  # not a pickle of ours at all (a text file, a truncated download)
            raise CheckpointError(f"{ckpt_path}: not a PyTorch checkpoint ({_last_words(error)}).") from None
        reason = named[0].split(" which is not allowed")[0].rstrip(".")
        raise CheckpointError(
            f"{ckpt_path}: refused: it holds pickled Python objects beyond tensors, numbers and strings, "
            f"which could run code when loaded ({reason}). A toxicity checkpoint never does; "
            "load checkpoints only from people you trust, and never with an unrestricted torch.load."
        ) from None
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{ckpt_path}: not a PyTorch checkpoint ({_last_words(error)}).") from error


def _last_words(error: BaseException) -> str:
    """The specific part of torch's (often many-line) message, on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [
        line
        for line in lines
        if not line.startswith(("Weights only load failed", "Please file", "Check the"))
    ]
    return (specific or lines or [type(error).__name__])[0]


@dataclass(frozen=True)
class DataSettings:
    """The data module's settings as the training run stored them (defaults for very old checkpoints)."""

    data_path: str | None = None
    text_column: str = TEXT_COLUMN
    label_columns: tuple[str, ...] = LABELS
    test_path: str | None = None
    val_fraction: float = 0.1
    seed: int = 42
    max_length: int = DEFAULT_MAX_LENGTH
    stored: tuple[tuple[str, object], ...] = ()  # every stored setting, to rebuild the data module

    @classmethod
    def from_hparams(cls, stored: dict, tags: list[str]) -> DataSettings:
        stored = {key: value for key, value in (stored or {}).items() if not key.startswith("_")}
        known = {
            key: stored[key]
            for key in ("data_path", "text_column", "test_path", "val_fraction", "seed", "max_length")
            if stored.get(key) is not None
        }
        labels = stored.get("label_columns") or tags
        return cls(label_columns=tuple(labels), stored=tuple(stored.items()), **known)

    @property
    def sources(self) -> object | None:
        """The run's data.sources (a list, or the file naming them) when it trained on several sources."""
        return dict(self.stored).get("sources")

    def datamodule_kwargs(self) -> dict:
        """Arguments for ToxicCommentsDataModule that rebuild the run's splits (settings it no longer has,
        from an older version, are left out)."""
        import inspect

        from toxicity.data.datamodule import ToxicCommentsDataModule

        kwargs = dict(self.stored)
        kwargs.update(
            data_path=self.data_path,
            text_column=self.text_column,
            label_columns=list(self.label_columns),
            test_path=self.test_path,
            val_fraction=self.val_fraction,
            seed=self.seed,
            max_length=self.max_length,
        )
        accepted = inspect.signature(ToxicCommentsDataModule.__init__).parameters
        return {key: value for key, value in kwargs.items() if key in accepted}


@dataclass(frozen=True)
class TrainedCheckpoint:
    """A checkpoint read once: what it holds, and the model built from it."""

    ckpt_path: Path
    contents: dict

    @classmethod
    def read(cls, ckpt_path: str | Path, map_location="cpu") -> TrainedCheckpoint:
        contents = load_safely(ckpt_path, map_location)
        hparams = contents.get("hyper_parameters") if isinstance(contents, dict) else None
        if not isinstance(hparams, dict) or "labels" not in hparams or "state_dict" not in contents:
            raise CheckpointError(
                f"{ckpt_path}: not a toxicity checkpoint (no tagger hyper-parameters). "
                "Give a checkpoint written by `python -m toxicity.fit`."
            )
        check_finite(contents["state_dict"], ckpt_path)
        return cls(Path(ckpt_path), contents)

    @property
    def hparams(self) -> dict:
        """The model's constructor arguments (LightningCLI's private `_` keys left out)."""
        return {k: v for k, v in self.contents["hyper_parameters"].items() if not k.startswith("_")}

    @property
    def family(self) -> str:
        return self.contents.get(FAMILY_KEY, ENCODER)  # checkpoints before the key were all encoders

    @property
    def tags(self) -> list[str]:
        return list(self.hparams["labels"])

    @cached_property
    def data(self) -> DataSettings:
        return DataSettings.from_hparams(self.contents.get("datamodule_hyper_parameters") or {}, self.tags)

    @property
    def max_length(self) -> int:
        """Truncation length: the model's own setting, else its data module's (older checkpoints)."""
        return int(self.hparams.get("max_length") or self.data.max_length)

    @property
    def truncation(self) -> str:
        return self.hparams.get("truncation", "head")

    @property
    def log_dir(self) -> str | None:
        """The run's TensorBoard folder: stored relative to the checkpoint's own folder (a link followed),
        or, in checkpoints written before that, as the absolute path on the training machine."""
        relative = self.contents.get(RUN_FOLDER_KEY)
        if isinstance(relative, str):
            return str((self.ckpt_path.resolve().parent / relative).resolve())
        return self.contents.get("log_dir")

    @property
    def global_step(self) -> int:
        return int(self.contents.get("global_step", 0))

    @property
    def thresholds_path(self) -> Path:
        return thresholds_path(self.ckpt_path)

    def thresholds(self) -> dict[str, float] | None:
        return read_thresholds(self.ckpt_path)

    def build_model(self):
        """The trained LightningModule, in eval mode, built offline from the checkpoint alone: its tokenizer
        from the embedded files, its shape from the stored config, checked against the stored weights
        before any memory is allocated for them."""
        model_class = model_class_for(self.family, self.ckpt_path)
        hparams = self.checked_hparams()
        tokenizer, tokenizer_bytes = self.tokenizer()
        with torch.device("meta"):  # shapes only: a config asking for huge tables allocates nothing
            skeleton = self._build(model_class, tokenizer, tokenizer_bytes, hparams)
        self.check_shapes(skeleton.state_dict())
        mismatch = skeleton.stored_settings_mismatch(self.contents)
        if mismatch:
            raise CheckpointError(f"{self.ckpt_path}: refused: {mismatch}")
        model = self._build(model_class, tokenizer, tokenizer_bytes, hparams)
        model.load_state_dict(self.contents["state_dict"])
        return model.eval()

    def _build(self, model_class, tokenizer, tokenizer_bytes: bytes | None, hparams: dict):
        try:
            return model_class.with_tokenizer(tokenizer, tokenizer_bytes, **hparams)
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.ckpt_path}: cannot build its model ({error}).") from error

    def checked_hparams(self) -> dict:
        """The constructor arguments; refused without the full model config that lets it load offline."""
        key = model_class_for(self.family, self.ckpt_path).config_key
        if not isinstance(self.hparams.get(key), dict):
            raise CheckpointError(
                f"{self.ckpt_path}: refused: it carries no {key}, so its model could only be "
                f"built from the backbone it names ({self.hparams.get('backbone')!r}), fetched "
                "from the hub. A checkpoint written by toxicity.fit always has one."
            )
        return self.hparams

    def tokenizer(self) -> tuple[object, bytes | None]:
        """(tokenizer, its zip): the one the checkpoint carries, else (older files) a local copy of the
        backbone's; never downloaded."""
        from toxicity.core.backbone import load_tokenizer
        from toxicity.models.tokenizer_files import tokenizer_from_bytes

        carried = self.contents.get("tokenizer")
        if carried is not None:
            return tokenizer_from_bytes(carried, str(self.ckpt_path)), carried
        return load_tokenizer(self.hparams.get("backbone"), local_files_only=True), None

    def check_shapes(self, expected: dict[str, torch.Tensor]) -> None:
        """Every weight the stored config makes has the stored weight's shape (the config cannot ask for
        more memory than the file holds)."""
        stored = self.contents["state_dict"]
        extra = sorted(set(stored) - set(expected))
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            raise CheckpointError(
                f"{self.ckpt_path}: refused: it holds weight{'s' if len(extra) > 1 else ''} "
                f"{', '.join(map(repr, extra[:3]))}{more}, which its model config does not make; the file "
                "is damaged or was edited. Use the checkpoint as toxicity.fit wrote it."
            )
        for name, tensor in expected.items():
            if name not in stored:
                raise CheckpointError(
                    f"{self.ckpt_path}: its model config makes weight {name!r}, which the "
                    "file does not hold; the file is damaged or was edited."
                )
            stored_shape = tuple(getattr(stored[name], "shape", ()))
            if stored_shape != tuple(tensor.shape):
                raise CheckpointError(
                    f"{self.ckpt_path}: refused: its model config makes {name!r} "
                    f"of shape {tuple(tensor.shape)}, "
                    f"but the stored weight is {stored_shape}; the file is damaged or was edited."
                )


def check_finite(state: dict, ckpt_path: str | Path) -> None:
    """Refuses weights holding NaN or infinite values (one aminmax pass over each floating tensor)."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{ckpt_path}: refused: {describe_non_finite(bad)}; the run diverged or the file is damaged. "
            "Use an earlier checkpoint, or train again with a lower --model.learning_rate."
        )


def model_class_for(family: str, ckpt_path: Path):
    """The class of a registered family (toxicity.models.families): a checkpoint names no code to import."""
    try:
        return family_class(family)
    except UnknownFamily as error:
        raise CheckpointError(f"{ckpt_path}: refused: {error}") from None


# -------------------------------------------------------------------------------------------- thresholds
def thresholds_path(ckpt_path: str | Path) -> Path:
    """Where the per-tag thresholds tuned on validation are kept: beside the checkpoint file itself.

    A link (checkpoints/best-checkpoint.ckpt) is followed, so thresholds belong to the run, not the link.
    """
    ckpt_path = Path(ckpt_path).resolve()
    return ckpt_path.with_name(ckpt_path.stem + ".thresholds.json")


def read_thresholds(ckpt_path: str | Path) -> dict[str, float] | None:
    """The tuned thresholds saved for the checkpoint, or None when absent or older than the checkpoint.

    A newer checkpoint means a later run replaced it: thresholds tuned for the old model do not apply.
    """
    path = thresholds_path(ckpt_path)
    if not path.is_file():
        return None
    if path.stat().st_mtime < Path(ckpt_path).resolve().stat().st_mtime:
        log.warning(
            "%s is older than %s (tuned for a model that a later run replaced); ignoring it. "
            "Run `toxicity evaluate --split val --save-thresholds` to tune again.",
            path,
            ckpt_path,
        )
        return None
    return load_thresholds(path)


def save_thresholds(path: str | Path, thresholds: dict[str, float]) -> None:
    write_text_atomically(path, json.dumps(thresholds, indent=2) + "\n")
    log.info("Wrote tuned thresholds to %s", path)


def load_thresholds(path: str | Path) -> dict[str, float]:
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not a JSON file of thresholds ({error}); delete it and evaluate "
            "--split val to write it again."
        ) from error
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise ValueError(
            f"{path}: expected a JSON object {{tag: threshold}}; delete it and evaluate "
            "--split val to write it again."
        )
    return {tag: float(value) for tag, value in values.items()}
