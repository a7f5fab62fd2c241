"""`python -m toxicity.serve`: a trained tagger behind HTTP, on LitServe.

    python -m toxicity.serve --ckpt checkpoints/best-checkpoint.ckpt          # http://127.0.0.1:8000
    python -m toxicity.serve --onnx exported/ --int8 --port 8080 --api-key-env TOXICITY_API_KEY

Routes:
    POST /predict                       {"texts": [...], "threshold": 0.5 | "tuned" (optional)}
    POST /v1alpha1/comments:analyze     the Perspective API's request and response shape
    GET  /health                        "ok" once every worker has loaded its model (no key needed)
    GET  /info                          {"model": tags, backbone, max_length, thresholds, sha256, ...}
    GET  /                              the try-it page (toxicity/static/index.html; no key needed)

Each inference worker (--workers) loads the classifier once, in `setup`. LitServe gathers requests that
arrive together (up to --max-batch-size, waiting at most --batch-timeout seconds) into one `predict`
call, which scores all their texts in one `predict_proba`.

Bad requests are refused in the HTTP process, before they reach a worker, and a batch that fails in a
worker is scored again one request at a time, so that no request can fail another. Every refusal is one
JSON line, {"error": "..."}. Texts over --max-chars characters are refused (413); shorter ones are scored
on their first max_length tokens, as everywhere in this package.

SIGTERM or SIGINT stops the server: it stops accepting, lets requests in flight finish (up to
--shutdown-timeout seconds), then stops its workers. Every process it starts dies with it, even by SIGKILL.
"""

import argparse
import asyncio
import copy
import ctypes
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import h11
import litserve as ls
import numpy as np
import uvicorn.config
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from litserve.server import RegularRequestHandler
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from toxicity.checkpoint import ENCODER, TrainedCheckpoint
from toxicity.classifier import (
    OnnxToxicityClassifier,
    ToxicityClassifier,
    checked_threshold,
    read_onnx_folder,
)
from toxicity.cli import fail, run_tool

log = logging.getLogger(__name__)

PERSPECTIVE_PATH = "/v1alpha1/comments:analyze"
OPEN_PATHS = {"/", "/health"}  # reachable without the API key
# Perspective attribute names of the Jigsaw tags; a model's other tags are offered under their upper-cased name
ATTRIBUTES = {"toxic": "TOXICITY", "severe_toxic": "SEVERE_TOXICITY", "obscene": "PROFANITY", "threat": "THREAT",
              "insult": "INSULT", "identity_hate": "IDENTITY_ATTACK"}
PREDICT_USAGE = 'send JSON like {"texts": ["a comment"], "threshold": 0.5 or "tuned" (optional)}'
ANALYZE_USAGE = 'send JSON like {"comment": {"text": "a comment"}, "requestedAttributes": {"TOXICITY": {}}}'


class Refused(Exception):
    """A request refused with `status` and a one-line reason (raised in the HTTP process only)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Limits(NamedTuple):
    max_texts: int = 64
    max_chars: int = 5000
    tuned: bool = False  # whether the model has tuned thresholds


# ------------------------------------------------------------------------------------------ requests
MAX_JSON_DEPTH = 32  # the deepest request shape is 4 levels; deep nesting only costs recursion


def read_json(raw: bytes, usage: str):
    """The body as JSON, refusing what json.loads lets through: duplicate keys (silently last-wins), deep
    nesting (a RecursionError later) and lone surrogates (a UnicodeEncodeError when written back)."""
    if not raw.strip():
        raise Refused(400, f"empty body; {usage}")
    try:
        data = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
    except RecursionError:
        raise Refused(400, f"body nests deeper than {MAX_JSON_DEPTH} levels; {usage}") from None
    except ValueError as error:  # invalid JSON or UTF-8, or a duplicate key
        raise Refused(400, f"body is not valid JSON ({error}); {usage}") from None
    _check_shape(data, usage)
    return data


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        repeated = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"key {json.dumps(repeated)} given twice")
    return dict(pairs)


def _check_shape(data, usage: str) -> None:
    """Depth and lone surrogates, walked without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Refused(400, f"body nests deeper than {MAX_JSON_DEPTH} levels; {usage}")
        if isinstance(value, dict):
            for key in value:
                _check_text(key, usage)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value, usage)


def _check_text(text: str, usage: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise Refused(400, f"body has a lone surrogate ({text[error.start]!a}), which is not text; "
                               f"send whole UTF-16 pairs; {usage}") from None


def parse_body(raw: bytes, model: type["JsonBody"]) -> "JsonBody":
    try:
        return model.model_validate(read_json(raw, model.usage))
    except ValidationError as error:
        raise Refused(400, validation_message(error.errors(), model.usage)) from None


class JsonBody(BaseModel):
    usage: ClassVar[str] = ""  # what to send, said in refusals


class PredictRequest(JsonBody):
    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = PREDICT_USAGE
    limits: ClassVar[Limits] = Limits()  # set by build_server before the HTTP processes fork

    texts: list[StrictStr] = Field(min_length=1)
    threshold: float | Literal["tuned"] | None = None

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value):
        if value is None:
            return None
        if value == "tuned":
            if not cls.limits.tuned:
                raise Refused(400, "this model has no tuned thresholds (run `python -m toxicity.evaluate` on its "
                                   "validation split); give a number such as 0.5")
            return value
        try:
            return checked_threshold(value)
        except (TypeError, ValueError) as error:
            raise Refused(400, str(error)) from None

    @model_validator(mode="after")
    def _within_limits(self):
        if len(self.texts) > self.limits.max_texts:
            raise Refused(413, f"{len(self.texts)} texts in one request, over the limit of {self.limits.max_texts} "
                               "(--max-texts); send them in several requests")
        for position, text in enumerate(self.texts):
            check_length(text, f"texts[{position}]")
        return self


def check_length(text: str, where: str) -> None:
    limit = PredictRequest.limits.max_chars
    if len(text) > limit:
        raise Refused(413, f"{where} has {len(text)} characters, over the limit of {limit} (--max-chars); "
                           "send a shorter text or split it")


class Comment(BaseModel):
    text: StrictStr


class AttributeRequest(BaseModel):
    scoreType: Literal["PROBABILITY"] = "PROBABILITY"
    scoreThreshold: float | None = Field(None, ge=0, le=1)


class AnalyzeRequest(JsonBody):
    usage: ClassVar[str] = ANALYZE_USAGE

    comment: Comment
    requestedAttributes: dict[str, AttributeRequest] = Field(default_factory=dict)
    languages: list[StrictStr] | None = None
    clientToken: StrictStr | None = None


# ------------------------------------------------------------------------------------------- the model
class ToxicityAPI(ls.LitAPI):
    """Runs in each inference worker: loads the classifier once and scores batches of requests."""

    def __init__(self, source: str, backend: str, threads: int, **options):
        super().__init__(**options)
        self.source, self.backend, self.threads = source, backend, threads

    def setup(self, device):
        import torch

        # the parent stops this worker once its requests are answered; a signal to the whole process group
        # (Ctrl+C, systemd's stop) must not drop the requests it is scoring
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        die_with_parent(multiprocessing.parent_process().pid)
        torch.set_num_threads(self.threads)
        if self.backend == "torch":
            self.classifier = ToxicityClassifier.from_checkpoint(self.source, device="cpu")
        else:
            self.classifier = OnnxToxicityClassifier.from_folder(self.source, int8=self.backend == "onnx-int8",
                                                                 threads=self.threads)

    def decode_request(self, request: PredictRequest):
        return request

    def predict(self, requests):
        batched = isinstance(requests, list)
        requests = requests if batched else [requests]
        try:
            scored = self.score(requests)
        except Exception:
            log.exception("scoring a batch of %d requests failed; scoring them one by one", len(requests))
            scored = [self.score_alone(request) for request in requests]
        return scored if batched else scored[0]

    def score(self, requests: list[PredictRequest]) -> list["Scored"]:
        probs = self.classifier.predict_proba([text for request in requests for text in request.texts])
        ends = np.cumsum([len(request.texts) for request in requests])[:-1]
        return [Scored(part, request.threshold) for part, request in zip(np.split(probs, ends), requests)]

    def score_alone(self, request: PredictRequest) -> "Scored | Failed":
        try:
            return self.score([request])[0]
        except Exception:
            log.exception("scoring a request alone failed")
            return Failed(500, "scoring this request failed; see the server log")

    def encode_response(self, scored: "Scored | Failed"):
        if isinstance(scored, Failed):
            return scored
        probs, threshold = scored
        unscored = np.isnan(probs).any(axis=1).nonzero()[0]
        if len(unscored):  # a text that failed on its own (BatchScorer scores it NaN)
            return Failed(500, f"texts[{unscored[0]}] could not be scored; see the server log")
        tags = self.classifier.tags
        response = {"probabilities": [dict(zip(tags, row)) for row in probs.tolist()]}
        if threshold is not None:
            cutoffs = self.classifier.thresholds_for(threshold)
            response["labels"] = [dict(zip(tags, row)) for row in (probs >= cutoffs).astype(int).tolist()]
            response["thresholds"] = dict(zip(tags, cutoffs.tolist()))
        return response


class Scored(NamedTuple):
    probs: np.ndarray
    threshold: float | str | None


class Failed(NamedTuple):
    """A request that failed in a worker, answered alone: LitServe's batched loop fails a whole batch on any
    exception, so the worker returns this and the HTTP process turns it into the refusal."""
    status: int
    message: str


# ----------------------------------------------------------------------------------------- the server
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_info(ckpt: str | None = None, onnx: str | None = None, int8: bool = False) -> dict:
    """What /info reports, read in the main process (the workers load the model themselves)."""
    if ckpt:
        checkpoint = TrainedCheckpoint.read(ckpt)
        return {"backend": "torch", "family": checkpoint.family, "backbone": checkpoint.hparams.get("backbone"),
                "tags": checkpoint.tags, "max_length": checkpoint.max_length, "truncation": checkpoint.truncation,
                "thresholds": checkpoint.thresholds(),
                "file": Path(ckpt).name, "sha256": sha256(Path(ckpt))}
    model_file, metadata = read_onnx_folder(onnx, int8)
    return {"backend": "onnx-int8" if int8 else "onnx", "family": metadata.get("family", ENCODER),
            "backbone": metadata.get("backbone"), "tags": metadata["labels"], "max_length": metadata["max_length"],
            "truncation": metadata.get("truncation", "head"),
            "thresholds": metadata.get("thresholds"), "file": model_file.name, "sha256": sha256(model_file),
            "checkpoint": metadata.get("checkpoint") and Path(metadata["checkpoint"]).name}


class Timeouts(NamedTuple):
    read: float = 10.0  # to send a request's head, and again its body
    keep_alive: int = 5  # idle between requests on one connection
    shutdown: float = 5.0  # for requests in flight to finish when stopped


def build_server(info: dict, source: str, workers: int = 1, threads: int | None = None, max_batch_size: int = 16,
                 batch_timeout: float = 0.005, limits: Limits | None = None, max_body_bytes: int = 1_000_000,
                 api_key: str | None = None, timeouts: Timeouts | None = None) -> "ToxicityServer":
    PredictRequest.limits = (limits or Limits())._replace(tuned=bool(info["thresholds"]))
    timeouts = timeouts or Timeouts()
    # one core is left to the HTTP process; spare cores are not worth the risk of oversubscription, where
    # torch's spinning threads slow down many times over when other processes want the cores too
    threads = threads or max(1, ((os.cpu_count() or 1) - 1) // workers)
    api = ToxicityAPI(source, info["backend"], threads, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    # no /docs, /redoc or /openapi.json: /docs loads its script from a CDN, and the routes are documented
    server = ToxicityServer(api, accelerator="cpu", workers_per_device=workers, model_metadata=info,
                            max_payload_size=max_body_bytes, disable_openapi_url=True)
    server.uvicorn_graceful_timeout = timeouts.shutdown
    app = server.app
    for error, handler in ((Refused, refused), (RequestValidationError, invalid), (HTTPException, http_error),
                           (Exception, internal_error)):
        app.add_exception_handler(error, handler)
    app.state.max_body_bytes = max_body_bytes
    app.router.routes = [route for route in app.router.routes  # LitServe's, replaced below
                         if getattr(route, "path", None) not in {"/", "/predict"}]
    page = (files("toxicity") / "static" / "index.html").read_text(encoding="utf-8")
    app.add_api_route("/", lambda: HTMLResponse(page, headers=PAGE_HEADERS), methods=["GET"], include_in_schema=False)
    handler = RegularRequestHandler(api, server)
    app.add_api_route("/predict", predict_route(handler, timeouts.read), methods=["POST"])
    app.add_api_route(PERSPECTIVE_PATH, analyze_route(handler, info["tags"], timeouts.read), methods=["POST"])
    if api_key:
        app.middleware("http")(key_check(api_key))
    app.middleware("http")(early_413(max_body_bytes))  # added last: runs first, before the key check
    return server


class ToxicityServer(ls.LitServer):
    def _perform_graceful_shutdown(self, manager, uvicorn_workers, shutdown_reason: str = "normal"):
        """Stops the HTTP processes first, letting requests in flight finish, then the inference workers.
        LitServe's own sends the workers SIGTERM, which they ignore (see ToxicityAPI.setup), and waits 5 s."""
        for process in uvicorn_workers.values():
            process.terminate()  # uvicorn stops accepting and waits for requests in flight
        deadline = time.monotonic() + self.uvicorn_graceful_timeout + 1
        for process in uvicorn_workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        for worker in self.inference_workers:
            worker.kill()  # nothing is waiting on it any more
            worker.join(5)
        manager.shutdown()


# the page loads nothing from elsewhere; its only requests go back to this server
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'; img-src data:"}


async def read_body(request: Request, read_timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(request.body(), read_timeout)
    except TimeoutError:
        raise Refused(408, f"the body took over {read_timeout:g} s to arrive (--read-timeout)") from None


async def score(handler: RegularRequestHandler, request: PredictRequest) -> dict:
    result = await handler.handle_request(request, PredictRequest)
    if isinstance(result, Failed):
        raise Refused(result.status, result.message)
    return result


def predict_route(handler: RegularRequestHandler, read_timeout: float):
    """POST /predict, reading the body itself (see read_json) rather than through FastAPI."""

    async def predict(request: Request) -> dict:
        return await score(handler, parse_body(await read_body(request, read_timeout), PredictRequest))

    return predict


def analyze_route(handler: RegularRequestHandler, tags: list[str], read_timeout: float):
    """POST /v1alpha1/comments:analyze: scores go through the same workers and batches as /predict."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()): position for position, tag in enumerate(tags)}
    offered = ", ".join(attributes)

    async def analyze(request: Request) -> dict:
        body = parse_body(await read_body(request, read_timeout), AnalyzeRequest)
        requested = body.requestedAttributes
        if not requested:
            raise Refused(400, f"requestedAttributes is empty; ask for at least one of {offered}")
        unknown = [name for name in requested if name not in attributes]
        if unknown:
            raise Refused(400, f"this model has no attribute {', '.join(unknown)}; it has {offered}")
        if body.languages and "en" not in {language.lower().split("-")[0] for language in body.languages}:
            raise Refused(400, f"languages {body.languages}: this model scores English only; ask for ['en']")
        text = body.comment.text
        check_length(text, "comment.text")
        result = await score(handler, PredictRequest(texts=[text]))
        probabilities = list(result["probabilities"][0].values())
        scores = {}
        for name, options in requested.items():
            value = probabilities[attributes[name]]
            if options.scoreThreshold is None or value >= options.scoreThreshold:
                score_ = {"value": value, "type": "PROBABILITY"}
                scores[name] = {"spanScores": [{"begin": 0, "end": len(text), "score": score_}],
                                "summaryScore": score_}
        response = {"attributeScores": scores, "languages": ["en"], "detectedLanguages": ["en"]}
        if body.clientToken is not None:
            response["clientToken"] = body.clientToken
        return response

    return analyze


def early_413(max_body_bytes: int):
    """Refuses a declared Content-Length over the limit before reading a byte of the body (LitServe's own
    limit counts the bytes as they arrive)."""

    async def refuse_large_bodies(request: Request, call_next):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            refusal = error(413, f"request body of {declared} bytes, over {max_body_bytes} bytes "
                                 "(--max-body-bytes); send fewer or shorter texts")
            refusal.headers["connection"] = "close"  # rather than wait for a body it will not read
            return refusal
        return await call_next(request)

    return refuse_large_bodies


def key_check(api_key: str):
    expected = api_key.encode()

    async def require_key(request: Request, call_next):
        if request.url.path not in OPEN_PATHS:
            given = request.headers.get("x-api-key") or request.query_params.get("key") or ""
            if not hmac.compare_digest(given.encode(), expected):
                return JSONResponse({"error": "missing or wrong API key; send it in the x-api-key header "
                                              "or as ?key=..."}, status_code=401)
        return await call_next(request)

    return require_key


# ------------------------------------------------------------------------------- errors as one JSON line
def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def refused(request: Request, exc: Refused) -> JSONResponse:
    return error(exc.status, str(exc))


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    usage = ANALYZE_USAGE if request.url.path == PERSPECTIVE_PATH else PREDICT_USAGE
    return error(400, validation_message(exc.errors(), usage))


def validation_message(errors, usage: str) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {first.get('msg', 'invalid')}; {usage}"


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 413:  # LitServe's body limit (max_payload_size)
        return error(413, f"request body over {request.app.state.max_body_bytes} bytes (--max-body-bytes); "
                          "send fewer or shorter texts")
    return error(exc.status_code, str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("error serving %s", request.url.path)
    return error(500, "internal error; see the server log")


# ------------------------------------------------------------------------------------------ connections
class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head. Neither h11 nor httptools has one, so a
    client sending its headers a byte at a time, or connecting and sending nothing, held a connection for
    as long as it liked. (httptools, uvicorn's default parser, has no header size limit either.)"""

    head_timeout: ClassVar[float] = 10.0
    head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.head_deadline = self.loop.call_later(self.head_timeout, self.head_too_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self.cancel_head_deadline()
        elif self.head_deadline is None:  # the next request on a kept-alive connection has begun
            self.head_deadline = self.loop.call_later(self.head_timeout, self.head_too_slow)

    def connection_lost(self, exc):
        self.cancel_head_deadline()
        super().connection_lost(exc)

    def cancel_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def head_too_slow(self) -> None:
        self.head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.send_raw(408, f"the request line and headers took over {self.head_timeout:g} s (--read-timeout)")

    def send_400_response(self, msg: str) -> None:
        self.send_raw(400, f"invalid HTTP request: malformed, or its request line and headers are over "
                           f"{self.config.h11_max_incomplete_event_size} bytes (--max-header-bytes)")

    def send_raw(self, status: int, message: str) -> None:
        """A one-line JSON refusal written past h11, which cannot answer a request it has not read."""
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {STATUS_REASONS[status]}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.transport.write(head.encode() + body)
        self.transport.close()


STATUS_REASONS = {400: "Bad Request", 408: "Request Timeout"}


def guarded_h11(head_timeout: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout": head_timeout})


class RedactKeys(logging.Filter):
    """Hides ?key=... in uvicorn's access log lines (the path is one of the record's arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_key(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact_key(text: str) -> str:
    return re.sub(r"([?&]key=)[^&\s]*", r"\1[redacted]", text)


def logging_config() -> dict:
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_keys"] = {"()": RedactKeys}
    config["handlers"]["access"]["filters"] = ["redact_keys"]
    return config


# ------------------------------------------------------------------------------------------- processes
def die_with_parent(parent_pid: int) -> None:
    """Makes this process exit when its parent does, even by SIGKILL, which no cleanup code sees."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(1)


_forking_pid = os.getpid()


def _remember_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _forked_child_setup() -> None:
    # the child stops when the parent tells it (uvicorn, which handles its own signals, and the queue
    # manager); a signal to the whole group must not stop it before requests in flight are answered
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent(_forking_pid)


def stop_on_signals() -> None:
    """SIGTERM (systemd, Docker, Kubernetes) and SIGINT stop the server as Ctrl+C does; a second one, as
    the default does. Python leaves SIGTERM fatal and SIGINT ignored in a background job, where LitServe's
    clean-up never ran, leaving its processes serving on the port."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    os.register_at_fork(before=_remember_forking_pid, after_in_child=_forked_child_setup)


# --------------------------------------------------------------------------------------------------- CLI
def port_number(text: str) -> int:
    port = int(text)
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 1024 to 65535, got {port}")
    return port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m toxicity.serve", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="a checkpoint written by toxicity.fit (scored with PyTorch)")
    source.add_argument("--onnx", help="a folder written by `toxicity.export --format onnx` (scored with onnxruntime)")
    parser.add_argument("--int8", action="store_true", help="with --onnx: the int8 model (export with --int8)")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "0.0.0.0", "::"],
                        help="interface to listen on (default: this machine only); 0.0.0.0 and :: need an "
                             "API key or --allow-open")
    parser.add_argument("--allow-open", action="store_true",
                        help="with --host 0.0.0.0 or ::, serve every network without an API key")
    parser.add_argument("--port", type=port_number, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="inference workers, each with its own model")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per worker (default: (cores - 1) / workers, at least 1)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="requests scored together (1: no batching)")
    parser.add_argument("--batch-timeout", type=float, default=0.005,
                        help="seconds a worker waits to fill a batch (default 0.005)")
    parser.add_argument("--max-texts", type=int, default=64, help="texts in one /predict request")
    parser.add_argument("--max-chars", type=int, default=5000, help="characters in one text")
    parser.add_argument("--max-body-bytes", type=int, default=1_000_000, help="bytes in one request body")
    parser.add_argument("--api-key-env", metavar="NAME",
                        help="require the API key held in this environment variable (never on the command line)")
    parser.add_argument("--max-header-bytes", type=int, default=16384,
                        help="bytes in a request line and its headers (default 16384)")
    parser.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds a client has to send a request's headers, and again its body (default 10)")
    parser.add_argument("--keep-alive", type=int, default=5,
                        help="seconds an idle connection is kept open between requests (default 5)")
    parser.add_argument("--max-connections", type=int, default=256,
                        help="connections and requests in flight per HTTP process; more get 503 (default 256)")
    parser.add_argument("--shutdown-timeout", type=float, default=5.0,
                        help="seconds requests in flight may take to finish once stopped (default 5)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="info logs each request (keys given as ?key= are redacted)")
    return parser.parse_args(argv)


def prepare(options: argparse.Namespace) -> ls.LitServer:
    if options.int8 and not options.onnx:
        raise fail("--int8 goes with --onnx (the int8 ONNX model); leave it out with --ckpt")
    for name in ("workers", "max_batch_size", "max_texts", "max_chars", "max_body_bytes", "max_header_bytes",
                 "max_connections", "keep_alive"):
        if getattr(options, name) < 1:
            raise fail(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("read_timeout", "shutdown_timeout"):
        if not getattr(options, name) > 0:
            raise fail(f"--{name.replace('_', '-')} must be more than 0 seconds")
    if options.batch_timeout < 0:
        raise fail("--batch-timeout must be 0 or more seconds")
    if options.host != "127.0.0.1" and not options.api_key_env and not options.allow_open:
        raise fail(f"--host {options.host} serves every network this machine is on, and anyone there could use "
                   "it: require a key with --api-key-env NAME, or say --allow-open")
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            raise fail(f"environment variable {options.api_key_env} is empty or not set; "
                       f"export {options.api_key_env}=<key> first, or leave out --api-key-env")
    info = model_info(options.ckpt, options.onnx, options.int8)
    timeouts = Timeouts(options.read_timeout, options.keep_alive, options.shutdown_timeout)
    return build_server(info, options.ckpt or options.onnx, options.workers, options.threads,
                        options.max_batch_size, options.batch_timeout,
                        Limits(options.max_texts, options.max_chars), options.max_body_bytes, api_key, timeouts)


def banner(options: argparse.Namespace) -> str:
    where = {"127.0.0.1": "this machine only", "0.0.0.0": "every IPv4 network of this machine",
             "::": "every network of this machine"}[options.host]
    address = f"[{options.host}]" if ":" in options.host else options.host
    return (f"listening on {address}:{options.port} ({where}; open http://127.0.0.1:{options.port}/ here), "
            f"{'API key required' if options.api_key_env else 'no API key'}")


def uvicorn_options(options: argparse.Namespace) -> dict:
    return {"http": guarded_h11(options.read_timeout), "h11_max_incomplete_event_size": options.max_header_bytes,
            "timeout_keep_alive": options.keep_alive, "limit_concurrency": options.max_connections,
            "log_config": logging_config()}


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    server = run_tool(lambda: prepare(options))
    print(banner(options), flush=True)
    stop_on_signals()
    try:
        server.run(host=options.host, port=options.port, log_level=options.log_level, generate_client_file=False,
                   **uvicorn_options(options))
    except KeyboardInterrupt:  # a signal while starting: the children die with this process
        sys.exit(130)


if __name__ == "__main__":
    main()
