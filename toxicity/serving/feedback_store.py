"""Where `comments:suggestscore` keeps its suggestions: one table, `toxicity_feedback`, in any database
SQLAlchemy reaches: a SQLite file for one server, a PostgreSQL URL for a fleet writing to one place.

The route runs in LitServe's HTTP processes, several of which write at once (and on a fleet, several
servers): SQLite is opened in WAL mode with a busy timeout, so writers wait for each other instead of
failing, and the table is created once, tolerating another process creating it at the same moment."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

log = logging.getLogger(__name__)

DEFAULT_FEEDBACK_DB = "toxicity-feedback.sqlite"  # in the directory the server was started from
TABLE = "toxicity_feedback"
BUSY_TIMEOUT_S = 30  # how long a SQLite writer waits for another one before giving up

metadata = sa.MetaData()
feedback = sa.Table(
    TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),  # NULL when the server stores hashes only
    sa.Column("comment_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("comment_type", sa.String(16), nullable=False),
    # {"TOXICITY": {"summaryScore": 0.0, "spanScores": [{"begin": 0, "end": 5, "score": 0.0}]}, ...}
    sa.Column("attribute_scores", sa.JSON, nullable=False),
    sa.Column("languages", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("community_id", sa.Text, nullable=True),
    sa.Column("client_token", sa.Text, nullable=True),
    sa.Column("session_id", sa.Text, nullable=True),
    sa.Column("model_sha256", sa.String(64), nullable=False),
)
COLUMNS = {column.name for column in feedback.columns}


class FeedbackDatabaseError(ValueError):
    """A feedback database that cannot be used; the message names it and says what to do."""


@dataclass
class Suggestion:
    """One suggestscore request as stored (the scores by Perspective attribute name)."""

    comment: str
    attribute_scores: dict[str, dict]
    model_sha256: str
    comment_type: str = "PLAIN_TEXT"
    languages: list[str] | None = None
    community_id: str | None = None
    client_token: str | None = None
    session_id: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self, hash_comments: bool) -> dict:
        return {
            "received_at": self.received_at,
            "comment": None if hash_comments else self.comment,
            "comment_sha256": comment_sha256(self.comment),
            "comment_type": self.comment_type,
            "attribute_scores": self.attribute_scores,
            "languages": self.languages,
            "community_id": self.community_id,
            "client_token": self.client_token,
            "session_id": self.session_id,
            "model_sha256": self.model_sha256,
        }


def comment_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------- the database
def database_url(given: str) -> URL:
    """A SQLAlchemy URL as given, or a path, which is a SQLite file."""
    if "://" not in given:
        return URL.create("sqlite", database=str(Path(given).expanduser().absolute()))
    try:
        return make_url(given)
    except ArgumentError as error:
        raise FeedbackDatabaseError(
            f"feedback database {given!r} is not a SQLAlchemy URL ({error}); give a path or a URL"
        ) from None


def shown(url: URL) -> str:
    """The URL without its password, to name it in messages and logs."""
    return url.render_as_string(hide_password=True)


def connect(url: URL) -> Engine:
    """An engine for `url`; SQLite in WAL mode with a busy timeout, so concurrent writers queue."""
    try:
        if url.get_backend_name() != "sqlite":
            return sa.create_engine(url, pool_pre_ping=True)
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise FeedbackDatabaseError(
            f"feedback database {shown(url)}: no driver for it ({error}); for PostgreSQL install "
            "psycopg[binary] and write postgresql+psycopg://user:password@host/database"
        ) from None

    @sa.event.listens_for(engine, "connect")
    def _wal(connection, record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    return engine


def check_sqlite_file(url: URL) -> None:
    """Never writes into a file that is not ours: a file that is not SQLite, or a SQLite database of
    something else (tables, but not ours), is refused."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if not path.exists():
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise FeedbackDatabaseError(
                f"feedback database {path}: cannot create it, {path.parent} is not a writable folder"
            )
        return
    with open(path, "rb") as file:
        header = file.read(16)
    if header and header != b"SQLite format 3\x00":
        raise FeedbackDatabaseError(
            f"feedback database {path} exists and is not a SQLite database; give a new path (--feedback-db)"
        )
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and TABLE not in tables:
        raise FeedbackDatabaseError(
            f"feedback database {path} is a SQLite database of something else (tables: "
            f"{', '.join(sorted(tables))}); give a new path, or one a toxicity server wrote (--feedback-db)"
        )


def first_line(message: str) -> str:
    return message.strip().splitlines()[0]


def create_table(engine: Engine) -> None:
    """Creates the table unless it exists; another process creating it at the same moment (several servers
    starting together) makes our CREATE fail, which is fine when the table is there afterwards."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        if not sa.inspect(engine).has_table(TABLE):
            raise
    check_columns(engine)


def check_columns(engine: Engine) -> None:
    found = {column["name"] for column in sa.inspect(engine).get_columns(TABLE)}
    missing = COLUMNS - found
    if missing:
        raise FeedbackDatabaseError(
            f"feedback database {shown(engine.url)}: its table {TABLE} was not written by this version "
            f"(no column {', '.join(sorted(missing))}); give another database"
        )


class FeedbackStore:
    """The server's handle on the database. Safe to build before LitServe forks its HTTP processes: each
    process opens its own engine (connections must not cross a fork) on its first write."""

    def __init__(self, given: str, hash_comments: bool = False):
        self.url, self.hash_comments = database_url(given), hash_comments
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._opening = threading.Lock()

    def prepare(self) -> None:
        """Checks the database at start, so a bad one stops the server with its reason rather than failing
        its first suggestion, and creates the table; a SQLite file not there yet is only created by the
        first suggestion (a server nobody sends feedback to leaves no file behind)."""
        check_sqlite_file(self.url)
        if self.url.get_backend_name() == "sqlite" and not Path(self.url.database or "").exists():
            return
        engine = connect(self.url)
        try:
            create_table(engine)
        except DBAPIError as error:
            raise FeedbackDatabaseError(
                first_line(f"feedback database {shown(self.url)}: {error.orig or error}")
            ) from None
        finally:
            engine.dispose()  # before the HTTP processes fork: connections must not cross a fork

    @property
    def engine(self) -> Engine:
        """This process's engine, opened (and the table made sure of) on its first use here."""
        with self._opening:  # the route writes from a thread pool
            if self._pid != os.getpid():
                engine = connect(self.url)
                create_table(engine)
                self._engine, self._pid = engine, os.getpid()
        return self._engine

    def add(self, suggestion: Suggestion) -> None:
        with self.engine.begin() as connection:
            connection.execute(feedback.insert(), suggestion.row(self.hash_comments))


# ------------------------------------------------------------------------------------------ reading
def read_rows(given: str) -> Iterator[dict]:
    """Every stored suggestion, oldest first, for the export; an unusable database is one clear error."""
    url = database_url(given)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise FeedbackDatabaseError(f"feedback database {url.database} does not exist")
    check_sqlite_file(url)
    engine = connect(url)
    try:
        if not sa.inspect(engine).has_table(TABLE):
            raise FeedbackDatabaseError(
                f"feedback database {shown(url)} has no table {TABLE}; "
                "is it the --feedback-db a server wrote?"
            )
        check_columns(engine)
        with engine.connect() as connection:
            query = sa.select(feedback).order_by(feedback.c.received_at, feedback.c.id)
            for row in connection.execute(query).mappings():
                yield dict(row)
    except DBAPIError as error:
        raise FeedbackDatabaseError(
            first_line(f"feedback database {shown(url)}: {error.orig or error}")
        ) from None
    finally:
        engine.dispose()
