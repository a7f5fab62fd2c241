"""The tag schema: the six Jigsaw tags, the default of every model and data module, and the text column."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
TEXT_COLUMN = "comment_text"  # the Kaggle layout's text column: the default everywhere a table is read

# the Perspective API's attribute name of each Jigsaw tag (the serving routes and the feedback export);
# a model's other tags are offered under their upper-cased name
ATTRIBUTES = {
    "toxic": "TOXICITY",
    "severe_toxic": "SEVERE_TOXICITY",
    "obscene": "PROFANITY",
    "threat": "THREAT",
    "insult": "INSULT",
    "identity_hate": "IDENTITY_ATTACK",
}
