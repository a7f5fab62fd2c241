"""`python -m toxicity.feedback`: the suggestions a server stored (`comments:suggestscore`, --feedback-db) as
a table `python -m toxicity.fit` trains on.

    python -m toxicity.feedback export --db toxicity-feedback.sqlite --out feedback.csv
    python -m toxicity.feedback export --db postgresql+psycopg://toxicity@db/feedback --out feedback.csv \
        --tags toxic insult --missing-as 0

The table: id, comment_text and one 0/1 column per tag. Per comment and tag the latest suggestion wins; a
value of 0.5 or more is the tag. Rows stored as a hash only (--feedback-hash-comments) have no text to
export: they are counted. See toxicity.serving.feedback_export.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import run_tool
from toxicity.core.files import atomic_output
from toxicity.serving.feedback_export import Export, feedback_table
from toxicity.serving.feedback_store import database_url, read_rows, shown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toxicity.feedback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the stored suggestions as a training table")
    export.add_argument(
        "--db", required=True, help="the server's --feedback-db: a SQLite path or SQLAlchemy URL"
    )
    export.add_argument("--out", required=True, help="the CSV to write (never overwritten)")
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
    return parser


def export(args: argparse.Namespace) -> Export:
    if Path(args.out).exists():
        raise FileExistsError(f"{args.out} already exists; choose another --out (export never overwrites)")
    exported = feedback_table(read_rows(args.db), args.tags, args.missing_as)
    if exported.table.empty:
        raise ValueError(
            f"feedback database {shown(database_url(args.db))}: no suggestion to export "
            f"({exported.rows_read} rows, {exported.hash_only} stored as a hash only, "
            f"{exported.missing_tags} comments without every tag); nothing written"
        )
    with atomic_output(args.out) as temporary:
        exported.table.to_csv(temporary, index=False)
    return exported


def main(argv: Sequence[str] | None = None) -> Export:
    args = build_parser().parse_args(argv)
    exported = run_tool(lambda: export(args))
    print(
        f"wrote {len(exported.table)} comments with tags {', '.join(exported.tags)} to {Path(args.out)} "
        f"from {exported.rows_read} suggestions; left out: {exported.hash_only} stored as a hash only, "
        f"{exported.missing_tags} comments missing a tag (--missing-as)"
    )
    return exported


if __name__ == "__main__":
    main()
