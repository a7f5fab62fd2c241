"""`toxicity feedback export`: the suggestions a server stored (`comments:suggestscore`, --feedback-db)
as a table `toxicity fit` trains on.

The table: id, comment_text and one 0/1 column per tag; a value of 0.5 or more is the tag. Where the
suggestions on a comment disagree, --conflict decides: agree (default: only comments whose suggestions all
agree), majority, or latest. Rows stored as a hash only (--feedback-hash-comments) have no text to export:
they are counted. The CSV holds the comments verbatim, for `fit`; --safe-csv quotes cells a spreadsheet
would run as formulas (=, +, -, @), for opening it in one. See toxicity.serving.perspective.export.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import HelpFormatter, add_output, add_overwrite, command_parser, run_tool
from toxicity.core.files import atomic_output, refuse_to_overwrite
from toxicity.core.tags import TEXT_COLUMN
from toxicity.serving.perspective.export import (
    RULES,
    Export,
    check_tags,
    exported_records,
    suggested_tags,
    write_csv,
)

EXAMPLES = (
    "toxicity feedback export --feedback-db toxicity-feedback.sqlite --output feedback.csv",
    (
        "toxicity feedback export --feedback-db postgresql+psycopg://toxicity@db/feedback "
        "--output feedback.csv --tags toxic insult --missing-as 0"
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("feedback", __doc__, EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export",
        help="write the stored suggestions as a training table",
        allow_abbrev=False,
        description=__doc__,
        epilog=parser.epilog,
        formatter_class=HelpFormatter,
    )
    export.add_argument(
        "--feedback-db",
        required=True,
        metavar="PATH_OR_URL",
        help="what the server was given as --feedback-db: a SQLite file or a SQLAlchemy URL",
    )
    add_output(export, "the CSV to write", required=True)
    add_overwrite(export)
    export.add_argument(
        "--tags", nargs="+", default=None, help="the tag columns (default: every tag suggested)"
    )
    export.add_argument(
        "--missing-as",
        type=int,
        choices=(0, 1),
        default=None,
        help="the value of a tag no suggestion gave for a comment (default: leave the comment out, counted)",
    )
    export.add_argument(
        "--conflict",
        choices=RULES,
        default="agree",
        help="when suggestions on a comment disagree: agree = leave it out (default), majority = more than "
        "half of the writers' votes decide, latest = the latest suggestion decides",
    )
    export.add_argument(
        "--safe-csv",
        action="store_true",
        help="quote text cells starting with = + - @ so that a spreadsheet shows them instead of running "
        "them (changes the text: not for training)",
    )
    return parser


def export(args: argparse.Namespace) -> Export:
    """Two passes over the database, both streamed: the tags suggested, then the table."""
    from toxicity.serving.perspective.store import database_url, read_rows, shown  # SQLAlchemy: when it runs

    refuse_to_overwrite(args.output, overwrite=args.overwrite)
    suggested = suggested_tags(read_rows(args.feedback_db))
    tags = args.tags or suggested
    exported = Export(never_suggested=check_tags(tags, suggested))
    records = exported_records(read_rows(args.feedback_db), tags, exported, args.missing_as, args.conflict)
    with atomic_output(args.output) as temporary:
        write_csv(records, ["id", TEXT_COLUMN, *tags], temporary, safe=args.safe_csv)
        if not exported.written:  # raised inside: the partial file is removed, nothing is written
            raise ValueError(
                f"feedback database {shown(database_url(args.feedback_db))}: no suggestion to export "
                f"({exported.rows_read} rows, {exported.hash_only} stored as a hash only, "
                f"{exported.missing_tags} comments without every tag, {exported.conflicts_left_out} left out "
                f"by --conflict {args.conflict}); nothing written"
            )
    return exported


def main(argv: Sequence[str] | None = None) -> Export:
    args = build_parser().parse_args(argv)
    exported = run_tool(lambda: export(args))
    never = (
        f"; never suggested, so all {args.missing_as} (--missing-as): {', '.join(exported.never_suggested)}"
        if exported.never_suggested and args.missing_as is not None
        else ""
    )
    print(
        f"wrote {exported.written} comments with tags {', '.join(exported.tags)} to {Path(args.output)} "
        f"from {exported.rows_read} suggestions; {exported.conflicts} disagreements on a comment's tag; "
        f"left out: {exported.hash_only} stored as a hash only, {exported.missing_tags} comments missing a "
        f"tag (--missing-as), {exported.conflicts_left_out} comments whose suggestions disagree "
        f"(--conflict {args.conflict}){never}"
    )
    return exported


if __name__ == "__main__":
    main()
