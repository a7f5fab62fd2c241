"""The stored suggestions as a table `python -m toxicity.fit` reads: an `id`, the comment's text and one 0/1
column per tag, the Perspective attribute names mapped back to the model's tags.

A suggestion's value for a tag is its summaryScore, or, when it gives span scores only, the highest of them
(a comment is abusive when any of its sentences is); 1 when the value is 0.5 or more. Each writer votes
once per comment and tag, with its latest suggestion: a writer is the API key that sent it (its name, with
--api-keys-file), or, on a server without named keys, each suggestion alone (client ids are whatever the
client says they are, so they cannot be trusted to tell writers apart). Where the votes disagree, the rule:

- `agree` (the default): the comment is exported only when every vote agrees on every exported tag;
- `majority`: more than half of the votes decide; a tie leaves the comment out;
- `latest`: the latest suggestion decides (one request can then flip any label).

Disagreements and the comments they leave out are counted. An HTML comment is exported as the text the
server scores (without its markup). Rows stored as a hash only cannot be exported; they are counted. The
rows arrive grouped by comment (see feedback_store.read_rows), so a comment's group is resolved and written
as soon as it ends: memory stays flat however many rows the database holds."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING

from toxicity.core.tags import ATTRIBUTES, LABELS, TEXT_COLUMN
from toxicity.serving.perspective.text import read_comment

if TYPE_CHECKING:  # pandas is imported when a table is built, not for `toxicity feedback --help`
    import pandas as pd

log = logging.getLogger(__name__)

CUT = 0.5  # a suggested value at or above it is the tag
TAGS_OF_ATTRIBUTES = {attribute: tag for tag, attribute in ATTRIBUTES.items()}

RULES = ("agree", "majority", "latest")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula


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
    rows_read: int = 0
    hash_only: int = 0  # rows without their text (the server ran with --feedback-hash-comments)
    missing_tags: int = 0  # comments left out because no suggestion gave one of the exported tags
    conflicts: int = 0  # comment and tag pairs whose votes disagreed
    conflicts_left_out: int = 0  # comments left out because the rule could not settle a disagreement
    written: int = 0
    tags: list[str] = field(default_factory=list)
    never_suggested: list[str] = field(default_factory=list)  # exported tags no suggestion named
    table: pd.DataFrame | None = None  # feedback_table's result


def suggested_tags(rows: Iterable[dict]) -> list[str]:
    """Every tag a suggestion named, the Jigsaw ones first in their order."""
    named = {tag_of(attribute) for row in rows for attribute in row["attribute_scores"]}
    return [tag for tag in LABELS if tag in named] + sorted(named - set(LABELS))


def check_tags(tags: Sequence[str], suggested: Sequence[str]) -> list[str]:
    """The exported tags no suggestion named; a tag that is neither suggested nor a Jigsaw tag is a typo."""
    unknown = [tag for tag in tags if tag not in suggested and tag not in LABELS]
    if unknown:
        raise ValueError(
            f"tag {', '.join(unknown)} was never suggested and is not a Jigsaw tag (suggested: "
            f"{', '.join(suggested) or 'none'}); check --tags"
        )
    return [tag for tag in tags if tag not in suggested]


def exported_records(
    rows: Iterable[dict],
    tags: Sequence[str],
    export: Export,
    missing_as: int | None = None,
    rule: str = "agree",
) -> Iterator[dict]:
    """One record per comment (`id`, the text, a 0/1 column per tag), counting in `export` what is left
    out. `rows`: the stored suggestions grouped by comment_hash, oldest first in each group."""
    if rule not in RULES:
        raise ValueError(f"unknown conflict rule {rule!r}; choose one of {', '.join(RULES)}")
    export.tags = list(tags)
    for _, group in groupby(rows, key=lambda row: row["comment_hash"]):
        suggestions = list(group)
        export.rows_read += len(suggestions)
        if suggestions[0]["comment"] is None:
            export.hash_only += len(suggestions)
            continue
        labels = settled_labels(suggestions, tags, rule, export)
        if labels is None:
            continue
        if missing_as is None and len(labels) < len(tags):
            export.missing_tags += 1
            continue
        first = suggestions[0]
        text = read_comment(first["comment"], first.get("comment_type") == "HTML").text.strip()  # as scored
        yield {
            "id": f"feedback{export.written:06d}",
            TEXT_COLUMN: text,
            **{tag: labels.get(tag, missing_as) for tag in tags},
        }
        export.written += 1


def settled_labels(suggestions: list[dict], tags: Sequence[str], rule: str, export: Export) -> dict | None:
    """{tag: 0 or 1} for the tags the suggestions on one comment settle under `rule`; None when a
    disagreement on an exported tag is left unsettled."""
    votes: dict[str, dict[str, int]] = {}  # tag -> writer -> that writer's latest label
    for row in suggestions:
        writer = row.get("api_key_name") or f"row {row['id']}"
        for attribute, scores in row["attribute_scores"].items():
            value = suggested_value(scores)
            if value is not None:
                votes.setdefault(tag_of(attribute), {})[writer] = int(value >= CUT)
    labels, unsettled = {}, False
    for tag in tags:
        if tag not in votes:
            continue
        by_writer = votes[tag]
        counts = Counter(by_writer.values())
        if len(counts) > 1:
            export.conflicts += 1
        if len(counts) == 1 or rule == "latest":
            labels[tag] = list(by_writer.values())[-1]  # dicts keep insertion order: the latest is last
        elif rule == "majority" and counts[0] != counts[1]:
            labels[tag] = int(counts[1] > counts[0])
        else:
            unsettled = True
    if unsettled:
        export.conflicts_left_out += 1
        return None
    return labels


def safe_cell(value):
    """A text cell a spreadsheet would run as a formula, quoted with a leading apostrophe (OWASP's advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(records: Iterable[dict], columns: list[str], path, safe: bool = False) -> None:
    """The records to `path`, one at a time (the file is as big as the table, memory is not)."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for record in records:
            writer.writerow({key: safe_cell(value) for key, value in record.items()} if safe else record)


def feedback_table(
    rows: Sequence[dict],
    tags: Sequence[str] | None = None,
    missing_as: int | None = None,
    rule: str = "agree",
) -> Export:
    """The export of `rows` (grouped by comment, as read_rows yields them) as a DataFrame in `.table`: for
    a notebook, or a database small enough to hold in memory."""
    suggested = suggested_tags(rows)
    tags = list(tags) if tags else suggested
    export = Export(never_suggested=check_tags(tags, suggested))
    records = list(exported_records(rows, tags, export, missing_as, rule))
    import pandas as pd

    export.table = pd.DataFrame.from_records(records, columns=["id", TEXT_COLUMN, *tags])
    return export
