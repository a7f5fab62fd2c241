"""Hashed character and word n-grams of each text: the spelling half of the hybrid tagger.

Texts become bags of bucket ids (scikit-learn's HashingVectorizer: MurmurHash3, no vocabulary to store)
weighted log(1 + count), the word and character n-grams of a text normalised together to L2 norm 1 (the
TF-IDF baseline uses 1 + log(count) with idf and normalises each block alone). They are computed where
a batch is built (PadToLongest), from the batch's texts, so training, evaluation and every scorer feed the
model the same features. The settings are plain numbers, kept in the model's hyper-parameters: a
checkpoint stores no vocabulary and nothing pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

MAX_BUCKETS = 1 << 24  # 16.7M rows of tag weights: far beyond use, refused beyond (a checkpoint is data)
MAX_N = 8
# how counts become weights (matrix below); part of the fingerprint, so change it when that changes
WEIGHTING = "log1p counts, word and char n-grams of a text normalised together to L2 norm 1"


def _checked_range(name: str, span: Sequence[int]) -> tuple[int, int]:
    values = tuple(span)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be two whole numbers [shortest, longest], got {span!r}.")
    low, high = values
    if not 1 <= low <= high <= MAX_N:
        raise ValueError(f"{name} must satisfy 1 <= shortest <= longest <= {MAX_N}, got {list(values)}.")
    return low, high


@dataclass(frozen=True)
class NgramHasher:
    """Word n-grams and character n-grams (inside word boundaries, `char_wb`) hashed into `buckets` ids.

    `batch(texts)` gives the tensors an `nn.EmbeddingBag` reads (`ngram_ids`, `ngram_offsets`,
    `ngram_weights`): one bag per text, an empty text an empty bag.
    """

    buckets: int = 1 << 18
    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 2)

    def __post_init__(self):
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int):
            raise TypeError(f"ngram_buckets must be a whole number, got {self.buckets!r}.")
        if not 1 <= self.buckets <= MAX_BUCKETS:
            raise ValueError(f"ngram_buckets must be from 1 to {MAX_BUCKETS}, got {self.buckets}.")
        object.__setattr__(self, "char_ngrams", _checked_range("char_ngrams", self.char_ngrams))
        object.__setattr__(self, "word_ngrams", _checked_range("word_ngrams", self.word_ngrams))

    def __getstate__(self) -> dict:  # DataLoader workers get the settings; the vectorizers are rebuilt
        return {"buckets": self.buckets, "char_ngrams": self.char_ngrams, "word_ngrams": self.word_ngrams}

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @cached_property
    def _vectorizers(self) -> tuple:
        from sklearn.feature_extraction.text import HashingVectorizer

        shared = {
            "n_features": self.buckets,
            "alternate_sign": False,
            "norm": None,
            "strip_accents": "unicode",
            "dtype": np.float32,
        }
        return (
            HashingVectorizer(analyzer="word", ngram_range=self.word_ngrams, **shared),
            HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **shared),
        )

    def fingerprint(self) -> dict[str, object]:
        """Every setting that decides which bucket a text's n-grams land in and with what weight, as plain
        values: the checkpoint keeps it, so a table is never read through different hashing."""
        settings = {
            "ngram_buckets": self.buckets,
            "char_ngrams": list(self.char_ngrams),
            "word_ngrams": list(self.word_ngrams),
            "weighting": WEIGHTING,
        }
        for name, vectorizer in zip(("word", "char"), self._vectorizers):
            for key, value in sorted(vectorizer.get_params().items()):
                if key not in ("n_features", "ngram_range", "dtype"):  # those three: above, or weights only
                    plain = value is None or isinstance(value, (str, bool, int, float))
                    settings[f"{name}_vectorizer.{key}"] = value if plain else repr(value)
        return settings

    def fingerprint_mismatch(self, stored: dict) -> str | None:
        """The first setting in which `stored` (a fingerprint written with a checkpoint) differs from this
        hasher's, as a sentence; None when they agree. Settings only one side knows (another version of
        toxicity or scikit-learn) are not compared."""
        if not isinstance(stored, dict):
            return "its n-gram hashing fingerprint is not a table of settings; the file is damaged or edited."
        current = self.fingerprint()
        for key in sorted(stored.keys() & current.keys()):
            if stored[key] != current[key]:
                return (
                    f"its n-gram setting {key} is {current[key]!r} but was {stored[key]!r} when its n-gram "
                    "table was trained, so texts would hash into other buckets and every score would "
                    f"change; set {key} back to {stored[key]!r} (or use the toxicity version that wrote it)."
                )
        return None

    def matrix(self, texts: Sequence[str]):
        """A CSR matrix (texts × buckets): log(1 + count) of each n-gram, each row of L2 norm 1."""
        from sklearn.preprocessing import normalize

        words, chars = self._vectorizers
        texts = list(texts)
        counts = (words.transform(texts) + chars.transform(texts)).tocsr()
        np.log1p(counts.data, out=counts.data)
        return normalize(counts, norm="l2", copy=False)

    def batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = self.matrix(texts)
        return {
            "ngram_ids": torch.from_numpy(rows.indices.astype(np.int64)),
            "ngram_offsets": torch.from_numpy(rows.indptr[:-1].astype(np.int64)),
            "ngram_weights": torch.from_numpy(rows.data.astype(np.float32)),
        }
