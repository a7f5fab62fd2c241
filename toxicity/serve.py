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

Bad requests are refused in the HTTP process, before they reach a worker: in a batch, one request that
fails fails them all. Every refusal is a 4xx with one JSON line, {"error": "..."}. Texts over --max-chars
characters are refused (413); shorter ones are scored on their first max_length tokens, as everywhere in
this package.
"""

import argparse
import hashlib
import hmac
import json
import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import litserve as ls
import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from litserve.server import RegularRequestHandler
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from starlette.exceptions import HTTPException

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
class JsonBody(BaseModel):
    usage: ClassVar[str] = ""  # what to send, said in refusals

    @model_validator(mode="before")
    @classmethod
    def _json_whatever_the_content_type(cls, data):
        # `curl -d` sends a form content type, for which FastAPI hands over the raw bytes
        if isinstance(data, (bytes, str)):
            try:
                return json.loads(data)
            except ValueError as error:
                raise Refused(400, f"body is not valid JSON ({error}); {cls.usage}") from None
        return data


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
        probs = self.classifier.predict_proba([text for request in requests for text in request.texts])
        ends = np.cumsum([len(request.texts) for request in requests])[:-1]
        scored = [(part, request.threshold) for part, request in zip(np.split(probs, ends), requests)]
        return scored if batched else scored[0]

    def encode_response(self, scored):
        probs, threshold = scored
        tags = self.classifier.tags
        response = {"probabilities": [dict(zip(tags, row)) for row in probs.tolist()]}
        if threshold is not None:
            cutoffs = self.classifier.thresholds_for(threshold)
            response["labels"] = [dict(zip(tags, row)) for row in (probs >= cutoffs).astype(int).tolist()]
            response["thresholds"] = dict(zip(tags, cutoffs.tolist()))
        return response


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
                "file": str(Path(ckpt).resolve()), "sha256": sha256(Path(ckpt))}
    model_file, metadata = read_onnx_folder(onnx, int8)
    return {"backend": "onnx-int8" if int8 else "onnx", "family": metadata.get("family", ENCODER),
            "backbone": metadata.get("backbone"), "tags": metadata["labels"], "max_length": metadata["max_length"],
            "truncation": metadata.get("truncation", "head"),
            "thresholds": metadata.get("thresholds"), "file": str(model_file.resolve()), "sha256": sha256(model_file),
            "checkpoint": metadata.get("checkpoint")}


def build_server(info: dict, source: str, workers: int = 1, threads: int | None = None, max_batch_size: int = 16,
                 batch_timeout: float = 0.005, limits: Limits | None = None, max_body_bytes: int = 1_000_000,
                 api_key: str | None = None) -> ls.LitServer:
    PredictRequest.limits = (limits or Limits())._replace(tuned=bool(info["thresholds"]))
    # one core is left to the HTTP process; spare cores are not worth the risk of oversubscription, where
    # torch's spinning threads slow down many times over when other processes want the cores too
    threads = threads or max(1, ((os.cpu_count() or 1) - 1) // workers)
    api = ToxicityAPI(source, info["backend"], threads, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, model_metadata=info,
                          max_payload_size=max_body_bytes)
    app = server.app
    for error, handler in ((Refused, refused), (RequestValidationError, invalid), (HTTPException, http_error),
                           (Exception, internal_error)):
        app.add_exception_handler(error, handler)
    app.state.max_body_bytes = max_body_bytes
    app.router.routes = [route for route in app.router.routes if getattr(route, "path", None) != "/"]  # LitServe's
    page = (files("toxicity") / "static" / "index.html").read_text(encoding="utf-8")
    app.add_api_route("/", lambda: HTMLResponse(page, headers=PAGE_HEADERS), methods=["GET"], include_in_schema=False)
    app.add_api_route(PERSPECTIVE_PATH, analyze_route(RegularRequestHandler(api, server), info["tags"]),
                      methods=["POST"])
    if api_key:
        app.middleware("http")(key_check(api_key))
    return server


# the page loads nothing from elsewhere; its only requests go back to this server
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'; img-src data:"}


def analyze_route(handler: RegularRequestHandler, tags: list[str]):
    """POST /v1alpha1/comments:analyze: scores go through the same workers and batches as /predict."""
    attributes = {ATTRIBUTES.get(tag, tag.upper()): position for position, tag in enumerate(tags)}
    offered = ", ".join(attributes)

    async def analyze(body: AnalyzeRequest) -> dict:
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
        result = await handler.handle_request(PredictRequest(texts=[text]), PredictRequest)
        probabilities = list(result["probabilities"][0].values())
        scores = {}
        for name, options in requested.items():
            value = probabilities[attributes[name]]
            if options.scoreThreshold is None or value >= options.scoreThreshold:
                score = {"value": value, "type": "PROBABILITY"}
                scores[name] = {"spanScores": [{"begin": 0, "end": len(text), "score": score}], "summaryScore": score}
        response = {"attributeScores": scores, "languages": ["en"], "detectedLanguages": ["en"]}
        if body.clientToken is not None:
            response["clientToken"] = body.clientToken
        return response

    return analyze


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
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    usage = ANALYZE_USAGE if request.url.path == PERSPECTIVE_PATH else PREDICT_USAGE
    if first.get("type") == "json_invalid":
        return error(400, f"body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')}); {usage}")
    if first.get("type") == "missing" and not where:
        return error(400, f"empty body; {usage}")
    return error(400, f"{where or 'body'}: {first.get('msg', 'invalid')}; {usage}")


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 413:  # LitServe's body limit (max_payload_size)
        return error(413, f"request body over {request.app.state.max_body_bytes} bytes (--max-body-bytes); "
                          "send fewer or shorter texts")
    return error(exc.status_code, str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("error serving %s", request.url.path)
    return error(500, "internal error; see the server log")


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
                        help="interface to listen on (default: this machine only)")
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
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def prepare(options: argparse.Namespace) -> ls.LitServer:
    if options.int8 and not options.onnx:
        raise fail("--int8 goes with --onnx (the int8 ONNX model); leave it out with --ckpt")
    for name in ("workers", "max_batch_size", "max_texts", "max_chars", "max_body_bytes"):
        if getattr(options, name) < 1:
            raise fail(f"--{name.replace('_', '-')} must be at least 1")
    if options.batch_timeout < 0:
        raise fail("--batch-timeout must be 0 or more seconds")
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            raise fail(f"environment variable {options.api_key_env} is empty or not set; "
                       f"export {options.api_key_env}=<key> first, or leave out --api-key-env")
    info = model_info(options.ckpt, options.onnx, options.int8)
    return build_server(info, options.ckpt or options.onnx, options.workers, options.threads,
                        options.max_batch_size, options.batch_timeout,
                        Limits(options.max_texts, options.max_chars), options.max_body_bytes, api_key)


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    server = run_tool(lambda: prepare(options))
    print(f"serving on http://{'127.0.0.1' if options.host != '::' else '[::1]'}:{options.port}/ "
          f"({'API key required' if options.api_key_env else 'no API key'})", flush=True)
    server.run(host=options.host, port=options.port, log_level=options.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
