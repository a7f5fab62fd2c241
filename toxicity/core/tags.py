"""The tag schema (the six Jigsaw tags by default) and the label-string codec of the text-to-text family.

A text-to-text model writes a row's tags as words: the names of its tags in schema order, joined by
spaces ("toxic obscene insult"), or one word for none ("not_toxic"). `TagStringCodec` turns 0/1 rows
into such strings and strings back into rows; what it cannot read (a word that is no tag, a tag
written twice) is counted, never an error: a model can generate anything.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
