"""ToxicityClassifier: load a checkpoint in one line and score comments.

    clf = ToxicityClassifier.from_checkpoint("checkpoints/best-checkpoint.ckpt")
    clf.predict(["you are an idiot", "thanks for the fix"])   # DataFrame of per-tag probabilities
    clf.predict("thanks!")                                   # {tag: probability}
    clf.predict(texts, threshold="tuned")                    # 0/1 with the thresholds tuned on validation
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from toxicity.data import PadToLongest, tokenize_texts
from toxicity.model import ToxicCommentTagger

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 128
CHUNK_SIZE = 4096  # texts tokenized and sorted at a time: memory stays flat for any input length


class CheckpointError(ValueError):
    """A checkpoint that does not exist or was not written by toxicity.fit."""


def thresholds_path(checkpoint: str | Path) -> Path:
    """Where the per-tag thresholds tuned on validation for this checkpoint are kept (next to it)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".thresholds.json")


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. Train one with `python -m toxicity.fit` "
                              "(it writes checkpoints/best-checkpoint.ckpt).")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({error}).") from error
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "encoder_config" not in hparams or "labels" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a toxicity checkpoint (no tagger hyper-parameters). "
                              "Give a checkpoint written by `python -m toxicity.fit`.")
    return checkpoint


def check_texts(texts: Sequence) -> None:
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, not str; give strings only "
                            "(an empty string is fine).")


class ToxicityClassifier:
    """Scores comments with a trained ToxicCommentTagger, in length-sorted batches padded per batch."""

    def __init__(self, model: ToxicCommentTagger, max_length: int = DEFAULT_MAX_LENGTH,
                 thresholds: dict[str, float] | None = None, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = model.tokenizer
        self.labels = model.labels
        self.max_length = max_length
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.collate = PadToLongest(self.tokenizer.pad_token_id or 0)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        batch_size: int = 64) -> "ToxicityClassifier":
        """Loads offline: the checkpoint carries the encoder config, tokenizer, tags and max_length."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        checkpoint = read_checkpoint(path)
        model = ToxicCommentTagger.load_from_checkpoint(path, map_location=device)
        max_length = checkpoint.get("datamodule_hyper_parameters", {}).get("max_length", DEFAULT_MAX_LENGTH)
        thresholds_file = thresholds_path(path)
        thresholds = json.loads(thresholds_file.read_text()) if thresholds_file.is_file() else None
        return cls(model.to(device), max_length, thresholds, batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict_proba(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """An (n_texts, n_tags) float32 array of probabilities, in the order of `texts`."""
        check_texts(texts)
        probs = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        show = len(texts) > 10 * self.batch_size if progress is None else progress
        with tqdm(total=len(texts), disable=not show, unit="comment", desc="scoring") as bar:
            for start in range(0, len(texts), CHUNK_SIZE):
                chunk = texts[start:start + CHUNK_SIZE]
                probs[start:start + len(chunk)] = self._score_chunk(chunk)
                bar.update(len(chunk))
        return probs

    @torch.inference_mode()
    def _score_chunk(self, texts: Sequence[str]) -> np.ndarray:
        ids = tokenize_texts(self.tokenizer, list(texts), self.max_length)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = self.collate([{"input_ids": ids[i], "index": i} for i in rows])
            logits = self.model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
            out[rows] = torch.sigmoid(logits.float()).cpu().numpy()
        return out

    def predict(self, texts: str | Sequence[str], threshold: float | str | None = None,
                progress: bool | None = None) -> pd.DataFrame | dict[str, float]:
        """Per-tag probabilities (or 0/1 with a float threshold or "tuned") for one text or a list."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        probs = self.predict_proba(batch, progress)
        values = probs if threshold is None else (probs >= self._thresholds(threshold)).astype(np.int64)
        if single:
            return {label: values[0, k].item() for k, label in enumerate(self.labels)}
        return pd.DataFrame(values, columns=self.labels)

    def _thresholds(self, threshold: float | str) -> np.ndarray:
        if threshold == "tuned":
            if self.thresholds is None:
                raise ValueError("No tuned thresholds for this checkpoint: run `python -m toxicity.evaluate` on "
                                 "its validation split first, or pass a number such as threshold=0.5.")
            return np.array([self.thresholds.get(label, 0.5) for label in self.labels], dtype=np.float32)
        if isinstance(threshold, str):
            raise ValueError(f"threshold must be a number or 'tuned', got {threshold!r}.")
        return np.full(len(self.labels), float(threshold), dtype=np.float32)

