"""Texts to token ids, cut to max_length at the head or at head and tail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

DEFAULT_MAX_LENGTH = 128  # tokens; the model stores the value it was trained with


# ------------------------------------------------------------------------------------ tokens and batches
Truncation = Literal["head", "head_tail"]


HEAD_SHARE = (
    0.25  # head_tail keeps the first quarter of the budget and the last three quarters (Sun et al. 2019)
)


def tokenize_texts(
    tokenizer, texts: Sequence[str], max_length: int, truncation: Truncation = "head", chunk_size: int = 4096
) -> list[list[int]]:
    """Token ids with special tokens, at most `max_length` of them, not padded.

    `head` keeps the start of a long text; `head_tail` keeps its start and its end, where a long
    comment's verdict often is ("... and that is why you are an idiot").
    """
    if truncation not in ("head", "head_tail"):
        raise ValueError(f"truncation must be 'head' or 'head_tail', got {truncation!r}.")
    ids: list[list[int]] = []
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        if truncation == "head":
            ids.extend(tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"])
        else:
            front, back = special_tokens_around(tokenizer)
            budget = max_length - len(front) - len(back)
            ids.extend(
                front + head_and_tail(row, budget) + back
                for row in tokenizer(chunk, add_special_tokens=False)["input_ids"]
            )
    return ids


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a text ([CLS] / [SEP] for BERT, </s> after for
    T5)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    start = next(k for k in range(len(full)) if full[k : k + len(plain)] == plain)
    return full[:start], full[start + len(plain) :]


def head_and_tail(ids: list[int], budget: int) -> list[int]:
    if len(ids) <= budget:
        return ids
    head = int(budget * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (budget - head) :]
