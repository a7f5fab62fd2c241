"""The model's most confident mistakes, with the words that made them (`--explain-errors N`, issue 30).

Per tag: the N false positives with the highest probability and the N false negatives with the lowest, at
the thresholds the report decides with (the tuned ones where there are, else 0.5), each comment shown with
its words coloured by their attribution for that tag (red pushed the score up, blue down). One HTML file,
no external assets, so it opens offline and can be attached to a ticket.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toxicity.core.files import write_text_atomically

log = logging.getLogger(__name__)

ERRORS_PAGE = "errors.html"


@dataclass(frozen=True)
class Mistake:
    row: int
    kind: str  # "false positive" or "false negative"
    probability: float


def most_confident_errors(labels: np.ndarray, probs: np.ndarray, cutoff: float, n: int) -> list[Mistake]:
    """One tag's N most confident false positives (highest probability first), then its N most confident
    false negatives (lowest first)."""
    positives = np.flatnonzero((labels == 0) & (probs >= cutoff))
    negatives = np.flatnonzero((labels == 1) & (probs < cutoff))
    fp = positives[np.argsort(-probs[positives], kind="stable")][:n]
    fn = negatives[np.argsort(probs[negatives], kind="stable")][:n]
    return [Mistake(int(r), "false positive", float(probs[r])) for r in fp] + [
        Mistake(int(r), "false negative", float(probs[r])) for r in fn
    ]


def highlighted(explanation, tag: str) -> str:
    """The comment as HTML, each word a span coloured by its share of `tag`'s score."""
    values = explanation.attributions[tag]
    most = max(float(np.abs(values).max()) if len(values) else 0.0, 1e-9)
    text, parts, at = explanation.text, [], 0
    for word, value in zip(explanation.words, values):
        share = float(value) / most
        alpha = round(min(1.0, abs(share)) * 0.75, 3)
        colour = f"rgba(217,72,43,{alpha})" if share >= 0 else f"rgba(61,123,224,{alpha})"
        parts.append(html.escape(text[at : word.start]))
        parts.append(
            f'<span class="w{" hl" if share >= 0.25 else ""}" style="background:{colour}" '
            f'title="{value:+.3f}">{html.escape(text[word.start : word.end])}</span>'
        )
        at = word.end
    parts.append(html.escape(text[at:]))
    return "".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
td, th { border-top: 1px solid #d8d8de; padding: 0.4rem; vertical-align: top; text-align: left; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.6; }
.w { border-radius: 0.2rem; } .w.hl { font-weight: 600; }
.none { color: #55555c; }
"""


def render_page(title: str, method: str, sections: list[tuple[str, float, list[tuple[Mistake, str]]]]) -> str:
    body = [
        f"<h1>{html.escape(title)}</h1>",
        (
            "<p>Per tag, the most confident false positives and false negatives at the report's thresholds; "
            f"words coloured by their attribution to the tag ({html.escape(method)}): red pushed the score "
            "up, blue down, the stronger the colour the more. Hover a word for its value (logit units).</p>"
        ),
    ]
    for tag, cutoff, rows in sections:
        body.append(f'<h2 id="{html.escape(tag)}">{html.escape(tag)} (threshold {cutoff:.3f})</h2>')
        if not rows:
            body.append('<p class="none">no errors at this threshold</p>')
            continue
        body.append("<table><tr><th>error</th><th>probability</th><th>row</th><th>comment</th></tr>")
        body += [
            f"<tr><td>{m.kind}</td><td>{m.probability:.3f}</td><td>{m.row}</td>"
            f'<td class="text">{text}</td></tr>'
            for m, text in rows
        ]
        body.append("</table>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_error_page(
    path: Path,
    classifier,
    texts: Sequence[str],
    labels: np.ndarray,
    probs: np.ndarray,
    tags: Sequence[str],
    cutoffs: dict[str, float],
    n: int,
    title: str,
    method: str | None = None,
) -> int:
    """Writes the page (atomically) for the evaluated rows; returns how many comments it explains."""
    from toxicity.models.attribution import DEFAULT_METHOD

    method = method or DEFAULT_METHOD
    sections, explained = [], 0
    for k, tag in enumerate(tags):
        cutoff = float(cutoffs.get(tag, 0.5))
        mistakes = most_confident_errors(labels[:, k], probs[:, k], cutoff, n)
        rows = []
        for mistake in mistakes:
            (explanation,) = classifier.explain(texts[mistake.row], tags=tag, method=method)
            rows.append((mistake, highlighted(explanation, tag)))
        explained += len(rows)
        sections.append((tag, cutoff, rows))
    write_text_atomically(path, render_page(title, method, sections))
    log.info("Explained %d errors in %s.", explained, path)
    return explained


def explain_errors(out: Path, classifier, scored, results, n: int) -> str:
    """The page for an evaluation (`scored`: its rows and probabilities; `results`: its thresholds), written
    as `out/errors.html`; returns the file's name for the report's link."""
    cutoffs = results.tuned.thresholds.thresholds if results.tuned else {}
    cutoffs = {tag: cutoffs.get(tag, results.default_threshold) for tag in results.tags}
    write_error_page(
        Path(out) / ERRORS_PAGE,
        classifier,
        scored.data.texts,
        scored.labels,
        scored.probs,
        results.tags,
        cutoffs,
        n,
        f"Most confident errors: {results.name}",
    )
    return ERRORS_PAGE
