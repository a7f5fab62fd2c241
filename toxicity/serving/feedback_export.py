"""The stored suggestions as a table `python -m toxicity.fit` reads: an `id`, the comment's text and one 0/1
column per tag, the Perspective attribute names mapped back to the model's tags.

The rule for a comment suggested more than once: per tag, the latest suggestion wins (a moderator's later
decision overrides an earlier one), and a suggestion's value is its summaryScore, or, when it gives span
scores only, the highest of them (a comment is abusive when any of its sentences is); 1 when the value is
0.5 or more. An HTML comment is exported as the text the server scores (without its markup). Rows stored
as a hash only cannot be exported; they are counted."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from toxicity.core.tags import LABELS
from toxicity.data.sources import TEXT_COLUMN
from toxicity.serving.perspective import ATTRIBUTES
from toxicity.serving.text import read_comment

log = logging.getLogger(__name__)

CUT = 0.5  # a suggested value at or above it is the tag
TAGS_OF_ATTRIBUTES = {attribute: tag for tag, attribute in ATTRIBUTES.items()}


def tag_of(attribute: str) -> str:
    """The model's tag behind a Perspective attribute name; a model's other tags are served upper-cased."""
    return TAGS_OF_ATTRIBUTES.get(attribute, attribute.lower())


def suggested_value(scores: dict) -> float | None:
    if scores.get("summaryScore") is not None:
        return float(scores["summaryScore"])
    spans = [span["score"] for span in scores.get("spanScores") or []]
    return max(spans) if spans else None


@dataclass
class Export:
    table: pd.DataFrame
    rows_read: int = 0
    hash_only: int = 0  # rows without their text (the server ran with --feedback-hash-comments)
    missing_tags: int = 0  # comments left out because no suggestion gave one of the exported tags
    tags: list[str] = field(default_factory=list)


def feedback_table(
    rows: Iterable[dict], tags: Sequence[str] | None = None, missing_as: int | None = None
) -> Export:
    """`rows`: the stored suggestions, oldest first. `tags`: the columns to write (default: every tag a
    suggestion named, the Jigsaw ones first in their order). A comment no suggestion gave a value for one of
    them is left out and counted, or, with `missing_as` 0 or 1, given that value."""
    labels: dict[str, dict[str, int]] = {}  # comment text -> tag -> latest label
    export = Export(table=pd.DataFrame())
    for row in rows:
        export.rows_read += 1
        if row["comment"] is None:
            export.hash_only += 1
            continue
        text = read_comment(row["comment"], row.get("comment_type") == "HTML").text.strip()  # as scored
        latest = labels.setdefault(text, {})
        for attribute, scores in row["attribute_scores"].items():
            value = suggested_value(scores)
            if value is not None:
                latest[tag_of(attribute)] = int(value >= CUT)
    named = {tag for tagged in labels.values() for tag in tagged}
    export.tags = (
        list(tags) if tags else [tag for tag in LABELS if tag in named] + sorted(named - set(LABELS))
    )
    records = []
    for text, tagged in labels.items():
        if missing_as is None and not all(tag in tagged for tag in export.tags):
            export.missing_tags += 1
            continue
        records.append({TEXT_COLUMN: text, **{tag: tagged.get(tag, missing_as) for tag in export.tags}})
    table = pd.DataFrame.from_records(records, columns=[TEXT_COLUMN, *export.tags])
    table.insert(0, "id", [f"feedback{position:06d}" for position in range(len(table))])
    export.table = table
    return export
