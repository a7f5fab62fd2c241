"""The language of a Perspective comment, identified offline with py3langid (chosen over lingua, langdetect
and pycld2 in benchmarks/results/language_id-2026-12-02-cpu.md: on short comments it wrongly refused the
fewest English ones with the rule below, and was fast and small).

The rule, for a comment sent without `languages`: it is refused as not English only when English is not
among the three most likely languages and the most likely one has a probability of at least 0.5. Short
English comments often look like something else to any detector (hashtags, names, two words), so being
sure that a comment is *not* English asks for more than English not coming first."""

from __future__ import annotations

from functools import cache

LIKELY = 3  # how many of the most likely languages may hold English for a comment to be scored
CONFIDENT = 0.5  # the probability of the most likely language needed to refuse a comment
REPORTED = 0.1  # the probability of a language needed for it to be in detectedLanguages


@cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load() -> None:
    """Loads the model now rather than on the first comment (about half a second)."""
    _identifier()


def likely_languages(text: str) -> list[tuple[str, float]]:
    """The LIKELY most likely languages of `text` (ISO 639-1 codes) with their probabilities, most likely
    first."""
    return [(language, float(p)) for language, p in _identifier().rank(text)[:LIKELY]]


def detected(likely: list[tuple[str, float]]) -> list[str]:
    """What `detectedLanguages` answers: the likely languages with a probability of at least REPORTED."""
    return [language for language, p in likely if p >= REPORTED]


def surely_not(language: str, likely: list[tuple[str, float]]) -> bool:
    return bool(likely) and language not in {found for found, _ in likely} and likely[0][1] >= CONFIDENT


def primary(code: str) -> str:
    """The language of a BCP-47 tag or ISO code: "en-GB" and "EN" are "en"."""
    return code.replace("_", "-").split("-")[0].lower()
