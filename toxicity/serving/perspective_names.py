"""The Perspective API's attribute names of the Jigsaw tags, in a module of its own so that the tools that
only read the feedback store (toxicity.feedback) import no model code."""

from __future__ import annotations

# a model's other tags are offered under their upper-cased name
ATTRIBUTES = {
    "toxic": "TOXICITY",
    "severe_toxic": "SEVERE_TOXICITY",
    "obscene": "PROFANITY",
    "threat": "THREAT",
    "insult": "INSULT",
    "identity_hate": "IDENTITY_ATTACK",
}
