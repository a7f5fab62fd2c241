"""The app: the LitServer with our routes, limits, API key check, error handlers and the page."""

from __future__ import annotations

import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import NamedTuple

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.files import file_sha256
from toxicity.inference.onnx import read_onnx_folder
from toxicity.models.families import ENCODER
from toxicity.serving.api import Rows, ToxicityAPI, read_body, score
from toxicity.serving.guards import (
    LOCAL_HOSTS,
    ApiKeys,
    body_limit,
    head_limit,
    host_check,
    json_bodies,
    key_check,
    same_origin_writes,
)
from toxicity.serving.internals import ToxicityServer, Workers, without_routes
from toxicity.serving.perspective.analyze import PERSPECTIVE_PATH, analyze_route, discovery_route
from toxicity.serving.perspective.discovery import DISCOVERY_PATH
from toxicity.serving.perspective.errors import (
    INVALID_KEY,
    MISSING_KEY,
    google_error,
    invalid_key_detail,
    speaks_google,
)
from toxicity.serving.perspective.requests import ANALYZE_USAGE
from toxicity.serving.perspective.splitter import SentenceSplitter
from toxicity.serving.perspective.store import FeedbackStore
from toxicity.serving.perspective.suggest import SUGGEST_PATH, feedback_off, suggest_route
from toxicity.serving.schemas import (
    PREDICT_USAGE,
    Limits,
    PredictRequest,
    Refused,
    parse_body,
    validation_message,
)

log = logging.getLogger(__name__)


OPEN_PATHS = {"/", "/health", DISCOVERY_PATH}  # reachable without the API key


# ----------------------------------------------------------------------------------------- the server
def model_info(ckpt: str | None = None, onnx: str | None = None, int8: bool = False) -> dict:
    """What /info reports, read in the main process (the workers load the model themselves)."""
    if ckpt:
        checkpoint = TrainedCheckpoint.read(ckpt)
        return {
            "backend": "torch",
            "family": checkpoint.family,
            "backbone": checkpoint.hparams.get("backbone"),
            "tags": checkpoint.tags,
            "max_length": checkpoint.max_length,
            "truncation": checkpoint.truncation,
            "thresholds": checkpoint.thresholds(),
            "file": Path(ckpt).name,
            "sha256": file_sha256(ckpt),
        }
    model_file, metadata = read_onnx_folder(onnx, int8)
    return {
        "backend": "onnx-int8" if int8 else "onnx",
        "family": metadata.get("family", ENCODER),
        "backbone": metadata.get("backbone"),
        "tags": metadata["labels"],
        "max_length": metadata["max_length"],
        "truncation": metadata.get("truncation", "head"),
        "thresholds": metadata.get("thresholds"),
        "file": model_file.name,
        "sha256": file_sha256(model_file),
        "checkpoint": metadata.get("checkpoint") and Path(metadata["checkpoint"]).name,
    }


class Access(NamedTuple):
    """Who may use the server: `keys` (None: no key needed), the Host names it answers to, and the address
    its discovery document gives clients (None: the address each request was sent to)."""

    keys: ApiKeys | None = None
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    public_url: str | None = None
    max_header_bytes: int = 16384


class Timeouts(NamedTuple):
    read: float = 10.0  # to send a request's head, and again its body
    keep_alive: int = 5  # idle between requests on one connection
    shutdown: float = 5.0  # for requests in flight to finish when stopped


def build_server(
    info: dict,
    source: str,
    workers: int = 1,
    threads: int | None = None,
    max_batch_size: int = 16,
    batch_timeout: float = 0.005,
    limits: Limits | None = None,
    max_body_bytes: int = 1_000_000,
    access: Access | None = None,
    timeouts: Timeouts | None = None,
    feedback: FeedbackStore | None = None,
    drop_unsupported_attributes: bool = False,
) -> ToxicityServer:
    """`feedback`: where comments:suggestscore stores suggestions; None: the route is off."""
    limits = (limits or Limits())._replace(
        tuned=bool(info["thresholds"]), explainable=info["backend"] == "torch"
    )
    timeouts, access = timeouts or Timeouts(), access or Access()
    # one core is left to the HTTP process; spare cores are not worth the risk of oversubscription, where
    # torch's spinning threads slow down many times over when other processes want the cores too
    threads = threads or max(1, ((os.cpu_count() or 1) - 1) // workers)
    api = ToxicityAPI(
        source, info["backend"], threads, max_batch_size=max_batch_size, batch_timeout=batch_timeout
    )
    # no /docs, /redoc or /openapi.json: /docs loads its script from a CDN, and the routes are documented
    server = ToxicityServer(
        api,
        accelerator="cpu",
        workers_per_device=workers,
        model_metadata=info,
        max_payload_size=max_body_bytes,
        disable_openapi_url=True,
        shutdown_timeout=timeouts.shutdown,
    )
    app = server.app
    for error, handler in (
        (Refused, refused),
        (RequestValidationError, invalid),
        (HTTPException, http_error),
        (Exception, internal_error),
    ):
        app.add_exception_handler(error, handler)
    app.state.max_body_bytes = max_body_bytes
    without_routes(app, {"/", "/predict"})  # LitServe's, replaced below
    page = (files("toxicity.serving") / "static" / "index.html").read_text(encoding="utf-8")
    app.add_api_route(
        "/", lambda: HTMLResponse(page, headers=PAGE_HEADERS), methods=["GET"], include_in_schema=False
    )
    workers = Workers(api, server)
    app.add_api_route(
        "/predict", predict_route(workers, info["tags"], timeouts.read, limits), methods=["POST"]
    )
    analyze = analyze_route(
        workers, info["tags"], timeouts.read, limits, SentenceSplitter(), drop_unsupported_attributes
    )
    app.add_api_route(PERSPECTIVE_PATH, analyze, methods=["POST"])
    if feedback is None:
        app.add_api_route(SUGGEST_PATH, feedback_off, methods=["POST"])
    else:
        suggest = suggest_route(feedback, info["tags"], info["sha256"], timeouts.read, limits)
        app.add_api_route(SUGGEST_PATH, suggest, methods=["POST"])
    app.add_api_route(DISCOVERY_PATH, discovery_route(access.public_url), methods=["GET"])
    add_guards(app, access, max_body_bytes)
    return server


def add_guards(app, access: Access, max_body_bytes: int) -> None:
    """The checks every request passes before its route, in this order: Host, the head's size, the body's
    declared size, the Origin of a write, the content type of a stored body, the key (each middleware
    added runs before those added earlier)."""
    if access.keys:
        app.middleware("http")(key_check(access.keys, OPEN_PATHS, key_refusal))
    app.middleware("http")(json_bodies({SUGGEST_PATH}, error))
    app.middleware("http")(same_origin_writes(error))
    app.middleware("http")(body_limit(max_body_bytes, error))
    app.middleware("http")(head_limit(access.max_header_bytes, error))
    app.middleware("http")(host_check(list(access.allowed_hosts), error))


# the page loads nothing from elsewhere; its only requests go back to this server
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:"
}


def predict_route(workers: Workers, tags: list[str], read_timeout: float, limits: Limits):
    """POST /predict, reading the body itself (see read_json) rather than through FastAPI."""

    async def predict(request: Request) -> dict:
        body = parse_body(await read_body(request, read_timeout), PredictRequest, limits)
        return predict_response(await score(workers, body), tags)

    return predict


def predict_response(rows: Rows, tags: list[str]) -> dict:
    """{"probabilities": [{tag: p}]}, and with a threshold "labels" (0/1 per tag) and the "thresholds"."""
    response = {"probabilities": [dict(zip(tags, row)) for row in rows.probabilities]}
    if rows.cutoffs is not None:
        response["labels"] = [
            {tag: int(p >= cut) for tag, p, cut in zip(tags, row, rows.cutoffs)} for row in rows.probabilities
        ]
        response["thresholds"] = dict(zip(tags, rows.cutoffs))
    if rows.explanations is not None:
        response["explanations"] = rows.explanations
    return response


def key_refusal(request: Request, given: str | None) -> JSONResponse:
    """401 on our routes; on Google's, what Google answers: 403 for no key, 400 for a wrong (or empty) one,
    with the detail whose `reason` clients such as PyPerspective check. Google's 403 has no details, and
    PyPerspective then fails with a KeyError; ours adds the API_KEY_INVALID detail, so that it says
    "Invalid Auth Key Provided!" instead."""
    if not speaks_google(request.url.path):
        return error(request, 401, "missing or wrong API key; send it in the x-api-key header or as ?key=...")
    if given is None:
        return error(request, 403, MISSING_KEY, invalid_key_detail())
    return error(request, 400, INVALID_KEY, invalid_key_detail())


# ------------------------------------------------------------------------------- errors as one JSON line
def error(request: Request, status: int, message: str, detail: dict | None = None) -> JSONResponse:
    """`{"error": message}`, or on the Perspective routes Google's error object."""
    if speaks_google(request.url.path):
        return JSONResponse(google_error(status, message, detail), status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def refused(request: Request, exc: Refused) -> JSONResponse:
    return error(request, exc.status, str(exc), exc.detail)


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    usage = ANALYZE_USAGE if request.url.path == PERSPECTIVE_PATH else PREDICT_USAGE
    return error(request, 400, validation_message(exc.errors(), usage))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 413:  # LitServe's body limit (max_payload_size)
        return error(
            request,
            413,
            f"request body over {request.app.state.max_body_bytes} bytes (--max-body-bytes); "
            "send fewer or shorter texts",
        )
    return error(request, exc.status_code, str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("error serving %s", request.url.path)
    return error(request, 500, "internal error; see the server log")
