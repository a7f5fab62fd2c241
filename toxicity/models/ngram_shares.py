"""Each word's exact share of the hybrid's n-gram logits (issue 30).

The n-gram branch is linear: a tag's logit is the sum over the text's buckets of weight(bucket) x
table[bucket, tag] (toxicity.data.ngrams.NgramHasher: log(1 + count), the row normalised to L2 norm 1).
Each bucket's term is split evenly among its occurrences in the text (found again with their character
spans, hashed as scikit-learn hashes them), and each occurrence's part among the words its characters
overlap (a word bigram: its two words). The shares of all words therefore add up to the branch's logit
exactly; a bucket none of whose occurrences could be placed (a character that Unicode normalisation
turns into two) is spread evenly over all words, so the sum stays exact.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from toxicity.data.ngrams import NgramHasher
from toxicity.models.attribution import Word

_CHUNK = re.compile(r"\S+")
Span = tuple[int, int]


def bucket_of(ngram: str, buckets: int) -> int:
    """The bucket scikit-learn's HashingVectorizer (alternate_sign=False) puts `ngram` in."""
    from sklearn.utils import murmurhash3_32

    h = int(murmurhash3_32(ngram, seed=0))
    if h == -(2**31):
        return (2**31 - 1 - (buckets - 1)) % buckets
    return abs(h) % buckets


def _spanner(start: int, original: str, plain: str):
    """Character spans in `plain` (the chunk as preprocessed) to spans in the text; the whole chunk where
    preprocessing changed its length."""
    if len(plain) != len(original):
        return lambda first, last: (start, start + len(original))

    def span(first: int, last: int) -> Span:
        first, last = max(first, 0), min(last, len(plain))
        return (start + first, start + max(last, first + 1))

    return span


def occurrences(hasher: NgramHasher, text: str) -> list[tuple[int, list[Span]]]:
    """(bucket, the character spans in `text` it covers) for each n-gram occurrence of `text`."""
    words = hasher._vectorizers[0]
    preprocess = words.build_preprocessor()
    token = re.compile(words.token_pattern)
    (char_low, char_high), (word_low, word_high) = hasher.char_ngrams, hasher.word_ngrams
    found: list[tuple[str, list[Span]]] = []
    tokens: list[tuple[str, Span]] = []
    for chunk in _CHUNK.finditer(text):
        plain = preprocess(chunk.group())
        span = _spanner(chunk.start(), chunk.group(), plain)
        padded = f" {plain} "
        for n in range(char_low, char_high + 1):  # as scikit-learn's _char_wb_ngrams
            offset = 0
            found.append((padded[:n], [span(-1, n - 1)]))
            while offset + n < len(padded):
                offset += 1
                found.append((padded[offset : offset + n], [span(offset - 1, offset + n - 1)]))
            if offset == 0:
                break
        tokens += [(match.group(), span(match.start(), match.end())) for match in token.finditer(plain)]
    for n in range(word_low, word_high + 1):
        for k in range(len(tokens) - n + 1):
            found.append((" ".join(t for t, _ in tokens[k : k + n]), [s for _, s in tokens[k : k + n]]))
    return [(bucket_of(ngram, hasher.buckets), spans) for ngram, spans in found]


def ngram_word_shares(
    hasher: NgramHasher, table: torch.Tensor, text: str, words: Sequence[Word]
) -> np.ndarray:
    """(words, tags) float64: each word's share of the n-gram branch's logits for `text`; the columns sum
    to the branch's logits."""
    tags = table.shape[1]
    shares = np.zeros((len(words), tags), dtype=np.float64)
    bag = hasher.matrix([text])
    if not len(words) or not bag.nnz:
        return shares
    weights = table.detach().double().cpu().numpy()
    term = {int(b): float(w) * weights[int(b)] for b, w in zip(bag.indices, bag.data)}
    placed: dict[int, list[list[int]]] = defaultdict(list)
    starts = np.array([w.start for w in words])
    ends = np.array([w.end for w in words])
    for bucket, spans in occurrences(hasher, text):
        if bucket not in term:
            continue
        owners: list[int] = []
        for begin, end in spans:  # one part per span (a bigram's two words), then among overlapped words
            hit = np.flatnonzero((starts < end) & (ends > begin))
            if not len(hit):  # characters no tokenizer word covers: the nearest word
                hit = [int(np.argmin(np.abs(starts - begin)))]
            owners.append([int(h) for h in hit])
        placed[bucket].append(owners)
    for bucket, value in term.items():
        found = placed.get(bucket)
        if not found:
            shares += value / len(words)
            continue
        part = value / len(found)
        for owners in found:
            for group in owners:
                shares[group] += part / len(owners) / len(group)
    return shares
