"""The label-string codec of the text-to-text family.

A text-to-text model writes a row's tags as words: the names of its tags in schema order, joined by
spaces ("toxic obscene insult"), or one word for none ("not_toxic"). `TagStringCodec` turns 0/1 rows
into such strings and strings back into rows; what it cannot read (a word that is no tag, a tag
written twice) is counted, never an error: a model can generate anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

NONE_WORD = "not_toxic"


@dataclass
class DecodedTags:
    """The 0/1 row read from a generated string, and what in it was not a clean tag list."""

    row: list[int]
    unknown: list[str] = field(default_factory=list)  # words that are no tag (nor the none word)
    repeated: list[str] = field(default_factory=list)  # tags written more than once

    @property
    def clean(self) -> bool:
        return not self.unknown and not self.repeated


class TagStringCodec:
    """0/1 tag rows ⇄ tag strings, for one tag schema."""

    def __init__(self, tags: Sequence[str], none_word: str = NONE_WORD):
        self.tags, self.none_word = list(tags), none_word
        bad = [tag for tag in [*self.tags, none_word] if not tag or any(c.isspace() for c in tag)]
        if bad or none_word in self.tags or len(set(self.tags)) != len(self.tags):
            raise ValueError(
                f"Tag names must be distinct single words, other than the none word {none_word!r}; "
                f"got tags {self.tags}."
            )

    @property
    def words(self) -> list[str]:
        """Every word a target string can hold: the tags, then the none word."""
        return [*self.tags, self.none_word]

    def encode(self, row: Sequence[int]) -> str:
        words = [tag for tag, value in zip(self.tags, row) if value]
        return " ".join(words) if words else self.none_word

    def encode_words(self, row: Sequence[int]) -> list[str]:
        return self.encode(row).split(" ")

    def decode(self, text: str) -> DecodedTags:
        return self.decode_words(text.split())

    def decode_words(self, words: Sequence[str]) -> DecodedTags:
        decoded = DecodedTags([0] * len(self.tags))
        seen: set[str] = set()
        for word in words:
            if word == self.none_word:
                continue
            if word not in self.tags:
                decoded.unknown.append(word)
            elif word in seen:
                decoded.repeated.append(word)
            else:
                seen.add(word)
                decoded.row[self.tags.index(word)] = 1
        return decoded
