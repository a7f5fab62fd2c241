"""`python -m toxicity.serve`: each route through a real server process, refusals, the API key, batching,
and the page driven in a real headless Chromium."""

import asyncio
import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT
from tests.helpers.chromium import Browser
from tests.helpers.explain import insult_direction_model, save_as_checkpoint
from tests.helpers.processes import descendants, port_is_free, wait_until_stopped
from tests.helpers.server import Server
from toxicity.checkpoint import save_thresholds, thresholds_path
from toxicity.core.tags import LABELS
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.serve import banner, main, parse_args
from toxicity.serving.api import Failed, Rows, ToxicityAPI, score
from toxicity.serving.perspective.analyze import ATTRIBUTES
from toxicity.serving.perspective.errors import invalid_key_detail
from toxicity.serving.schemas import Limits, PredictRequest, Refused, parse_body

TEXTS = [
    "you idiot number 3, stop it stop it",
    "thanks for edit number 7 on the article",
    "",
    "ok",
    "I will find you",
    "a much longer comment that keeps going " * 4,
    "you idiot",
    "thanks",
]
TUNED = dict(zip(LABELS, [0.3, 0.6, 0.5, 0.2, 0.4, 0.7]))
LONGEST = ("a comment as long as the module's server takes, " * 7)[:300]  # --max-chars 300


@pytest.fixture(scope="module")
def tuned_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A copy of the tiny checkpoint with tuned thresholds beside it."""
    path = tmp_path_factory.mktemp("tuned") / "best.ckpt"
    shutil.copy(tiny_checkpoint, path)
    save_thresholds(thresholds_path(path), TUNED)
    return path


@pytest.fixture(scope="module")
def server(tuned_checkpoint):
    running = Server(
        "--ckpt",
        str(tuned_checkpoint),
        "--max-batch-size",
        "8",
        "--batch-timeout",
        "0.05",
        "--max-texts",
        "8",
        "--max-chars",
        "300",
        "--max-explained",
        "2",
        "--max-body-bytes",
        "4000",
        "--read-timeout",
        "2",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def legacy_checkpoint() -> Path:
    """The smallest checkpoint at hand, for servers that are started only to be stopped."""
    return ROOT / "tests" / "fixtures" / "legacy" / "encoder.ckpt"


@pytest.fixture(scope="module")
def direct(tuned_checkpoint) -> ToxicityClassifier:
    return ToxicityClassifier.from_checkpoint(tuned_checkpoint, device="cpu")


def test_predict_returns_probabilities_and_tuned_labels(server, direct):
    status, body = server.call("/predict", {"texts": TEXTS[:3]})
    assert status == 200 and set(body) == {"probabilities"}
    assert [list(row) for row in body["probabilities"]] == [list(LABELS)] * 3
    probs = np.array([list(row.values()) for row in body["probabilities"]])
    np.testing.assert_allclose(probs, direct.predict_proba(TEXTS[:3]), atol=1e-5)

    status, body = server.call("/predict", {"texts": TEXTS[:2], "threshold": "tuned"})
    assert status == 200 and body["thresholds"] == pytest.approx(TUNED)
    expected = (direct.predict_proba(TEXTS[:2]) >= np.array(list(TUNED.values()))).astype(int)
    assert [list(row.values()) for row in body["labels"]] == expected.tolist()
    status, body = server.call("/predict", {"texts": ["ok"], "threshold": 0})
    assert status == 200 and set(body["labels"][0].values()) == {1}


def test_batched_scores_equal_unbatched_ones(server, direct):
    """Concurrent requests share batches (padded to the longest text in them): scores stay within 1e-5."""
    texts = TEXTS * 4 + [LONGEST] * 2
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda text: server.call("/predict", {"texts": [text]}), texts))
    assert {status for status, _ in answers} == {200}
    served = np.array([list(body["probabilities"][0].values()) for _, body in answers])
    one_at_a_time = np.concatenate([direct.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(served, one_at_a_time, atol=1e-5)
    assert served.std(axis=0).max() > 1e-4  # texts score differently: a mix-up between requests would show


def test_perspective_request_and_response_shape(server, direct):
    # the request and response of the Perspective API's published documentation (comments:analyze)
    text = "you idiot number 3, stop it stop it"
    status, body = server.call(
        "/v1alpha1/comments:analyze",
        {"comment": {"text": text}, "languages": ["en"], "requestedAttributes": {"TOXICITY": {}}},
    )
    assert status == 200
    value = body["attributeScores"]["TOXICITY"]["summaryScore"]["value"]
    assert body == {
        "attributeScores": {
            "TOXICITY": {
                "spanScores": [
                    {"begin": 0, "end": len(text), "score": {"value": value, "type": "PROBABILITY"}}
                ],
                "summaryScore": {"value": value, "type": "PROBABILITY"},
            }
        },
        "languages": ["en"],
        "detectedLanguages": ["en"],
    }
    assert value == pytest.approx(float(direct.predict_proba([text])[0, 0]), abs=1e-5)

    every = {name: {} for name in ATTRIBUTES.values()}
    status, body = server.call(
        "/v1alpha1/comments:analyze",
        {"comment": {"text": text}, "requestedAttributes": every, "clientToken": "abc"},
    )
    assert status == 200 and body["clientToken"] == "abc"
    scores = [body["attributeScores"][ATTRIBUTES[tag]]["summaryScore"]["value"] for tag in LABELS]
    np.testing.assert_allclose(scores, direct.predict_proba([text])[0], atol=1e-5)
    status, body = server.call(
        "/v1alpha1/comments:analyze",
        {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {"scoreThreshold": 1.0}}},
    )
    assert (
        status == 200 and body["attributeScores"] == {}
    )  # under its scoreThreshold: left out, as Perspective does


def test_health_info_and_page(server, tuned_checkpoint):
    assert server.call("/health") == (200, "ok")
    status, info = server.call("/info")
    model = info["model"]
    assert status == 200 and model["tags"] == list(LABELS) and model["family"] == "encoder"
    assert model["backend"] == "torch" and model["max_length"] > 0 and model["truncation"] == "head"
    assert model["thresholds"] == pytest.approx(TUNED)
    assert model["backbone"] and len(model["sha256"]) == 64
    import hashlib

    assert model["sha256"] == hashlib.sha256(tuned_checkpoint.read_bytes()).hexdigest()
    assert model["file"] == "best.ckpt"  # the name, not where it lies on the server
    for path in ("/docs", "/redoc", "/openapi.json"):  # off: /docs loads its script from a CDN
        assert server.call(path) == (404, {"error": "Not Found"})
    with urllib.request.urlopen(server.url + "/") as response:
        page = response.read().decode()
    assert '<meta name="viewport"' in page and "<textarea" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere: works offline


@pytest.mark.parametrize(
    "body, status, says",
    [
        (b'{"texts": ["unterminated', 400, "not valid JSON"),
        (b"", 400, "empty body"),
        ({"text": ["singular key"]}, 400, "texts: Field required"),
        ({"texts": "not a list"}, 400, "texts: Input should be a valid list"),
        ({"texts": []}, 400, "at least 1 item"),
        ({"texts": ["ok", 3]}, 400, "texts.1: Input should be a valid string"),
        ({"texts": [None]}, 400, "texts.0"),
        ([1, 2], 400, "valid dictionary"),
        ({"texts": ["ok"], "threshold": "high"}, 400, "threshold"),
        ({"texts": ["ok"], "threshold": 1.5}, 400, "between 0 and 1"),
        ({"texts": ["ok"], "threshold": True}, 400, "threshold"),
        ({"texts": ["ok"] * 9}, 413, "9 texts in one request, over the limit of 8 (--max-texts)"),
        ({"texts": ["x" * 301]}, 413, "texts[0] has 301 characters, over the limit of 300 (--max-chars)"),
        (
            {"texts": ["\u00e9" * 290] * 8},
            413,
            "over 4000 bytes (--max-body-bytes)",
        ),  # 6 bytes a character in JSON
        (b'{"texts": ["ok"], "texts": ["you idiot"]}', 400, 'key "texts" given twice'),
        pytest.param(
            b'{"texts": ["ok"], "threshold": ' + b"[" * 1000 + b"]" * 1000 + b"}",
            400,
            "nests deeper than 32 levels",
            id="nested-1000-deep",
        ),
        ({"texts": ["ok", "\ud800"]}, 400, "lone surrogate ('\\ud800')"),
    ],
)
def test_bad_predict_requests_get_one_line_4xx(server, body, status, says):
    answer = server.call("/predict", body, {"content-type": "application/json"})
    assert answer[0] == status and says in answer[1]["error"], answer
    assert (
        set(answer[1]) == {"error"}
        and "\n" not in answer[1]["error"]
        and "Traceback" not in answer[1]["error"]
    )


ANALYZE = "/v1alpha1/comments:analyze"
PERSPECTIVE_ERROR = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"


@pytest.mark.parametrize(
    "body, error_type, says",
    [
        # Perspective's error types and messages (conversationai/perspectiveapi, 2-api/limits.md)
        (b"", "COMMENT_EMPTY", "Comment must be non-empty."),
        ({"comment": {"text": ""}, "requestedAttributes": {"TOXICITY": {}}}, "COMMENT_EMPTY", "non-empty"),
        (
            {"comment": {"text": "x" * 301}, "requestedAttributes": {"TOXICITY": {}}},
            "COMMENT_TOO_LONG",
            "Comment text too long: comment.text has 301 characters, over the limit of 300",
        ),
        ({"comment": {"text": "hi"}}, "NO_REQUESTED_ATTRIBUTES", "Missing requested_attributes; ask for"),
        (
            {"comment": {"text": "hi"}, "languages": ["fr"], "requestedAttributes": {"INSULT": {}}},
            "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
            "Attribute INSULT does not support request languages: fr",
        ),
        (
            {"comment": {"text": "hi"}, "requestedAttributes": {"SPAM": {}, "TOXICITY": {}}},
            "INVALID_REQUEST",
            "Unknown requested attribute: SPAM (this model has TOXICITY, SEVERE_TOXICITY, PROFANITY",
        ),
        ({"comment": {}, "requestedAttributes": {"TOXICITY": {}}}, "INVALID_REQUEST", "comment.text: Field"),
        (
            {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {"scoreType": "RAW"}}},
            None,
            "scoreType",
        ),
        (
            {"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}, "clientToken": "\udc00"},
            None,
            "lone surrogate",
        ),
        ({"comment": {"text": "hi"}, "requestedAttributes": {"\ud83d": {}}}, None, "lone surrogate"),
        (
            b'{"comment": {"text": "hi"}, "comment": {"text": "ho"}, "requestedAttributes": {}}',
            None,
            'key "comment" given twice',
        ),
        (
            {
                "comment": {"text": "hi"},
                "requestedAttributes": {"TOXICITY": {}},
                "languages": json.loads("[" * 40 + '"en"' + "]" * 40),
            },
            None,
            "nests deeper than 32 levels",
        ),
    ],
)
def test_bad_perspective_requests_get_googles_error_object(server, body, error_type, says):
    status, answer = server.call(ANALYZE, body)
    assert status == 400 and set(answer) == {"error"}, answer
    error = answer["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert says in error["message"] and "\n" not in error["message"]
    detail = {"@type": PERSPECTIVE_ERROR, "errorType": error_type or "INVALID_REQUEST"}
    if error_type == "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE":
        detail["attribute"] = "INSULT"
    assert error["details"] == [detail]


def test_other_routes_and_suggestscore(server):
    assert server.call("/nowhere") == (404, {"error": "Not Found"})
    assert server.call("/predict")[0] == 405  # GET
    assert server.call("/v1alpha1/comments:nothing", {}) == (
        404,
        {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}},
    )
    status, answer = server.call("/v1alpha1/comments:suggestscore", {"comment": {"text": "hi"}})
    assert status == 404 and "off on this server" in answer["error"]["message"]  # no --feedback-db
    status, answer = server.call("/$discovery/rest?version=v1")
    assert status == 404 and answer["error"]["status"] == "NOT_FOUND"
    assert server.call("/health") == (200, "ok")  # still up


# ------------------------------------------------------------------------- no request can fail another
class FailsOnPoison:
    """A classifier that cannot score "poison" (as a text too long for the model could not), and scores "nan"
    as NaN (as a BatchScorer does a text that failed on its own)."""

    tags = ("toxic", "insult")

    def predict_proba(self, texts):
        if "poison" in texts:
            raise RuntimeError("index out of range in self")
        return np.array([[np.nan, np.nan] if text == "nan" else [len(text) / 100, 0.5] for text in texts])


def worker_answers(*requests: list[str]) -> list:
    api = ToxicityAPI("unused", "torch", 1, max_batch_size=8)
    api.classifier = FailsOnPoison()
    scored = api.predict([PredictRequest(texts=texts) for texts in requests])
    return [api.encode_response(one) for one in scored]


def test_a_request_that_cannot_be_scored_fails_alone():
    answers = worker_answers(["hello"], ["ok", "poison"], ["you idiot"], ["fine", "nan"])
    assert answers[0] == Rows([[0.05, 0.5]]) and answers[2] == Rows([[0.09, 0.5]])
    assert answers[1] == Failed(500, "scoring this request failed; see the server log")
    assert answers[3] == Failed(500, "texts[1] could not be scored; see the server log")
    assert worker_answers(["a"], ["bb"]) == [Rows([[0.01, 0.5]]), Rows([[0.02, 0.5]])]


def test_the_http_process_answers_a_failed_request_with_its_status():
    class Workers:
        async def submit(self, request):
            return Failed(500, "scoring this request failed; see the server log")

    with pytest.raises(Refused, match="scoring this request failed") as refusal:
        asyncio.run(score(Workers(), PredictRequest(texts=["poison"])))
    assert refusal.value.status == 500


# ------------------------------------------------------------------------------- connections and time
def raw_exchange(server: Server, data: bytes, wait: float = 10) -> bytes:
    """Sends `data` as is on a fresh connection; what came back until the server closed it or `wait` ran
    out."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        answer += b"<still open>"
    return answer


def refusal(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_slow_idle_and_oversized_requests_are_cut_off(server):
    started = time.monotonic()
    status, body = refusal(raw_exchange(server, b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-slow: "))
    assert status == 408 and "took over 2 s (--read-timeout)" in body["error"]
    assert time.monotonic() - started < 5
    assert refusal(raw_exchange(server, b""))[0] == 408  # connected, sent nothing
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as kept_alive:
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        first = b""
        while not first.endswith(b"\r\n\r\nok"):
            first += kept_alive.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        kept_alive.sendall(
            b"GET /health HTTP/1.1\r\nhost: localhost\r\n"
        )  # the next request's headers never end
        started = time.monotonic()
        assert refusal(read_until_closed(kept_alive))[0] == 408
        assert time.monotonic() - started < 4  # not the keep-alive timeout (5 s), which closes without a word

    pipelined = b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n" + b"GET /health HTTP/1.1\r\nhost: x\r\n"
    started = time.monotonic()  # the second head begun before the first answer ends: read after it
    answer = raw_exchange(server, pipelined)
    assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in answer
    assert time.monotonic() - started < 4
    status, body = refusal(
        raw_exchange(server, b"POST /predict HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{")
    )
    assert status == 408 and body == {"error": "the body took over 2 s to arrive (--read-timeout)"}

    status, body = refusal(
        raw_exchange(server, b"GET /health HTTP/1.1\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n")
    )
    assert status == 400 and "over 16384 bytes (--max-header-bytes)" in body["error"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:  # a whole head in one send
        head = b"GET /info HTTP/1.1\r\nhost: localhost\r\nx-big: " + b"a" * 64_000 + b"\r\n\r\n"
        sock.sendall(head)
        status, body = refusal(read_until_closed(sock))
    assert status == 431 and "over 16384 bytes (--max-header-bytes)" in body["error"]
    started = time.monotonic()
    status, body = refusal(
        raw_exchange(
            server, b"POST /predict HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10000000000\r\n\r\n"
        )
    )
    assert status == 413 and "10000000000 bytes, over 4000 bytes (--max-body-bytes)" in body["error"]
    assert time.monotonic() - started < 1  # at once, not when the body is read
    assert server.call("/health") == (200, "ok")


# -------------------------------------------------------------------------------------------- exposure
def test_an_open_host_needs_a_key_or_allow_open_and_its_names(tiny_checkpoint, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tiny_checkpoint), "--host", "0.0.0.0"])
    assert "--host 0.0.0.0 serves every network" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tiny_checkpoint), "--host", "0.0.0.0", "--allow-open"])
    assert "name the hosts clients reach this server by with --allowed-hosts" in capsys.readouterr().err
    open_with_feedback = [
        "--host",
        "0.0.0.0",
        "--allow-open",
        "--allowed-hosts",
        "*",
        "--feedback-db",
        "f.db",
    ]
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tiny_checkpoint), *open_with_feedback])
    assert "would store as training rows what anyone on the network sends" in capsys.readouterr().err
    monkeypatch.setenv("SHORT_SECRET", "short")
    with pytest.raises(SystemExit):
        main(
            [
                "--ckpt",
                str(tiny_checkpoint),
                "--feedback-db",
                "f.db",
                "--feedback-hash-comments",
                "SHORT_SECRET",
            ]
        )
    assert "SHORT_SECRET must hold a secret of 16 characters or more" in capsys.readouterr().err
    assert banner(parse_args(["--ckpt", "x", "--host", "::", "--allow-open", "--port", "8080"])).startswith(
        "listening on [::]:8080 (every network of this machine; open http://127.0.0.1:8080/ here), "
        "no API key, feedback off"
    )


@pytest.mark.slow
def test_api_key_guards_every_route_but_health_and_the_page(tiny_checkpoint, tmp_path, capsys):
    from toxicity.exporters.onnx import export_onnx

    export_onnx(tiny_checkpoint, tmp_path / "onnx", int8=True)
    keyed = Server(
        "--onnx",
        str(tmp_path / "onnx"),
        "--int8",
        "--api-key-env",
        "TEST_SERVE_KEY",
        "--log-level",
        "info",
        "--max-connections",
        "3",
        env={"TEST_SERVE_KEY": "s3cret"},
    )
    try:
        body = {"texts": ["you idiot", "thanks"]}
        assert keyed.call("/predict", body)[0] == 401
        assert keyed.call("/predict", body, {"x-api-key": "wrong"})[0] == 401
        assert keyed.call("/info")[0] == 401
        assert "API key" in keyed.call("/predict", body)[1]["error"]
        assert keyed.call("/health")[0] == 200 and keyed.call("/")[0] == 200
        status, answer = keyed.call("/predict", body, {"x-api-key": "s3cret"})
        assert status == 200 and len(answer["probabilities"]) == 2
        status, info = keyed.call("/info?key=s3cret")
        assert (
            status == 200
            and info["model"]["backend"] == "onnx-int8"
            and info["model"]["tags"] == list(LABELS)
        )
        from toxicity.inference.onnx import OnnxToxicityClassifier

        # what the int8 model itself gives (its distance to PyTorch is the export's check, not the server's)
        direct = OnnxToxicityClassifier.from_folder(tmp_path / "onnx", int8=True).predict_proba(body["texts"])
        np.testing.assert_allclose([list(row.values()) for row in answer["probabilities"]], direct, atol=1e-6)
        assert info["model"]["file"].endswith(".onnx") and "/" not in info["model"]["file"]
        check_perspective_key(keyed, "s3cret")
        check_google_api_client(keyed, "s3cret", answer["probabilities"][0]["toxic"])

        with (
            socket.create_connection(("127.0.0.1", keyed.port)),
            socket.create_connection(("127.0.0.1", keyed.port)),
        ):
            time.sleep(0.5)
            assert keyed.call("/health")[0] == 503  # over --max-connections 3
        assert keyed.call("/health")[0] == 200
    finally:
        keyed.stop()
    assert "/info?key=[redacted]" in keyed.output() and "s3cret" not in keyed.output()

    with pytest.raises(SystemExit):
        main(["--onnx", str(tmp_path / "onnx"), "--api-key-env", "TEST_SERVE_KEY_UNSET"])
    assert "TEST_SERVE_KEY_UNSET is empty or not set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tiny_checkpoint), "--int8"])
    assert "--int8 goes with --onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tmp_path / "absent.ckpt")])
    assert "checkpoint not found" in capsys.readouterr().err


def check_perspective_key(keyed: Server, key: str):
    """Perspective's answers to a missing and a wrong key, and PyPerspective's key check: an empty POST whose
    `error.details[0].reason` is API_KEY_INVALID for a missing or wrong key, and has no reason for a right
    one (Google's 403 has no details; ours adds one, or PyPerspective fails with a KeyError)."""
    assert keyed.call(ANALYZE, {}) == (
        403,
        {
            "error": {
                "code": 403,
                "message": "The request is missing a valid API key.",
                "status": "PERMISSION_DENIED",
                "details": [invalid_key_detail()],
            }
        },
    )
    for wrong in ("wrong", ""):  # requests sends key="" as ?key=
        status, answer = keyed.call(f"{ANALYZE}?key={wrong}", b"")
        assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
        assert answer["error"]["message"] == "API key not valid. Please pass a valid API key."
        assert answer["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, answer = keyed.call(f"{ANALYZE}?key={key}", b"")
    assert status == 400 and "reason" not in answer["error"]["details"][0]
    assert answer["error"]["details"][0]["errorType"] == "COMMENT_EMPTY"


def check_google_api_client(keyed: Server, key: str, toxic: float):
    """Google's own client, built from our discovery document (open without the key, as Google's is)."""
    from googleapiclient import discovery
    from googleapiclient.errors import HttpError

    url = keyed.url + "/$discovery/rest?version=v1alpha1"
    status, document = keyed.call("/$discovery/rest?version=v1alpha1")
    assert status == 200 and document["rootUrl"] == keyed.url + "/"
    client = discovery.build(
        "commentanalyzer", "v1alpha1", developerKey=key, discoveryServiceUrl=url, static_discovery=False
    )
    body = {"comment": {"text": "you idiot"}, "requestedAttributes": {"TOXICITY": {}}, "clientToken": "t"}
    response = client.comments().analyze(body=body).execute()
    assert response["clientToken"] == "t"
    assert response["attributeScores"]["TOXICITY"]["summaryScore"]["value"] == pytest.approx(toxic, abs=1e-5)
    with pytest.raises(HttpError) as refusal:  # the feedback route is off without --feedback-db
        client.comments().suggestscore(body={"comment": {"text": "you idiot"}}).execute()
    assert refusal.value.resp.status == 404 and "--feedback-db" in refusal.value.reason


# ---------------------------------------------------------------------------------------------- stopping
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signum", [15, 2], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_after_the_requests_in_flight(legacy_checkpoint, signum):
    server = Server("--ckpt", str(legacy_checkpoint))
    try:
        processes = descendants(server.process.pid) | {server.process.pid}
        assert len(processes) >= 4  # the server, its queue manager, an inference worker, an HTTP process
        body = json.dumps({"texts": ["you idiot"]}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as in_flight:
            in_flight.sendall(
                b"POST /predict HTTP/1.1\r\nhost: localhost\r\ncontent-length: %d\r\n\r\n" % len(body)
                + body[:5]
            )
            time.sleep(0.5)
            os.kill(server.process.pid, signum)  # the server's pid only, as systemd, Docker and Kubernetes do
            started = time.monotonic()
            time.sleep(1)
            in_flight.sendall(body[5:])
            answer = read_until_closed(in_flight)  # closed after the answer: the server is stopping
        assert answer.startswith(b"HTTP/1.1 200") and b'"probabilities"' in answer
        assert wait_until_stopped(processes, 10) == set(), server.output()[-3000:]
        assert time.monotonic() - started < 10 and port_is_free(server.port)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_the_processes_die_with_a_killed_server(legacy_checkpoint):
    server = Server("--ckpt", str(legacy_checkpoint))
    try:
        processes = descendants(server.process.pid)
        assert len(processes) >= 3
        os.kill(server.process.pid, 9)
        assert wait_until_stopped(processes, 5) == set()
        # a child started after the listing above (the sentence splitter) may hold the socket a moment longer
        deadline = time.monotonic() + 5
        while not port_is_free(server.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_is_free(server.port)
    finally:
        server.stop()


@pytest.mark.slow
def test_a_model_with_other_tags_serves_them(tmp_path):
    from tests.helpers import fit_args, make_comments
    from toxicity.fit import main as fit

    data = tmp_path / "comments.csv"
    make_comments().rename(columns={"threat": "menace"}).to_csv(data, index=False)
    fit(fit_args(tmp_path, data, "--data.label_columns", "[insult, menace]", "--trainer.max_epochs", "1"))
    other = Server("--ckpt", str(tmp_path / "checkpoints" / "best-checkpoint.ckpt"))
    try:
        status, body = other.call("/predict", {"texts": ["you idiot"]})
        assert status == 200 and list(body["probabilities"][0]) == ["insult", "menace"]
        status, body = other.call(
            "/v1alpha1/comments:analyze",
            {"comment": {"text": "you idiot"}, "requestedAttributes": {"INSULT": {}, "MENACE": {}}},
        )
        assert status == 200 and set(body["attributeScores"]) == {"INSULT", "MENACE"}
        status, body = other.call(
            "/v1alpha1/comments:analyze",
            {"comment": {"text": "you idiot"}, "requestedAttributes": {"TOXICITY": {}}},
        )
        assert status == 400
        assert body["error"]["message"] == (
            "Unknown requested attribute: TOXICITY (this model has INSULT, MENACE; "
            "or send dropUnsupportedAttributes: true to leave it out)"
        )
    finally:
        other.stop()


# ------------------------------------------------------------------------------------- the page, in Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)")
def test_page_in_headless_chromium(server, direct, tmp_path):
    with Browser(CHROMIUM, tmp_path) as browser:
        browser.open(server.url + "/")
        browser.wait_for("document.body.dataset.state === 'ready'")
        rows = browser.evaluate("[...document.querySelectorAll('[data-tag]')].map(r => r.dataset.tag)")
        assert rows == list(LABELS)
        marks = browser.evaluate(
            "[...document.querySelectorAll('.mark')].map(m => parseFloat(m.style.left.slice(5)))"
        )
        assert marks == pytest.approx([100 * TUNED[tag] for tag in LABELS])  # the tuned thresholds marked

        for comment in ("you idiot number 3, stop it stop it", "thanks for edit number 7 on the article"):
            browser.evaluate(
                "document.getElementById('text').focus(), document.getElementById('text').select()"
            )  # typing replaces the last comment
            requests_before = int(browser.evaluate("document.body.dataset.requests || 0"))
            for character in comment:  # typed key by key, faster than the debounce
                browser.type(character)
            browser.wait_for(f"document.body.dataset.scored === {json.dumps(comment)}")
            assert int(browser.evaluate("document.body.dataset.requests")) - requests_before <= 2  # debounced
            shown = browser.evaluate(
                "[...document.querySelectorAll('[data-tag]')].map(r => parseFloat(r.dataset.probability))"
            )
            np.testing.assert_allclose(shown, direct.predict_proba([comment])[0], atol=1e-5)
            widths = browser.evaluate(
                "[...document.querySelectorAll('.fill')].map(f => 100 * "
                "f.getBoundingClientRect().width / f.parentNode.getBoundingClientRect().width)"
            )
            assert widths == pytest.approx([100 * p for p in shown], abs=0.6)  # the bars as drawn
            over = browser.evaluate(
                "[...document.querySelectorAll('[data-tag]')].map(r => r.classList.contains('over'))"
            )
            assert over == [p >= TUNED[tag] for p, tag in zip(shown, LABELS)]  # red at or over the threshold

        png = browser.screenshot()
    path = tmp_path / "page.png"
    path.write_bytes(png)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


# ----------------------------------------------------------------------------- word attributions (issue 30)
def test_predict_explains_the_words_only_when_asked(server, direct):
    texts = TEXTS[:2]
    status, body = server.call("/predict", {"texts": texts, "explain": True})
    assert status == 200 and set(body) == {"probabilities", "explanations"}
    for text, served, probs in zip(texts, body["explanations"], body["probabilities"]):
        (expected,) = direct.explain(text)
        words = served["words"]
        assert [text[w["start"] : w["end"]] for w in words] == [w["word"] for w in words]
        assert [w["word"] for w in words] == [w.word for w in expected.words]
        assert list(served["tags"]) == list(LABELS)
        for tag in LABELS:
            assert served["tags"][tag]["score"] == pytest.approx(probs[tag], abs=1e-5)
            np.testing.assert_allclose(
                served["tags"][tag]["attributions"], expected.attributions[tag], atol=1e-4
            )
    for unasked in ({"texts": texts}, {"texts": texts, "explain": False}):
        status, body = server.call("/predict", unasked)
        assert status == 200 and set(body) == {"probabilities"}


def test_explain_requests_are_validated_and_capped(server):
    status, body = server.call("/predict", {"texts": ["ok"], "explain": "yes"})
    assert status == 400 and body["error"].startswith("explain: ") and '"explain": true' in body["error"]
    status, body = server.call("/predict", {"texts": [None], "explain": True})
    assert status == 400 and body["error"].startswith("texts.0: ")
    status, body = server.call("/predict", {"texts": ["ok"] * 3, "explain": True})
    assert status == 413 and "3 texts to explain in one request, over the limit of 2" in body["error"]
    assert server.call("/predict", {"texts": ["ok"] * 3})[0] == 200  # the cap is on explaining only
    with pytest.raises(Refused) as refusal:
        parse_body(
            json.dumps({"texts": ["a", "b", "c"], "explain": True}).encode(),
            PredictRequest,
            Limits(max_explained=2),
        )
    assert refusal.value.status == 413 and "3 texts to explain in one request, over the limit of 2" in str(
        refusal.value
    )
    parse_body(
        json.dumps({"texts": ["a", "b", "c"]}).encode(), PredictRequest, Limits(max_explained=2)
    )  # no cap
    with pytest.raises(Refused) as refusal:
        parse_body(b'{"texts": ["a"], "explain": true}', PredictRequest, Limits(explainable=False))
    assert refusal.value.status == 400 and "--ckpt" in str(refusal.value)


@pytest.fixture(scope="module")
def insult_direction_server(tmp_path_factory):
    """A server on the pretrained MiniLM whose head points from neutral to insulting sentences."""
    path = save_as_checkpoint(
        insult_direction_model(list(LABELS)), tmp_path_factory.mktemp("direction") / "m.ckpt"
    )
    running = Server("--ckpt", str(path), "--max-batch-size", "1")
    yield running
    running.stop()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)")
def test_page_highlights_the_words_of_the_tag_pointed_at(insult_direction_server, tmp_path):
    comment = "thanks for the table, you idiot"
    with Browser(CHROMIUM, tmp_path) as browser:
        browser.open(insult_direction_server.url + "/")
        browser.wait_for("document.body.dataset.state === 'ready'")
        browser.evaluate("document.getElementById('text').focus()")
        browser.type(comment)
        browser.wait_for(f"document.body.dataset.explained === {json.dumps(comment)}", timeout=60)
        for tag in ("insult", "toxic"):
            browser.hover(f"[data-tag={tag}]")
            browser.wait_for(f"document.body.dataset.highlighted === '{tag}'")
            words = browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#why .w')]"
                ".map(w => [w.textContent, w.classList.contains('hl')]))"
            )
            assert words["idiot"] is True and words["table"] is False and words["thanks"] is False, words
            shown = browser.evaluate("document.getElementById('why').textContent")
            assert shown == comment  # the comment as typed, nothing lost between the words
        png = browser.screenshot()
    (tmp_path / "page.png").write_bytes(png)
