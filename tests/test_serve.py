"""`python -m toxicity.serve`: each route through a real server process, refusals, the API key, batching,
and the page driven in a real headless Chromium."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from chromium import Browser

from toxicity.checkpoint import thresholds_path
from toxicity.classifier import ToxicityClassifier
from toxicity.labels import LABELS
from toxicity.serve import ATTRIBUTES, main
from toxicity.thresholds import save_thresholds

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["you idiot number 3, stop it stop it", "thanks for edit number 7 on the article", "", "ok",
         "I will find you", "a much longer comment that keeps going " * 4, "you idiot", "thanks"]
TUNED = dict(zip(LABELS, [0.3, 0.6, 0.5, 0.2, 0.4, 0.7]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m toxicity.serve ...` in a subprocess on a free port, stopped at the end."""

    def __init__(self, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen([sys.executable, "-m", "toxicity.serve", *args, "--port", str(self.port)],
                                        cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + 120
        while self.status("/health") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.log.seek(0)
                raise RuntimeError(f"server did not start:\n{self.log.read().decode()[-3000:]}")
            time.sleep(0.3)

    def status(self, path: str) -> int | None:
        try:
            return self.call(path)[0]
        except OSError:
            return None

    def call(self, path: str, body=None, headers: dict | None = None) -> tuple[int, dict | str]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)  # the server and the workers it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


@pytest.fixture(scope="module")
def tuned_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A copy of the tiny checkpoint with tuned thresholds beside it."""
    path = tmp_path_factory.mktemp("tuned") / "best.ckpt"
    shutil.copy(tiny_checkpoint, path)
    save_thresholds(thresholds_path(path), TUNED)
    return path


@pytest.fixture(scope="module")
def server(tuned_checkpoint):
    running = Server("--ckpt", str(tuned_checkpoint), "--max-batch-size", "8", "--batch-timeout", "0.05",
                     "--max-texts", "8", "--max-chars", "300", "--max-body-bytes", "4000")
    yield running
    running.stop()


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
    texts = TEXTS * 4
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
    status, body = server.call("/v1alpha1/comments:analyze",
                               {"comment": {"text": text}, "languages": ["en"], "requestedAttributes": {"TOXICITY": {}}})
    assert status == 200
    value = body["attributeScores"]["TOXICITY"]["summaryScore"]["value"]
    assert body == {"attributeScores": {"TOXICITY": {
        "spanScores": [{"begin": 0, "end": len(text), "score": {"value": value, "type": "PROBABILITY"}}],
        "summaryScore": {"value": value, "type": "PROBABILITY"}}}, "languages": ["en"], "detectedLanguages": ["en"]}
    assert value == pytest.approx(float(direct.predict_proba([text])[0, 0]), abs=1e-5)

    every = {name: {} for name in ATTRIBUTES.values()}
    status, body = server.call("/v1alpha1/comments:analyze", {"comment": {"text": text}, "requestedAttributes": every,
                                                             "clientToken": "abc"})
    assert status == 200 and body["clientToken"] == "abc"
    scores = [body["attributeScores"][ATTRIBUTES[tag]]["summaryScore"]["value"] for tag in LABELS]
    np.testing.assert_allclose(scores, direct.predict_proba([text])[0], atol=1e-5)
    status, body = server.call("/v1alpha1/comments:analyze", {"comment": {"text": text}, "requestedAttributes": {
        "TOXICITY": {"scoreThreshold": 1.0}}})
    assert status == 200 and body["attributeScores"] == {}  # under its scoreThreshold: left out, as Perspective does


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
    with urllib.request.urlopen(server.url + "/") as response:
        page = response.read().decode()
    assert '<meta name="viewport"' in page and "<textarea" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere: works offline


@pytest.mark.parametrize("body, status, says", [
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
    ({"texts": ["\u00e9" * 290] * 8}, 413, "over 4000 bytes (--max-body-bytes)"),  # 6 bytes a character in JSON
])
def test_bad_predict_requests_get_one_line_4xx(server, body, status, says):
    answer = server.call("/predict", body, {"content-type": "application/json"})
    assert answer[0] == status and says in answer[1]["error"], answer
    assert set(answer[1]) == {"error"} and "\n" not in answer[1]["error"] and "Traceback" not in answer[1]["error"]


def test_bad_perspective_requests_and_other_routes(server):
    for body, says in [({"comment": {"text": "hi"}}, "requestedAttributes is empty; ask for at least one of TOXICITY"),
                       ({"comment": {"text": "hi"}, "requestedAttributes": {"SPAM": {}, "TOXICITY": {}}},
                        "no attribute SPAM; it has TOXICITY, SEVERE_TOXICITY, PROFANITY, THREAT, INSULT, IDENTITY_ATTACK"),
                       ({"comment": {"text": "hi"}, "languages": ["fr"], "requestedAttributes": {"TOXICITY": {}}},
                        "English only"),
                       ({"comment": {}, "requestedAttributes": {"TOXICITY": {}}}, "comment.text: Field required"),
                       ({"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {"scoreType": "RAW"}}},
                        "scoreType")]:
        status, answer = server.call("/v1alpha1/comments:analyze", body)
        assert status == 400 and says in answer["error"], answer
    status, answer = server.call("/v1alpha1/comments:analyze",
                                 {"comment": {"text": "x" * 301}, "requestedAttributes": {"TOXICITY": {}}})
    assert status == 413 and "comment.text has 301 characters" in answer["error"]
    assert server.call("/nowhere") == (404, {"error": "Not Found"})
    assert server.call("/predict")[0] == 405  # GET
    assert server.call("/health") == (200, "ok")  # still up


def test_api_key_guards_every_route_but_health_and_the_page(tiny_checkpoint, tmp_path, capsys):
    from toxicity.export import export_onnx

    export_onnx(tiny_checkpoint, tmp_path / "onnx", int8=True)
    keyed = Server("--onnx", str(tmp_path / "onnx"), "--int8", "--api-key-env", "TEST_SERVE_KEY",
                   env={"TEST_SERVE_KEY": "s3cret"})
    try:
        body = {"texts": ["you idiot", "thanks"]}
        assert keyed.call("/predict", body)[0] == 401
        assert keyed.call("/predict", body, {"x-api-key": "wrong"})[0] == 401
        assert keyed.call("/info")[0] == 401
        assert keyed.call("/v1alpha1/comments:analyze", {})[0] == 401
        assert "API key" in keyed.call("/predict", body)[1]["error"]
        assert keyed.call("/health")[0] == 200 and keyed.call("/")[0] == 200
        status, answer = keyed.call("/predict", body, {"x-api-key": "s3cret"})
        assert status == 200 and len(answer["probabilities"]) == 2
        status, info = keyed.call("/info?key=s3cret")
        assert status == 200 and info["model"]["backend"] == "onnx-int8" and info["model"]["tags"] == list(LABELS)
        direct = ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu").predict_proba(body["texts"])
        np.testing.assert_allclose([list(row.values()) for row in answer["probabilities"]], direct, atol=0.05)
    finally:
        keyed.stop()

    with pytest.raises(SystemExit):
        main(["--onnx", str(tmp_path / "onnx"), "--api-key-env", "TEST_SERVE_KEY_UNSET"])
    assert "TEST_SERVE_KEY_UNSET is empty or not set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tiny_checkpoint), "--int8"])
    assert "--int8 goes with --onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ckpt", str(tmp_path / "absent.ckpt")])
    assert "checkpoint not found" in capsys.readouterr().err


def test_a_model_with_other_tags_serves_them(tmp_path):
    from conftest import fit_args, make_comments

    from toxicity.fit import main as fit

    data = tmp_path / "comments.csv"
    make_comments().rename(columns={"threat": "menace"}).to_csv(data, index=False)
    fit(fit_args(tmp_path, data, "--data.label_columns", "[insult, menace]", "--trainer.max_epochs", "1"))
    other = Server("--ckpt", str(tmp_path / "checkpoints" / "best-checkpoint.ckpt"))
    try:
        status, body = other.call("/predict", {"texts": ["you idiot"]})
        assert status == 200 and list(body["probabilities"][0]) == ["insult", "menace"]
        status, body = other.call("/v1alpha1/comments:analyze", {"comment": {"text": "you idiot"},
                                                                 "requestedAttributes": {"INSULT": {}, "MENACE": {}}})
        assert status == 200 and set(body["attributeScores"]) == {"INSULT", "MENACE"}
        status, body = other.call("/v1alpha1/comments:analyze", {"comment": {"text": "you idiot"},
                                                                 "requestedAttributes": {"TOXICITY": {}}})
        assert status == 400 and body["error"] == "this model has no attribute TOXICITY; it has INSULT, MENACE"
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
        marks = browser.evaluate("[...document.querySelectorAll('.mark')].map(m => parseFloat(m.style.left.slice(5)))")
        assert marks == pytest.approx([100 * TUNED[tag] for tag in LABELS])  # the tuned thresholds marked

        for comment in ("you idiot number 3, stop it stop it", "thanks for edit number 7 on the article"):
            browser.evaluate("document.getElementById('text').focus(), document.getElementById('text').select()")  # typing replaces the last comment
            requests_before = int(browser.evaluate("document.body.dataset.requests || 0"))
            for character in comment:  # typed key by key, faster than the debounce
                browser.type(character)
            browser.wait_for(f"document.body.dataset.scored === {json.dumps(comment)}")
            assert int(browser.evaluate("document.body.dataset.requests")) - requests_before <= 2  # debounced
            shown = browser.evaluate("[...document.querySelectorAll('[data-tag]')]"
                                     ".map(r => parseFloat(r.dataset.probability))")
            np.testing.assert_allclose(shown, direct.predict_proba([comment])[0], atol=1e-5)
            widths = browser.evaluate("[...document.querySelectorAll('.fill')].map(f => 100 * "
                                      "f.getBoundingClientRect().width / f.parentNode.getBoundingClientRect().width)")
            assert widths == pytest.approx([100 * p for p in shown], abs=0.6)  # the bars as drawn
            over = browser.evaluate("[...document.querySelectorAll('[data-tag]')].map(r => r.classList.contains('over'))")
            assert over == [p >= TUNED[tag] for p, tag in zip(shown, LABELS)]  # red at or over the threshold

        png = browser.screenshot()
    path = tmp_path / "page.png"
    path.write_bytes(png)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
