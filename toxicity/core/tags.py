"""The tag schema: the six Jigsaw tags, the default of every model and data module."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
