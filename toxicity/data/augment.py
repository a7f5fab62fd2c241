"""Training-time augmentation: tagged comments again, with their abusive word misspelled.

People dodge filters by misspelling the word that carries the abuse ("i d i o t", "1d10t", "idot").
A subword encoder fine-tuned on clean spellings often misses these, where a character n-gram model
does not (see the `spelling` capability of toxicity/checklist.py). `obfuscated_copies` adds, for a
share of the tagged training rows, a copy with the same tags in which the row's most tag-indicative
word is written another way. Which word carries the abuse is learned from the training rows
themselves (smoothed log-odds of a word's presence in tagged vs clean rows): no word list is shipped.

Measured (benchmarks/results/sweep-obfuscate-2026-11-26-cpu.md): a copy of every tagged row lifts the
spelling capabilities, including spellings it never writes, but makes the model quicker to flag any insult
word, quoted ones too, and costs a little AUROC; so it is an option, off by default. Misspelling clean
rows as well, in place, to keep the balance, taught nothing about spelling (commit c12f9d0).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

WORD = re.compile(r"[A-Za-z]{4,}")
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
MIN_TAGGED_ROWS = 3  # a word must appear in this many tagged rows to count as indicative
MIN_LOG_ODDS = 1.0  # and be about 2.7 times likelier in a tagged row than in a clean one


def indicative_words(texts: Sequence[str], tagged: np.ndarray) -> dict[str, float]:
    """Lower-cased word → log-odds of appearing in a tagged rather than a clean row (add-one smoothed),
    for the words seen in at least MIN_TAGGED_ROWS tagged rows and scoring at least MIN_LOG_ODDS."""
    in_tagged, in_clean = Counter(), Counter()
    for text, is_tagged in zip(texts, tagged):
        (in_tagged if is_tagged else in_clean).update({word.lower() for word in WORD.findall(text)})
    n_tagged, n_clean = max(int(tagged.sum()), 1), max(int((~tagged).sum()), 1)
    scores = {}
    for word, count in in_tagged.items():
        if count >= MIN_TAGGED_ROWS:
            score = np.log((count + 1) / (n_tagged + 2)) - np.log((in_clean[word] + 1) / (n_clean + 2))
            if score >= MIN_LOG_ODDS:
                scores[word] = float(score)
    return scores


def misspell(word: str, rng: np.random.Generator) -> str:
    """One random way of writing `word` otherwise: spaced letters, leetspeak, a letter dropped, two
    neighbours swapped, a letter repeated, or a vowel masked with `*`; never the word itself."""
    inner = int(rng.integers(1, len(word) - 1))  # a position that is neither the first nor the last letter
    vowels = [i for i, c in enumerate(word) if c.lower() in "aeiou"]

    def mask_a_vowel() -> str:  # the word unchanged, so passed over, when it has no vowel
        if not vowels:
            return word
        i = int(rng.choice(vowels))
        return word[:i] + "*" + word[i + 1 :]

    ways = [
        lambda: rng.choice([" ", ".", "-"]).item().join(word),
        lambda: "".join(LEET.get(c.lower(), c) if rng.random() < 0.7 else c for c in word),
        lambda: word[:inner] + word[inner + 1 :],
        lambda: word[:inner] + word[inner + 1] + word[inner] + word[inner + 2 :],
        lambda: word[:inner] + word[inner] * int(rng.integers(2, 5)) + word[inner + 1 :],
        mask_a_vowel,
    ]
    for way in rng.permutation(len(ways)):
        written = ways[way]()
        if written.lower() != word.lower():
            return written
    return " ".join(word)


def obfuscated_copies(
    frame: pd.DataFrame, label_columns: Sequence[str], share: float, seed: int
) -> pd.DataFrame:
    """Copies (same tags) of a seeded `share` of the tagged rows, each with its most indicative word
    misspelled wherever it occurs; rows without an indicative word are skipped and counted in the log."""
    tagged = frame[list(label_columns)].fillna(0).to_numpy().max(axis=1) > 0  # unknown (NaN) is untagged
    scores = indicative_words(frame["text"].tolist(), tagged)
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(tagged)
    chosen = (
        rng.choice(candidates, size=round(share * len(candidates)), replace=False) if len(candidates) else []
    )
    copies, skipped = [], 0
    for index in sorted(chosen):
        row = frame.iloc[index]
        words = {word.lower() for word in WORD.findall(row["text"])} & scores.keys()
        if not words:
            skipped += 1
            continue
        target = max(sorted(words), key=scores.__getitem__)
        pattern = re.compile(rf"\b{target}\b", re.IGNORECASE)
        copy = row.copy()
        copy["text"] = pattern.sub(lambda match: misspell(match.group(0), rng), row["text"])
        copies.append(copy)
    log.info(
        "Obfuscated copies: %d of %d tagged training rows (%d skipped: no indicative word)",
        len(copies),
        len(candidates),
        skipped,
    )
    return pd.DataFrame(copies, columns=frame.columns)
