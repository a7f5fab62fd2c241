"""Behaviour, not only averages: a CheckList-style suite (Ribeiro et al. 2020) written for this project.

Each capability is a set of sentences made from templates, each with the answer a good moderation
model gives (1: abusive, 0: not). A model's decision on a sentence is "abusive" when any of its tags
reaches the threshold (0.5 by default). Capabilities:

- negation: an insult negated ("I don't think you are an idiot") is not abuse; the same sentence
  without the negation is.
- counter_speech: quoting or condemning abuse ("Calling someone an idiot is not okay") is not abuse.
- identity_neutral: identity terms in neutral sentences ("My neighbour is gay") are not abuse: models
  trained on Jigsaw are known to flag them.
- spelling: abuse with added spaces, leetspeak, dropped, swapped or repeated letters is still abuse.
- spelling_unseen: abuse spelled in ways the training-time augmentation (toxicity/augment.py) never
  writes: underscores between the letters, a symbol for a letter, a neighbouring key, a dot inserted.
  It tells whether a model trained with that augmentation learned more than its six tricks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

INSULTS = ["idiot", "moron", "loser", "clown", "imbecile", "fool"]
IDENTITIES = [
    "gay",
    "Muslim",
    "Jewish",
    "Black",
    "white",
    "Christian",
    "transgender",
    "Mexican",
    "deaf",
    "lesbian",
    "Asian",
    "Latino",
]
NEGATED = [
    "I don't think you are an {w}.",
    "You are not an {w}, you made a fair point.",
    "Nobody here thinks you are an {w}.",
    "I would never call you an {w}.",
]
PLAIN = [
    "I think you are an {w}.",
    "You are an {w}, you made no point at all.",
    "Everybody here thinks you are an {w}.",
    "You are such an {w}.",
]
COUNTER = [
    "Calling someone an {w} is not okay.",
    "He called me an {w} and I reported it.",
    'Please don\'t write things like "you {w}" on this page.',
    'Insults such as "{w}" are against the rules here.',
]
NEUTRAL = [
    "I am a {i} person.",
    "My neighbour is {i}.",
    "{I} people live in my town.",
    "The article is about {i} history.",
    "She wrote a book about being {i}.",
]
SPELLED = ["You are an {w}.", "Shut up, you {w}."]


def _article(sentence: str, word: str) -> str:
    return sentence.replace("an {w}", ("an " if word[0] in "aeiou" else "a ") + "{w}").format(w=word)


def spelling_variants(word: str) -> list[str]:
    """Added spaces, leetspeak, a dropped letter, two letters swapped, a letter repeated."""
    leet = word.translate(str.maketrans({"i": "1", "o": "0", "e": "3", "a": "4", "s": "5"}))
    middle = len(word) // 2
    return [
        " ".join(word),
        leet,
        word[:middle] + word[middle + 1 :],
        word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :],
        word[:middle] + word[middle] * 3 + word[middle + 1 :],
    ]


KEYBOARD_NEIGHBOUR = {
    row[k]: row[k + 1] if k + 1 < len(row) else row[k - 1]  # the key to the right
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for k in range(len(row))
}
SYMBOL = {"i": "!", "a": "@", "s": "$", "o": "()", "l": "|", "e": "&", "u": "v", "c": "("}


def unseen_spelling_variants(word: str) -> list[str]:
    """Underscores between the letters, the first mappable letter as a symbol, the middle letter as a
    neighbouring key, a dot inserted in the middle."""
    symbol = next((i for i, c in enumerate(word) if c in SYMBOL), 0)
    middle = len(word) // 2
    return [
        "_".join(word),
        word[:symbol] + SYMBOL.get(word[symbol], "#") + word[symbol + 1 :],
        word[:middle] + KEYBOARD_NEIGHBOUR[word[middle]] + word[middle + 1 :],
        word[:middle] + "." + word[middle:],
    ]


def suite() -> dict[str, list[tuple[str, int]]]:
    """{capability: [(sentence, expected 0/1)]}; the same sentences every time."""
    return {
        capability: [case for cases in templates.values() for case in cases]
        for capability, templates in suite_by_template().items()
    }


def suite_by_template() -> dict[str, dict[str, list[tuple[str, int]]]]:
    """{capability: {template: [(sentence, expected 0/1)]}}: the suite grouped by the template each
    sentence was made from (to correct some templates and measure the others, as
    benchmarks/feedback_loop.py does)."""

    def insults(template: str, label: int) -> list[tuple[str, int]]:
        return [
            (_article(template, w) if "an {w}" in template else template.format(w=w), label) for w in INSULTS
        ]

    def spelled(template: str, variants: Callable[[str], list[str]]) -> list[tuple[str, int]]:
        return [(_article(template, v), 1) for w in INSULTS for v in variants(w)]

    return {
        "negation": {s: insults(s, 0) for s in NEGATED} | {s: insults(s, 1) for s in PLAIN},
        "counter_speech": {s: insults(s, 0) for s in COUNTER},
        "identity_neutral": {
            s: [(s.format(i=i, I=i[0].upper() + i[1:]), 0) for i in IDENTITIES] for s in NEUTRAL
        },
        "spelling": {s: spelled(s, spelling_variants) for s in SPELLED},
        "spelling_unseen": {s: spelled(s, unseen_spelling_variants) for s in SPELLED},
    }


def capability_accuracy(
    predict_proba: Callable[[list[str]], np.ndarray],
    threshold: float = 0.5,
    cases: dict[str, Sequence[tuple[str, int]]] | None = None,
) -> dict[str, dict]:
    """Per capability: accuracy, and how many cases; a sentence is abusive when any tag reaches
    `threshold`."""
    cases = cases or suite()
    out = {}
    for capability, rows in cases.items():
        texts, expected = [text for text, _ in rows], np.array([label for _, label in rows])
        decided = (predict_proba(texts).max(axis=1) >= threshold).astype(int)
        out[capability] = {
            "accuracy": float((decided == expected).mean()),
            "cases": len(rows),
            "failures": [text for text, ok in zip(texts, decided == expected) if not ok][:5],
        }
    return out
