"""Where `comments:suggestscore` keeps its suggestions: one table, `toxicity_feedback`, in any database
SQLAlchemy reaches: a SQLite file for one server, a PostgreSQL URL for a fleet writing to one place.

The route runs in LitServe's HTTP processes, several of which write at once (and on a fleet, several
servers): SQLite is opened in WAL mode with a busy timeout, so writers wait for each other instead of
failing, and the table is created once, tolerating another process creating it at the same moment.
Each row is stamped by the database's clock (`received_at`, a server default), never a server's own, so
that a fleet's rows order the same whichever server's clock runs ahead."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

log = logging.getLogger(__name__)

TABLE = "toxicity_feedback"
BUSY_TIMEOUT_S = 30  # how long a SQLite writer waits for another one before giving up

metadata = sa.MetaData()
feedback = sa.Table(
    TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("comment", sa.Text, nullable=True),  # NULL when the server stores hashes only
    # the text's sha256; with hashed comments, its HMAC-SHA256 under the server's secret
    sa.Column("comment_hash", sa.String(64), nullable=False, index=True),
    sa.Column("comment_type", sa.String(16), nullable=False),
    # {"TOXICITY": {"summaryScore": 0.0, "spanScores": [{"begin": 0, "end": 5, "score": 0.0}]}, ...}
    sa.Column("attribute_scores", sa.JSON, nullable=False),
    sa.Column("languages", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("community_id", sa.Text, nullable=True),
    sa.Column("client_token", sa.Text, nullable=True),
    sa.Column("session_id", sa.Text, nullable=True),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("api_key_name", sa.Text, nullable=True),  # the name of the key that wrote it, never the key
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
    api_key_name: str | None = None

    def row(self, hash_secret: bytes | None) -> dict:
        """The row to insert: with `hash_secret`, the comment's keyed hash in place of its text."""
        return {
            "comment": None if hash_secret else self.comment,
            "comment_hash": comment_hash(self.comment, hash_secret),
            "comment_type": self.comment_type,
            "attribute_scores": self.attribute_scores,
            "languages": self.languages,
            "community_id": self.community_id,
            "client_token": self.client_token,
            "session_id": self.session_id,
            "model_sha256": self.model_sha256,
            "api_key_name": self.api_key_name,
        }


def comment_hash(text: str, secret: bytes | None = None) -> str:
    """sha256 of the text; with a secret, HMAC-SHA256, so that nobody without the secret can test a guess
    of a comment against the stored hashes (pseudonymisation, not anonymisation: the secret's holder can)."""
    if secret:
        return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
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
    process opens its own engine (connections must not cross a fork) on its first write.

    `hash_secret`: store each comment's HMAC under this secret instead of its text."""

    def __init__(self, given: str, hash_secret: bytes | None = None):
        self.url, self.hash_secret = database_url(given), hash_secret
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._file_id: tuple[int, int] | None = None  # the SQLite file the engine opened (device, inode)
        self._opening = threading.Lock()

    @property
    def sqlite_path(self) -> Path | None:
        if self.url.get_backend_name() != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(self.url.database)

    def prepare(self) -> None:
        """Checks the database at start, so a bad one stops the server with its reason rather than failing
        its first suggestion, and creates the table; a SQLite file not there yet is only created by the
        first suggestion (a server nobody sends feedback to leaves no file behind)."""
        check_sqlite_file(self.url)
        if self.sqlite_path and not self.sqlite_path.exists():
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
        """This process's engine, opened (and the table made sure of) on its first use here, and opened
        again when the SQLite file was moved or deleted since (rotated away): rows then go to a new file at
        the path, never to a file nobody will read."""
        with self._opening:  # the route writes from a thread pool
            if self._pid != os.getpid() or self._sqlite_file_replaced():
                if self._engine is not None and self._pid == os.getpid():
                    log.warning(
                        "feedback database %s was moved or deleted; writing a new one", self.url.database
                    )
                    self._engine.dispose()
                check_sqlite_file(self.url)
                engine = connect(self.url)
                create_table(engine)
                self._engine, self._pid, self._file_id = engine, os.getpid(), self._sqlite_file_id()
        return self._engine

    def _sqlite_file_id(self) -> tuple[int, int] | None:
        path = self.sqlite_path
        if path is None or not path.exists():
            return None
        stat = path.stat()
        return stat.st_dev, stat.st_ino

    def _sqlite_file_replaced(self) -> bool:
        return self.sqlite_path is not None and self._sqlite_file_id() != self._file_id

    def add(self, suggestion: Suggestion) -> None:
        with self.engine.begin() as connection:
            connection.execute(feedback.insert(), suggestion.row(self.hash_secret))


# ------------------------------------------------------------------------------------------ reading
EXPORTED = ("id", "comment", "comment_hash", "comment_type", "attribute_scores", "api_key_name")
ROWS_PER_FETCH = 1000


def read_rows(given: str) -> Iterator[dict]:
    """The stored suggestions as the export reads them: only the columns it uses, grouped by comment and
    oldest first in each group (by the database's clock, then by id), streamed from the database in
    batches so that memory stays flat whatever the table's size. An unusable database is one clear error."""
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
        query = sa.select(*(feedback.c[name] for name in EXPORTED)).order_by(
            feedback.c.comment_hash, feedback.c.received_at, feedback.c.id
        )
        with engine.connect() as connection:
            result = connection.execution_options(yield_per=ROWS_PER_FETCH).execute(query)
            for row in result.mappings():
                yield dict(row)
    except DBAPIError as error:
        raise FeedbackDatabaseError(
            first_line(f"feedback database {shown(url)}: {error.orig or error}")
        ) from None
    finally:
        engine.dispose()
