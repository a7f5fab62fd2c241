"""Scoring comments: the batching loop every backend shares (BatchScorer) and ToxicityClassifier (PyTorch);
OnnxToxicityClassifier (onnxruntime) is in toxicity.inference.onnx.

    clf = ToxicityClassifier.from_checkpoint("checkpoints/best-checkpoint.ckpt")
    clf.predict(["you are an idiot", "thanks for the fix"])   # DataFrame of per-tag probabilities
    clf.predict("thanks!")                                   # {tag: probability}
    clf.predict(texts, threshold="tuned")                    # 0/1 with the thresholds tuned on validation
    df[clf.tags] = clf.predict(df.text)                      # a Series keeps its index: scores stay on
                                                             # their rows

Texts are tokenized a chunk at a time, sorted by length and padded per batch, so memory stays flat for
any number of texts and little time goes to padding; results come back in the order of the input.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from toxicity.checkpoint import TrainedCheckpoint
from toxicity.data.batching import Featurizer, PadToLongest, features_of
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH, tokenize_texts

log = logging.getLogger(__name__)


CHUNK_SIZE = 4096  # texts tokenized and sorted at a time: memory stays flat for any input length


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# ----------------------------------------------------------------------------------------------- inputs
def as_text_list(texts: str | Iterable[str]) -> list[str]:
    """The texts as a list of str; one clear TypeError for anything that is not a text.

    A dict is refused (iterating it would score its keys). Lone UTF-16 surrogates (from badly decoded
    bytes) cannot be tokenized; they are replaced by U+FFFD and counted in a warning.
    """
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (dict, pd.DataFrame)):
        kind = "dict" if isinstance(texts, dict) else "DataFrame"
        raise TypeError(
            f"predict() got a {kind}; give a str, a list of str or a pandas Series "
            f"(e.g. list(d.values()) or df['comment_text'])."
        )
    elif isinstance(texts, (bytes, bytearray)):
        raise TypeError("predict() got bytes; decode them first, e.g. data.decode('utf-8').")
    labels = texts.index if isinstance(texts, pd.Series) else None
    texts = texts.tolist() if isinstance(texts, pd.Series) else list(texts)
    cleaned = 0
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            where = f"texts[{position}]" + (f" (index {labels[position]})" if labels is not None else "")
            hint = (
                " (a missing value)" if text is None or (isinstance(text, float) and math.isnan(text)) else ""
            )
            raise TypeError(
                f"{where} is {type(text).__name__}{hint}, not str; give strings only "
                "(an empty string is fine; decode bytes first)."
            )
        if not text.isascii() and _LONE_SURROGATE.search(text):
            texts[position] = _LONE_SURROGATE.sub("\ufffd", text)
            cleaned += 1
    if cleaned:
        log.warning(
            "%d text(s) held lone surrogate characters (badly decoded bytes); replaced them with U+FFFD.",
            cleaned,
        )
    return texts


def checked_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise TypeError(f"threshold must be a number between 0 and 1 or 'tuned', got {threshold!r}.")
    if not 0.0 <= float(threshold) <= 1.0:  # also refuses NaN, which would make every decision 0
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}.")
    return float(threshold)


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or a GPU when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


# ----------------------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ScoredTexts:
    probs: np.ndarray  # (n_texts, n_tags) float32; NaN rows for the texts that could not be scored
    failed: np.ndarray  # positions of those texts, ascending
    first_error: str | None  # the error of the first of them, one line


def _first_line(error: BaseException) -> str:
    return next((line for line in str(error).splitlines() if line.strip()), "")[:300]


class BatchScorer:
    """The scoring loop shared by the backends.

    Tokenizes CHUNK_SIZE texts at a time, sorts them by length, pads each batch to its longest text and
    asks the backend (`_probabilities`) for one batch of probabilities at a time; results come back in
    the order of the input. `features`: the model's batch_featurizer, whose tensors reach `_probabilities`
    as keyword arguments.
    """

    def __init__(
        self,
        tokenizer,
        tags: Sequence[str],
        max_length: int = DEFAULT_MAX_LENGTH,
        thresholds: dict[str, float] | None = None,
        batch_size: int = 64,
        truncation: str = "head",
        features: Featurizer | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.tokenizer = tokenizer
        self.tags = list(tags)
        self.max_length = max_length
        self.truncation = truncation
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.collate = PadToLongest(tokenizer.pad_token_id or 0, features=features)

    def _probabilities(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **features: torch.Tensor
    ) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: str | Iterable[str], progress: bool | None = None) -> np.ndarray:
        """An (n_texts, n_tags) float32 array of probabilities, in the order of `texts`.

        A text that cannot be scored (see `score`) gets NaN in every column and is counted in a warning.
        """
        scored = self.score(texts, progress)
        if scored.failed.size:
            log.warning(
                "%d of %d text(s) could not be scored and got NaN scores (the first is texts[%d]): %s",
                scored.failed.size,
                len(scored.probs),
                scored.failed[0],
                scored.first_error,
            )
        return scored.probs

    def score(self, texts: str | Iterable[str], progress: bool | None = None) -> ScoredTexts:
        """Probabilities, and which texts could not be scored.

        A batch that fails is scored again one text at a time, so one bad text never fails its neighbours;
        a text that fails alone gets NaN scores and its position in `failed`.
        """
        texts = as_text_list(texts)
        probs = np.empty((len(texts), len(self.tags)), dtype=np.float32)
        errors: dict[int, str] = {}
        show = len(texts) > 10 * self.batch_size if progress is None else progress
        with tqdm(total=len(texts), disable=not show, unit="comment", desc="scoring") as bar:
            for start in range(0, len(texts), CHUNK_SIZE):
                chunk = texts[start : start + CHUNK_SIZE]
                chunk_errors: dict[int, str] = {}
                probs[start : start + len(chunk)] = self._score_chunk(chunk, chunk_errors)
                errors.update({start + position: error for position, error in chunk_errors.items()})
                bar.update(len(chunk))
        failed = np.array(sorted(errors), dtype=np.int64)
        return ScoredTexts(probs, failed, errors[failed[0]] if failed.size else None)

    def _score_chunk(self, texts: list[str], errors: dict[int, str]) -> np.ndarray:
        """Scores of `texts`; the position and error of each text that fails alone go into `errors`."""
        ids = tokenize_texts(self.tokenizer, texts, self.max_length, self.truncation)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), len(self.tags)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            try:
                out[rows] = self._score_batch(ids, texts, rows)
            except Exception as error:  # noqa: BLE001 (any backend error: each text is retried alone below)
                if len(rows) > 1:
                    log.info("A batch of %d texts failed (%s); scoring them one at a time.", len(rows), error)
                out[rows] = [self._score_alone(ids, texts, row, errors) for row in rows]
        return out

    def _score_batch(self, ids: list[list[int]], texts: list[str], rows: list[int]) -> np.ndarray:
        batch = self.collate([{"input_ids": ids[i], "text": texts[i], "index": i} for i in rows])
        return self._probabilities(batch["input_ids"], batch["attention_mask"], **features_of(batch))

    def _score_alone(
        self, ids: list[list[int]], texts: list[str], row: int, errors: dict[int, str]
    ) -> np.ndarray:
        try:
            return self._score_batch(ids, texts, [row])[0]
        except Exception as error:  # noqa: BLE001 (recorded and counted; the caller decides what to do)
            errors[row] = f"{type(error).__name__}: {_first_line(error)}"
            return np.full(len(self.tags), np.nan, dtype=np.float32)

    def predict(
        self, texts: str | Iterable[str], threshold: float | str | None = None, progress: bool | None = None
    ) -> pd.DataFrame | dict[str, float]:
        """Per-tag probabilities (or 0/1 with a threshold number or "tuned") for one text or many.

        One str gives {tag: value}; a list or iterable gives a DataFrame indexed 0..n-1; a pandas Series
        gives a DataFrame with the Series' own index, so `df[tags] = clf.predict(df.text)` lines up.
        """
        cutoffs = None if threshold is None else self.thresholds_for(threshold)  # checked before any work
        probs = self.predict_proba(texts, progress)
        values = probs if cutoffs is None else (probs >= cutoffs).astype(np.int64)
        if isinstance(texts, str):
            return {tag: values[0, k].item() for k, tag in enumerate(self.tags)}
        index = texts.index if isinstance(texts, pd.Series) else None
        return pd.DataFrame(values, columns=self.tags, index=index)

    def thresholds_for(self, threshold: float | str) -> np.ndarray:
        """One threshold per tag: `threshold` for all, or the tuned ones for "tuned" (0.5 where none)."""
        if isinstance(threshold, str):
            if threshold != "tuned":
                raise ValueError(f"threshold must be a number or 'tuned', got {threshold!r}.")
            if self.thresholds is None:
                raise ValueError(
                    "No tuned thresholds for this checkpoint: run `toxicity evaluate --split val "
                    "--save-thresholds` first, or pass a number such as threshold=0.5."
                )
            return np.array([self.thresholds.get(tag, 0.5) for tag in self.tags], dtype=np.float32)
        return np.full(len(self.tags), checked_threshold(threshold), dtype=np.float32)


class ToxicityClassifier(BatchScorer):
    """Scores comments with a trained model, in length-sorted batches padded per batch."""

    def __init__(
        self,
        model,
        max_length: int = DEFAULT_MAX_LENGTH,
        thresholds: dict[str, float] | None = None,
        batch_size: int = 64,
    ):
        self.model = model.eval()
        super().__init__(
            model.tokenizer,
            model.labels,
            max_length,
            thresholds,
            batch_size,
            model.hparams.get("truncation", "head"),
            model.batch_featurizer(),
        )

    @classmethod
    def from_checkpoint(
        cls, ckpt_path: str | Path, device: str | torch.device | None = None, batch_size: int = 64
    ) -> ToxicityClassifier:
        """Loads offline and safely: the checkpoint carries the model config, tokenizer, tags and
        max_length."""
        device = default_device(device)
        return cls.from_trained(TrainedCheckpoint.read(ckpt_path, map_location=device), device, batch_size)

    @classmethod
    def from_trained(
        cls, checkpoint: TrainedCheckpoint, device: str | torch.device = "cpu", batch_size: int = 64
    ) -> ToxicityClassifier:
        """From a checkpoint already read (no second read of a file that can be hundreds of MB)."""
        model = checkpoint.build_model().to(device)
        thresholds = checkpoint.thresholds()
        log.info(
            "Loaded %s: %s model, tags %s, max_length %d, %s.",
            checkpoint.ckpt_path,
            checkpoint.family,
            checkpoint.tags,
            checkpoint.max_length,
            "tuned thresholds" if thresholds else "no tuned thresholds",
        )
        return cls(model, checkpoint.max_length, thresholds, batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def _probabilities(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **features: torch.Tensor
    ) -> np.ndarray:
        extra = {name: value.to(self.device) for name, value in features.items()}
        logits = self.model(input_ids.to(self.device), attention_mask.to(self.device), **extra)
        return torch.sigmoid(logits.float()).cpu().numpy()

    def explain(
        self,
        texts: str | Iterable[str],
        tags: str | Sequence[str] | None = None,
        method: str | None = None,
        steps: int | None = None,
    ) -> list:
        """Which words made each score: per text, its probabilities and one attribution per word and tag
        (toxicity.models.attribution.Explanation; logit units, positive pushes the tag up), each word with
        its character offsets in the text (`text[w.start:w.end] == w.word`).

        `tags`: one tag or several (default: all of the model's), attributed together. `method`:
        occlusion (the default: each word left out, the drop in each tag's logit; every family, the
        text-to-text one included; the most faithful and fastest measured, docs/explanations.md),
        integrated_gradients (Captum, `steps` steps) or gradient_x_input. Texts are validated as
        predict() validates them.
        """
        from toxicity.models.attribution import DEFAULT_METHOD, DEFAULT_STEPS, Attributor

        texts = as_text_list(texts)
        positions = self.tag_positions(tags)
        attributor = Attributor(
            self.model, self.max_length, self.truncation, steps or DEFAULT_STEPS, self.batch_size
        )
        return [attributor.explain(text, positions, method or DEFAULT_METHOD) for text in texts]

    def tag_positions(self, tags: str | Sequence[str] | None) -> list[int]:
        """Positions of `tags` among the model's tags (all of them for None); an unknown tag is refused."""
        if tags is None:
            return list(range(len(self.tags)))
        wanted = [tags] if isinstance(tags, str) else list(tags)
        unknown = [tag for tag in wanted if tag not in self.tags]
        if unknown or not wanted:
            raise ValueError(f"unknown tag(s) {unknown or wanted}: this model's tags are {self.tags}.")
        return [self.tags.index(tag) for tag in dict.fromkeys(wanted)]
