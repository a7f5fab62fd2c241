"""The tag schema: the six Jigsaw Toxic Comment tags, in Kaggle's column order."""

LABELS: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
