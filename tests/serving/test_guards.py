"""What reaches a route (toxicity.serving.guards): a page on another site, a re-pointed name (DNS rebinding),
a form's body and an oversized suggestion cannot write to the feedback store; named keys are stored with
what they write; span requests do not hold up the server."""

import http.server
import json
import os
import shutil
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from tests.helpers.chromium import Browser
from tests.helpers.server import Server
from toxicity.serving.guards import ApiKeys, host_name

SUGGEST = "/v1alpha1/comments:suggestscore"
ANALYZE = "/v1alpha1/comments:analyze"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PUBLIC_URL = "https://toxicity.example.org"
SUGGESTION = {
    "comment": {"text": "you are wonderful"},
    "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
}


def stored_rows(database: Path) -> list[dict]:
    import sqlite3

    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM toxicity_feedback")]


@pytest.fixture(scope="module")
def open_feedback_server(tiny_checkpoint, tmp_path_factory):
    """A server with feedback on and no key: what only a local user should be able to write to."""
    database = tmp_path_factory.mktemp("guarded") / "feedback.sqlite"
    running = Server(
        "--ckpt", str(tiny_checkpoint), "--feedback-db", str(database), "--public-url", PUBLIC_URL
    )
    running.database = database
    yield running
    running.stop()


def post(server: Server, path: str, body: bytes, headers: dict) -> int:
    return server.call(path, body, headers)[0]


def test_a_suggestion_must_be_json_from_this_origin_and_host(open_feedback_server):
    server, body = open_feedback_server, json.dumps(SUGGESTION).encode()
    before = len(stored_rows(server.database))
    host = f"127.0.0.1:{server.port}"
    refused = [
        ({"content-type": "text/plain"}, 415),  # a page's no-cors fetch, or a form with enctype=text/plain
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "application/json", "origin": "http://evil.example"}, 403),
        ({"content-type": "application/json", "origin": "null"}, 403),  # a sandboxed frame
        # DNS rebinding: the page's own name, now pointing here, as both Host and Origin
        ({"content-type": "application/json", "host": "evil.example", "origin": "http://evil.example"}, 400),
    ]
    for headers, status in refused:
        assert post(server, SUGGEST, body, headers) == status, headers
    assert len(stored_rows(server.database)) == before
    assert (
        post(server, SUGGEST, body, {"content-type": "application/json; charset=utf-8"}) == 200
    )  # no Origin
    same_origin = {"content-type": "application/json", "origin": f"http://{host}"}
    assert post(server, SUGGEST, body, same_origin) == 200  # the server's own page
    assert len(stored_rows(server.database)) == before + 2
    status, answer = server.call("/info", headers={"host": "attacker.example"})
    assert status == 400 and "--allowed-hosts" in answer["error"]
    assert server.call("/health", headers={"host": "10.1.2.3:8000"})[0] == 200  # probes use the address
    assert post(server, "/predict", b'{"texts": ["hi"]}', {"origin": "http://evil.example"}) == 403


ATTACK_PAGE = """<!doctype html><body>
<form id="form" method="POST" enctype="text/plain" action="{target}" target="sink">
  <input name='{{"comment": {{"text": "form"}}, "attributeScores": {{"TOXICITY":
    {{"summaryScore": {{"value": 1}}}}}}, "x": "' value='"}}'>
</form>
<iframe name="sink" id="sink"></iframe>
<script>
const body = JSON.stringify({body});
const tries = [
  fetch("{target}", {{method: "POST", mode: "no-cors", body}}),
  fetch("{target}", {{method: "POST", mode: "no-cors", headers: {{"content-type": "application/json"}},
    body}}),
  fetch("{target}", {{method: "POST", headers: {{"content-type": "application/json"}}, body}}),
  fetch("{target}".replace("127.0.0.1", "localhost"), {{method: "POST", mode: "no-cors", body}}),
];
Promise.allSettled(tries).then(() => {{
  document.getElementById("sink").onload = () => {{ document.body.dataset.done = "yes"; }};
  document.getElementById("form").submit();
}});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)")
def test_a_page_on_another_origin_writes_no_row(open_feedback_server, tmp_path):
    """A real browser on a page of another origin tries every way a page may POST without asking the server
    (no-cors fetch, a text/plain form) and the way that needs the server's leave (CORS): 0 rows. The same
    request from the server's own page is stored, so the browser's requests do arrive."""
    server = open_feedback_server
    target = server.url + SUGGEST
    site = tmp_path / "site"
    site.mkdir()
    (site / "attack.html").write_text(ATTACK_PAGE.format(target=target, body=json.dumps(SUGGESTION)))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as other_site:
        threading.Thread(target=other_site.serve_forever, daemon=True).start()
        before = len(stored_rows(server.database))
        with Browser(CHROMIUM, tmp_path) as browser:
            browser.open(f"http://127.0.0.1:{other_site.server_address[1]}/attack.html")
            browser.wait_for("document.body && document.body.dataset.done === 'yes'")
            assert len(stored_rows(server.database)) == before
            browser.open(server.url + "/")
            browser.wait_for("document.body.dataset.state === 'ready'")
            status = browser.evaluate(
                f"fetch({json.dumps(SUGGEST)}, {{method: 'POST', headers: {{'content-type': "
                f"'application/json'}}, body: JSON.stringify({json.dumps(SUGGESTION)})}}).then(r => r.status)"
            )
        other_site.shutdown()
    assert status == 200 and len(stored_rows(server.database)) == before + 1


@pytest.mark.slow
def test_the_feedback_route_is_off_without_a_database_and_needs_no_writable_folder(
    legacy_checkpoint, tmp_path
):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        server = Server("--ckpt", str(legacy_checkpoint), cwd=folder)
        try:
            status, answer = server.call(SUGGEST, SUGGESTION)
            assert status == 404 and "--feedback-db" in answer["error"]["message"]
            assert server.call("/predict", {"texts": ["hi"]})[0] == 200
        finally:
            server.stop()
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


@pytest.fixture(scope="module")
def legacy_checkpoint() -> Path:
    from tests.helpers import ROOT

    return ROOT / "tests" / "fixtures" / "legacy" / "encoder.ckpt"


@pytest.mark.slow
def test_each_suggestion_is_stored_with_the_name_of_its_key(legacy_checkpoint, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# moderators\nalice:key-of-alice-0123\n\nbob:key-of-bob-4567\n")
    keys.chmod(0o600)
    database = tmp_path / "f.sqlite"
    server = Server(
        "--ckpt", str(legacy_checkpoint), "--api-keys-file", str(keys), "--feedback-db", str(database)
    )
    try:
        for key in ("key-of-alice-0123", "key-of-bob-4567"):
            assert server.call(SUGGEST, SUGGESTION, {"x-api-key": key})[0] == 200
        assert server.call(SUGGEST, SUGGESTION, {"x-api-key": "key-of-eve"})[0] == 400  # Google's wrong key
        assert server.call("/predict", {"texts": ["hi"]}, {"x-api-key": "key-of-bob-4567"})[0] == 200
    finally:
        server.stop()
    rows = stored_rows(database)
    assert [row["api_key_name"] for row in rows] == ["alice", "bob"]
    assert "key-of" not in database.read_bytes().decode("latin-1") and "key-of" not in server.output()


@pytest.mark.parametrize(
    "text, says",
    [
        ("alice:k1\nalice:k2\n", "line 2: name alice given twice"),
        ("alice:k1\nbob:k1\n", "line 2: its key given twice"),
        ("alice k1\n", "line 1: write NAME:KEY"),
        ("# nothing\n", "no NAME:KEY line"),
    ],
)
def test_a_bad_keys_file_is_refused_with_its_line(tmp_path, text, says):
    keys = tmp_path / "keys"
    keys.write_text(text)
    keys.chmod(0o600)
    with pytest.raises(ValueError, match=says):
        ApiKeys.from_file(str(keys))
    keys.chmod(0o644)
    with pytest.raises(ValueError, match="others can read it; run chmod 600"):
        ApiKeys.from_file(str(keys))


@pytest.mark.parametrize(
    "host, name", [("example.org:8000", "example.org"), ("[::1]:8000", "::1"), ("LOCALHOST", "localhost")]
)
def test_host_names_are_read_without_their_port(host, name):
    assert host_name(host) == name


LONG_ID = "x" * 257


@pytest.mark.parametrize(
    "change, says",
    [
        ({"clientToken": LONG_ID}, "clientToken: String should have at most 256 characters"),
        ({"sessionId": LONG_ID}, "sessionId"),
        ({"communityId": LONG_ID}, "communityId"),
        ({"languages": ["en"] * 11}, "languages: List should have at most 10 items"),
        ({"comment": {"text": "hi\u0000there"}}, "comment.text has a NUL character"),
        ({"clientToken": "a\u0000b"}, "clientToken has a NUL character"),
        ({"comment": {"text": "   \n"}}, "Comment must be non-empty"),
        ({"comment": {"text": "<script>x()</script>", "type": "HTML"}}, "Comment must be non-empty"),
        ({"unknownField": 1}, "unknownField: Extra inputs are not permitted"),
        ({"attributeScores": {"TOXICITY": {"summaryScore": {"value": True}}}}, "not true or false"),
        (
            {
                "comment": {"text": "a"},
                "attributeScores": {
                    "TOXICITY": {"spanScores": [{"begin": 0, "end": 1, "score": {"value": 1}}] * 10}
                },
            },
            "10 spans, more than the comment's sentences allow (9)",
        ),
    ],
)
def test_what_a_client_may_store_is_capped(open_feedback_server, change, says):
    before = len(stored_rows(open_feedback_server.database))
    status, answer = open_feedback_server.call(SUGGEST, SUGGESTION | change)
    assert status == 400 and says in answer["error"]["message"], answer
    assert len(stored_rows(open_feedback_server.database)) == before


def test_analyze_takes_what_suggestscore_takes(open_feedback_server):
    """The same caps and comment rules on both routes, so the store never holds what analyze refuses."""
    for change in ({"clientToken": LONG_ID}, {"languages": ["en"] * 11}, {"bogus": 1}):
        body = {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}} | change
        assert open_feedback_server.call(ANALYZE, body)[0] == 400, change
    body = {"comment": {"text": "hi", "type": "TEXT_TYPE_UNSPECIFIED"}}
    assert open_feedback_server.call(ANALYZE, body | {"requestedAttributes": {"TOXICITY": {}}})[0] == 200
    assert open_feedback_server.call(SUGGEST, SUGGESTION | body)[0] == 200


def test_the_discovery_document_is_not_cached_and_names_the_public_url(open_feedback_server):
    with urllib.request.urlopen(open_feedback_server.url + "/$discovery/rest?version=v1alpha1") as answer:
        document, cache = json.load(answer), answer.headers["cache-control"]
    assert document["rootUrl"] == PUBLIC_URL + "/" and cache == "no-store"


def health_latencies(server: Server, seconds: float) -> list[float]:
    latencies, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        assert server.status("/health") == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    return latencies


def test_sentence_splitting_does_not_hold_up_the_server(open_feedback_server):
    """Four clients sending the splitter's worst case (5,000 characters of "1. 1. ...", spans asked for)
    while /health is probed: its 95th percentile stays under 50 ms (it was 873 ms)."""
    server, stop = open_feedback_server, threading.Event()
    worst = {
        "comment": {"text": "1. " * 1666},
        "requestedAttributes": {"TOXICITY": {}},
        "spanAnnotations": True,
    }

    def client() -> int:
        sent = 0
        while not stop.is_set():
            assert server.call(ANALYZE, worst)[0] == 200
            sent += 1
        return sent

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client) for _ in range(4)]
        time.sleep(1)  # every client has a request in flight
        latencies = health_latencies(server, 8)
        stop.set()
        sent = sum(future.result() for future in clients)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    assert sent >= 4 and p95 < 0.050, f"p95 {p95 * 1000:.1f} ms over {len(latencies)} probes, {sent} requests"


def test_a_moved_database_file_gets_a_new_one_and_loses_no_row(tmp_path):
    """Rotation while serving: the rows before the move are in the moved file, those after in a new file."""
    from toxicity.serving.perspective.store import FeedbackStore, Suggestion

    database, rotated = tmp_path / "f.sqlite", tmp_path / "f-2026-12.sqlite"
    store = FeedbackStore(str(database))
    scores = {"TOXICITY": {"summaryScore": 1.0, "spanScores": []}}
    store.add(Suggestion("before", scores, "abc"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{database}{suffix}").exists():
            os.rename(f"{database}{suffix}", f"{rotated}{suffix}")
    store.add(Suggestion("after", scores, "abc"))
    assert [row["comment"] for row in stored_rows(rotated)] == ["before"]
    assert [row["comment"] for row in stored_rows(database)] == ["after"]
    database.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    store.add(Suggestion("deleted", scores, "abc"))
    assert [row["comment"] for row in stored_rows(database)] == ["deleted"]


def test_what_the_routes_need_is_checked_at_start(monkeypatch, tmp_path, capsys):
    """A missing splitter or language detector, or a temp folder nobody can write, stops the server with
    one line before it listens (they failed every span request, or exited with a traceback)."""
    import sys
    import tempfile

    from toxicity.serve import check_serving_needs

    monkeypatch.setitem(sys.modules, "pysbd", None)  # as if not installed
    with pytest.raises(SystemExit):
        check_serving_needs()
    assert "needs pysbd: pip install pysbd" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "pysbd")
    gone = tmp_path / "gone"  # (root writes into read-only folders, so a folder that is not there)
    monkeypatch.setattr(tempfile, "tempdir", str(gone))
    with pytest.raises(SystemExit):
        check_serving_needs()
    assert f"cannot write to the temp folder {gone}" in capsys.readouterr().err
