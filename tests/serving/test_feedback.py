"""comments:suggestscore and its store: request/response pairs from the Perspective API reference
(conversationai/perspectiveapi, 2-api/methods.md), refusals in Google's error shape, rows counted exactly
with many clients across several HTTP processes (SQLite; PostgreSQL when TOXICITY_TEST_POSTGRES_URL names a
running server, as .ci/run starts one), and `python -m toxicity.feedback export`."""

import json
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers import ROOT
from tests.helpers.server import Server
from toxicity.core.tags import LABELS
from toxicity.data.validation import validate_comments
from toxicity.feedback import main as feedback_main
from toxicity.serving.perspective.export import feedback_table
from toxicity.serving.perspective.store import (
    TABLE,
    FeedbackDatabaseError,
    FeedbackStore,
    Suggestion,
    comment_hash,
    connect,
    database_url,
    feedback,
)

SUGGEST = "/v1alpha1/comments:suggestscore"
PERSPECTIVE_ERROR = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
# the reference's SuggestCommentScore example, request and response
REFERENCE_REQUEST = {
    "comment": {"text": "I guess it comes down a simple choice: Get busy living, or get busy dying."},
    "attributeScores": {"TOXICITY": {"summaryScore": {"value": 0}}},
    "communityId": "/forum/movies",
    "clientToken": "comment-53922",
}
REFERENCE_RESPONSE = {"clientToken": "comment-53922"}
POSTGRES_URL = os.environ.get("TOXICITY_TEST_POSTGRES_URL")


def rows_of(database) -> list[dict]:
    """Every stored row, every column, in the order stored."""
    engine = connect(database_url(str(database)))
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.select(feedback).order_by("id")).mappings()]
    finally:
        engine.dispose()


def suggestion(text: str, client: int, number: int) -> dict:
    return {
        "comment": {"text": text},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
        "clientToken": f"{client}-{number}",
        "sessionId": f"session-{client}",
    }


def send_from_many_clients(urls: list[str], clients: int, each: int) -> list[int]:
    """`clients` threads, each sending `each` suggestions, spread over the servers in `urls`."""

    def client(number: int) -> list[int]:
        server = urls[number % len(urls)]
        return [server_call(server, suggestion(f"comment {number} {k}", number, k))[0] for k in range(each)]

    with ThreadPoolExecutor(clients) as pool:
        return [status for statuses in pool.map(client, range(clients)) for status in statuses]


def server_call(url: str, body: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url + SUGGEST, json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ----------------------------------------------------------------------------------------------- route
@pytest.fixture(scope="module")
def feedback_server(tiny_checkpoint, tmp_path_factory):
    database = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"
    running = Server("--ckpt", str(tiny_checkpoint), "--workers", "3", "--feedback-db", str(database))
    running.database = database
    yield running
    running.stop()


def test_the_reference_example_is_answered_and_stored_with_the_model(feedback_server, tiny_checkpoint):
    assert not feedback_server.database.exists()  # created by the first suggestion, not at start
    assert feedback_server.call(SUGGEST, REFERENCE_REQUEST) == (200, REFERENCE_RESPONSE)
    _, info = feedback_server.call("/info")
    [row] = [row for row in rows_of(feedback_server.database) if row["client_token"] == "comment-53922"]
    assert row["comment"] == REFERENCE_REQUEST["comment"]["text"]
    assert row["comment_hash"] == comment_hash(row["comment"]) and row["api_key_name"] is None
    assert row["attribute_scores"] == {"TOXICITY": {"summaryScore": 0.0, "spanScores": []}}
    assert row["community_id"] == "/forum/movies" and row["session_id"] is None
    assert row["model_sha256"] == info["model"]["sha256"]
    with sqlite3.connect(feedback_server.database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_span_scores_session_and_languages_are_stored(feedback_server):
    text = "Thanks for the fix. You are a stupid idiot though."
    body = {
        "comment": {"text": text},
        "attributeScores": {
            "INSULT": {
                "spanScores": [{"begin": 20, "end": 50, "score": {"value": 1, "type": "PROBABILITY"}}]
            },
            "PROFANITY": {
                "summaryScore": {"value": 0},
                "spanScores": [{"begin": 0, "end": 19, "score": {"value": 0}}],
            },
        },
        "languages": ["en"],
        "sessionId": "s-1",
    }
    # without a clientToken there is none to echo; the languages come back as Google's discovery has them
    assert feedback_server.call(SUGGEST, body) == (200, {"requestedLanguages": ["en"]})
    [row] = [row for row in rows_of(feedback_server.database) if row["session_id"] == "s-1"]
    assert row["attribute_scores"] == {
        "INSULT": {"summaryScore": None, "spanScores": [{"begin": 20, "end": 50, "score": 1.0}]},
        "PROFANITY": {"summaryScore": 0.0, "spanScores": [{"begin": 0, "end": 19, "score": 0.0}]},
    }
    assert row["languages"] == ["en"] and row["client_token"] is None


@pytest.mark.parametrize(
    "body, error_type, says",
    [
        (b"", "COMMENT_EMPTY", "Comment must be non-empty."),
        ({"comment": {"text": ""}, "attributeScores": {"TOXICITY": {}}}, "COMMENT_EMPTY", "non-empty"),
        ({**REFERENCE_REQUEST, "comment": {"text": "x" * 6000}}, "COMMENT_TOO_LONG", "too long"),
        ({"comment": {"text": "hi"}}, "INVALID_REQUEST", "Missing attribute_scores"),
        (
            {"comment": {"text": "hi"}, "attributeScores": {"FLIRTATION": {"summaryScore": {"value": 1}}}},
            "INVALID_REQUEST",
            "Unknown attribute: FLIRTATION",
        ),
        (
            {"comment": {"text": "hi"}, "attributeScores": {"TOXICITY": {}}},
            "INVALID_REQUEST",
            "attributeScores.TOXICITY: give a summaryScore, spanScores, or both",
        ),
        (
            {"comment": {"text": "hi"}, "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1.5}}}},
            "INVALID_REQUEST",
            "attributeScores.TOXICITY.summaryScore.value",
        ),
        (
            {
                "comment": {"text": "hi"},
                "attributeScores": {
                    "TOXICITY": {"spanScores": [{"begin": 0, "end": 9, "score": {"value": 1}}]}
                },
            },
            "INVALID_REQUEST",
            "spanScores[0]: begin 0 and end 9",
        ),
        (  # Google's discovery document: "All SpanScore objects must have begin and end fields set"
            {
                "comment": {"text": "hi"},
                "attributeScores": {"TOXICITY": {"spanScores": [{"score": {"value": 1}}]}},
            },
            "INVALID_REQUEST",
            "attributeScores.TOXICITY.spanScores.0.begin: Field required",
        ),
        (
            {**REFERENCE_REQUEST, "comment": {"text": "hi", "type": "MARKDOWN"}},
            "INVALID_REQUEST",
            "comment.type",
        ),
    ],
)
def test_bad_suggestions_get_googles_error_object_and_store_nothing(feedback_server, body, error_type, says):
    before = len(rows_of(feedback_server.database)) if feedback_server.database.exists() else 0
    status, answer = feedback_server.call(SUGGEST, body)
    assert status == 400, answer
    error = answer["error"]
    assert error["status"] == "INVALID_ARGUMENT" and says in error["message"]
    assert error["details"] == [{"@type": PERSPECTIVE_ERROR, "errorType": error_type}]
    after = len(rows_of(feedback_server.database)) if feedback_server.database.exists() else 0
    assert after == before


def test_the_google_api_client_sends_suggestions(feedback_server):
    from googleapiclient import discovery

    client = discovery.build(
        "commentanalyzer",
        "v1alpha1",
        developerKey="unused",
        discoveryServiceUrl=feedback_server.url + "/$discovery/rest?version=v1alpha1",
        static_discovery=False,
    )
    assert client.comments().suggestscore(body=REFERENCE_REQUEST).execute() == REFERENCE_RESPONSE


def test_many_clients_across_http_processes_lose_no_suggestion(feedback_server):
    """3 HTTP processes (--workers 3) writing to one SQLite file at once: 8 clients x 25 suggestions."""
    statuses = send_from_many_clients([feedback_server.url], clients=8, each=25)
    assert statuses == [200] * 200
    tokens = [row["client_token"] for row in rows_of(feedback_server.database)]
    sent = {f"{client}-{number}" for client in range(8) for number in range(25)}
    assert sorted(token for token in tokens if token in sent) == sorted(sent)  # each once, none lost


@pytest.fixture
def postgres_url():
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server: set TOXICITY_TEST_POSTGRES_URL (.ci/run starts one and sets it)")
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
    except sa.exc.OperationalError as error:
        pytest.skip(f"PostgreSQL at TOXICITY_TEST_POSTGRES_URL is not reachable: {str(error.orig).strip()}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.mark.slow
def test_two_servers_on_one_postgresql_database_lose_no_suggestion(tiny_checkpoint, postgres_url):
    """A fleet: two servers started together (both creating the table), 2 HTTP processes each, 8 clients
    x 25 suggestions spread over both."""
    args = ("--ckpt", str(tiny_checkpoint), "--workers", "2", "--feedback-db", postgres_url)
    with ThreadPoolExecutor(2) as pool:
        servers = list(pool.map(lambda _: Server(*args), range(2)))
    try:
        statuses = send_from_many_clients([server.url for server in servers], clients=8, each=25)
    finally:
        for server in servers:
            server.stop()
    assert statuses == [200] * 200
    tokens = sorted(row["client_token"] for row in rows_of(postgres_url))
    assert tokens == sorted(f"{client}-{number}" for client in range(8) for number in range(25))


# ----------------------------------------------------------------------------------------------- store
def test_hashed_comments_keep_only_a_keyed_hash(tmp_path):
    """Pseudonymisation: the HMAC under the server's secret, which a guess of the comment cannot be checked
    against without the secret (a plain sha256 could be)."""
    store = FeedbackStore(str(tmp_path / "f.sqlite"), hash_secret=b"a secret of the server")
    store.prepare()
    store.add(Suggestion("you idiot", {"TOXICITY": {"summaryScore": 1.0, "spanScores": []}}, "abc"))
    [row] = rows_of(tmp_path / "f.sqlite")
    assert row["comment"] is None and row["comment_hash"] == comment_hash(
        "you idiot", b"a secret of the server"
    )
    assert row["comment_hash"] != comment_hash("you idiot")
    assert "you idiot" not in (tmp_path / "f.sqlite").read_bytes().decode("latin-1")


def test_a_file_that_is_not_ours_is_refused_and_left_alone(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FeedbackDatabaseError, match="notes.txt exists and is not a SQLite database"):
        FeedbackStore(str(notes)).prepare()
    assert notes.read_text() == "my notes"
    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(FeedbackDatabaseError, match=r"SQLite database of something else \(tables: users\)"):
        FeedbackStore(str(other)).prepare()
    with sqlite3.connect(other) as connection:
        assert [name for (name,) in connection.execute("SELECT name FROM sqlite_master")] == ["users"]


@pytest.mark.parametrize(
    "given, says",
    [
        ("postgresql+psycopg://toxicity:secret@127.0.0.1:1/feedback", "127.0.0.1:1/feedback"),
        ("nosuchdb://host/x", "no driver for it"),
        ("/no/such/folder/feedback.sqlite", "/no/such/folder is not a writable folder"),
    ],
)
def test_an_unusable_database_stops_the_server_with_its_name(given, says):
    with pytest.raises(FeedbackDatabaseError, match="feedback database") as refusal:
        FeedbackStore(given).prepare()
    assert says in str(refusal.value) and "secret" not in str(refusal.value)


def test_many_processes_creating_the_table_at_once(tmp_path):
    """Eight processes preparing one new database together: one table, and every one of them can write."""
    database = str(tmp_path / "f.sqlite")
    write = (
        "import sys; from toxicity.serving.perspective.store import FeedbackStore, Suggestion; "
        "store = FeedbackStore(sys.argv[1]); store.prepare(); "
        "store.add(Suggestion('hi', {'TOXICITY': {'summaryScore': 0.0, 'spanScores': []}}, 'abc'))"
    )
    processes = [subprocess.Popen([sys.executable, "-c", write, database], cwd=ROOT) for _ in range(8)]
    assert [process.wait(120) for process in processes] == [0] * 8
    assert len(rows_of(database)) == 8


# ---------------------------------------------------------------------------------------------- export
_ids = iter(range(1, 1_000_000))


def stored(comment: str | None, scores: dict, key: str | None = None) -> dict:
    """A row as read_rows yields it (call in the order the database received them)."""
    return {
        "id": next(_ids),
        "comment": comment,
        "comment_hash": comment_hash(comment or "hashed"),
        "comment_type": "PLAIN_TEXT",
        "attribute_scores": scores,
        "api_key_name": key,
    }


def as_read(rows: list[dict]) -> list[dict]:
    """Grouped by comment, oldest first in each group, as read_rows yields them."""
    return sorted(rows, key=lambda row: (row["comment_hash"], row["id"]))


def summary(value: float) -> dict:
    return {"summaryScore": value, "spanScores": []}


def test_spans_count_by_their_highest_and_what_is_left_out_is_counted():
    rows = [
        stored("you idiot", {"TOXICITY": summary(1), "INSULT": summary(1)}),
        stored(
            "fine. you moron",
            {
                "TOXICITY": {
                    "summaryScore": None,
                    "spanScores": [
                        {"begin": 0, "end": 5, "score": 0.0},
                        {"begin": 6, "end": 15, "score": 0.9},
                    ],
                },
                "INSULT": summary(0.5),
            },
        ),
        stored(None, {"TOXICITY": summary(1), "INSULT": summary(1)}),  # hash only
        stored("only toxic", {"TOXICITY": summary(1)}),
    ]
    exported = feedback_table(as_read(rows))
    assert exported.tags == ["toxic", "insult"]
    assert sorted(exported.table[["comment_text", "toxic", "insult"]].values.tolist()) == [
        ["fine. you moron", 1, 1],
        ["you idiot", 1, 1],
    ]
    assert (exported.rows_read, exported.hash_only, exported.missing_tags) == (4, 1, 1)
    filled = feedback_table(as_read(rows), tags=["toxic", "insult", "obscene"], missing_as=0)
    assert filled.table["obscene"].tolist() == [0, 0, 0] and filled.never_suggested == ["obscene"]


def test_the_conflict_rule_decides_and_one_request_cannot_flip_a_label_by_default():
    """alice and carol (named keys) say toxic, then bob says not; dave corrects himself; two keyless
    suggestions disagree."""
    rows = as_read(
        [
            stored("you idiot", {"TOXICITY": summary(1)}, key="alice"),
            stored("you idiot", {"TOXICITY": summary(1)}, key="carol"),
            stored("you idiot", {"TOXICITY": summary(0)}, key="bob"),
            stored("thanks", {"TOXICITY": summary(1)}, key="dave"),
            stored("thanks", {"TOXICITY": summary(0)}, key="dave"),  # his latest word is his vote
            stored("go away", {"TOXICITY": summary(1)}),
            stored("go away", {"TOXICITY": summary(0)}),  # keyless: every suggestion votes
        ]
    )

    def decided(rule: str) -> dict:
        exported = feedback_table(rows, rule=rule)
        assert exported.conflicts == 2  # you idiot, go away
        return dict(zip(exported.table["comment_text"], exported.table["toxic"]))

    assert decided("agree") == {"thanks": 0}
    assert decided("majority") == {"thanks": 0, "you idiot": 1}  # 2 to 1; go away is a tie
    assert decided("latest") == {"thanks": 0, "you idiot": 0, "go away": 0}
    assert feedback_table(rows).conflicts_left_out == 2


def test_an_html_comment_is_exported_as_the_text_the_model_scores():
    rows = [stored("<p>you <b>idiot</b></p>", {"TOXICITY": summary(1)}) | {"comment_type": "HTML"}]
    assert feedback_table(rows).table["comment_text"].tolist() == ["you idiot"]


def test_attribute_names_map_back_to_the_models_tags():
    scores = {"PROFANITY": summary(1), "IDENTITY_ATTACK": summary(0), "SEVERE_TOXICITY": summary(0)}
    exported = feedback_table([stored("x", scores | {"OFFENSIVE": summary(1)})])
    assert exported.tags == ["severe_toxic", "obscene", "identity_hate", "offensive"]


def test_the_export_command_writes_a_table_fit_reads(tmp_path, capsys):
    database = tmp_path / "f.sqlite"
    store = FeedbackStore(str(database))
    store.prepare()
    for text, value in (("you idiot", 1), ("thanks", 0), ('=HYPERLINK("http://x")', 1)):
        store.add(Suggestion(text, {name: summary(value) for name in ("TOXICITY", "INSULT")}, "abc"))
    store.add(Suggestion("you idiot", {"TOXICITY": summary(0)}, "abc"))  # a later request disagrees
    FeedbackStore(str(database), hash_secret=b"0123456789abcdef").add(
        Suggestion("secret", {"TOXICITY": summary(1)}, "abc")
    )
    assert all(row["received_at"] is not None for row in rows_of(database))  # the database's clock
    out = tmp_path / "feedback.csv"
    feedback_main(
        [
            "export",
            "--feedback-db",
            str(database),
            "--output",
            str(out),
            "--tags",
            *LABELS,
            "--missing-as",
            "0",
        ]
    )
    said = capsys.readouterr().out
    assert "wrote 2 comments" in said and "1 stored as a hash only" in said
    assert "1 comments whose suggestions disagree (--conflict agree)" in said
    assert "never suggested, so all 0 (--missing-as): severe_toxic, obscene, threat, identity_hate" in said
    table = validate_comments(pd.read_csv(out), out, "comment_text", LABELS)  # as fit checks a table
    assert sorted(table["text"]) == ['=HYPERLINK("http://x")', "thanks"]  # verbatim: it is for training
    assert set(table["toxic"]) == {0, 1} and table["obscene"].tolist() == [0, 0]

    latest = tmp_path / "latest.csv"
    feedback_main(
        [
            "export",
            "--feedback-db",
            str(database),
            "--output",
            str(latest),
            "--conflict",
            "latest",
            "--safe-csv",
        ]
    )
    table = pd.read_csv(latest).set_index("comment_text")
    assert table.loc["you idiot", "toxic"] == 0  # the later suggestion, by the order the database received
    assert '\'=HYPERLINK("http://x")' in table.index  # a spreadsheet shows it rather than runs it


def test_an_exported_tag_nobody_suggested_must_be_a_known_one(tmp_path, capsys):
    database = tmp_path / "f.sqlite"
    store = FeedbackStore(str(database))
    store.add(Suggestion("you idiot", {"TOXICITY": summary(1)}, "abc"))
    out = tmp_path / "feedback.csv"
    with pytest.raises(SystemExit) as exit_:
        feedback_main(
            [
                "export",
                "--feedback-db",
                str(database),
                "--output",
                str(out),
                "--tags",
                "bogus",
                "--missing-as",
                "0",
            ]
        )
    assert exit_.value.code == 2 and "tag bogus was never suggested" in capsys.readouterr().err
    assert not out.exists()


def test_the_export_command_refuses_to_overwrite_and_names_a_bad_database(tmp_path, capsys):
    out = tmp_path / "feedback.csv"
    out.write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        feedback_main(["export", "--feedback-db", str(tmp_path / "f.sqlite"), "--output", str(out)])
    assert exit_.value.code == 2 and "feedback.csv already exists" in capsys.readouterr().err
    assert out.read_text() == "mine"
    for database, says in (
        (tmp_path / "missing.sqlite", "missing.sqlite does not exist"),
        (
            "postgresql+psycopg://127.0.0.1:1/feedback",
            "feedback database postgresql+psycopg://127.0.0.1:1/feedback",
        ),
    ):
        with pytest.raises(SystemExit) as exit_:
            feedback_main(["export", "--feedback-db", str(database), "--output", str(tmp_path / "new.csv")])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(SystemExit):
        feedback_main(["export", "--feedback-db", str(empty), "--output", str(tmp_path / "new.csv")])
    assert f"has no table {TABLE}" in capsys.readouterr().err
    assert not (tmp_path / "new.csv").exists()


def test_a_postgresql_password_comes_from_the_environment(postgres_url, monkeypatch):
    """The URL without its password (not on the command line, where `ps` shows it): psycopg reads
    PGPASSWORD, or ~/.pgpass."""
    url = database_url(postgres_url)
    if not url.password:
        pytest.skip("TOXICITY_TEST_POSTGRES_URL has no password to move to PGPASSWORD")
    monkeypatch.setenv("PGPASSWORD", url.password)
    without = url.set(password=None).render_as_string(hide_password=False)
    store = FeedbackStore(without)
    store.prepare()
    store.add(Suggestion("hi", {"TOXICITY": summary(0)}, "abc"))
    assert [row["comment"] for row in rows_of(without)] == ["hi"]


def test_the_export_command_imports_no_model_code():
    """A database to a CSV needs neither torch nor Lightning nor LitServe (6.8 s of imports before)."""
    heavy = ("torch", "pytorch_lightning", "litserve", "onnxruntime", "transformers")
    check = f"import sys, toxicity.feedback; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
