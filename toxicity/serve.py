"""`python -m toxicity.serve`: a trained tagger behind HTTP, on LitServe.

    python -m toxicity.serve --ckpt checkpoints/best-checkpoint.ckpt          # http://127.0.0.1:8000
    python -m toxicity.serve --onnx exported/ --int8 --port 8080 --api-key-env TOXICITY_API_KEY

Routes:
    POST /predict                       {"texts": [...], "threshold": 0.5 | "tuned" (optional)}
    POST /v1alpha1/comments:analyze     the Perspective API's request and response shape
    POST /v1alpha1/comments:suggestscore  Perspective's feedback, stored in --feedback-db
    GET  /health                        "ok" once every worker has loaded its model (no key needed)
    GET  /info                          {"model": tags, backbone, max_length, thresholds, sha256, ...}
    GET  /                              the try-it page (toxicity/serving/static/index.html; no key needed)

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

from __future__ import annotations

import argparse
import logging
import os
import sys

import litserve as ls

from toxicity.core.cli import fail, run_tool
from toxicity.serving.app import Timeouts, build_server, model_info
from toxicity.serving.connections import guarded_h11, logging_config
from toxicity.serving.feedback_store import DEFAULT_FEEDBACK_DB, FeedbackStore
from toxicity.serving.processes import stop_on_signals
from toxicity.serving.schemas import Limits

log = logging.getLogger(__name__)


_forking_pid = os.getpid()


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
    source.add_argument(
        "--onnx", help="a folder written by `toxicity.export --format onnx` (scored with onnxruntime)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="with --onnx: the int8 model (export with --int8)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "0.0.0.0", "::"],
        help="interface to listen on (default: this machine only); 0.0.0.0 and :: need an "
        "API key or --allow-open",
    )
    parser.add_argument(
        "--allow-open",
        action="store_true",
        help="with --host 0.0.0.0 or ::, serve every network without an API key",
    )
    parser.add_argument("--port", type=port_number, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="inference workers, each with its own model")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per worker (default: (cores - 1) / workers, at least 1)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=16, help="requests scored together (1: no batching)"
    )
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=0.005,
        help="seconds a worker waits to fill a batch (default 0.005)",
    )
    parser.add_argument("--max-texts", type=int, default=64, help="texts in one /predict request")
    parser.add_argument("--max-chars", type=int, default=5000, help="characters in one text")
    parser.add_argument("--max-body-bytes", type=int, default=1_000_000, help="bytes in one request body")
    parser.add_argument(
        "--drop-unsupported-attributes",
        action="store_true",
        help="comments:analyze leaves out the attributes it cannot score (not in the model, or not in the "
        "comment's language) instead of refusing, as if every request said dropUnsupportedAttributes",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="require the API key held in this environment variable (never on the command line)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=16384,
        help="bytes in a request line and its headers (default 16384)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send a request's headers, and again its body (default 10)",
    )
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=5,
        help="seconds an idle connection is kept open between requests (default 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="connections and requests in flight per HTTP process; more get 503 (default 256)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        help="seconds requests in flight may take to finish once stopped (default 5)",
    )
    parser.add_argument(
        "--feedback-db",
        default=DEFAULT_FEEDBACK_DB,
        metavar="PATH_OR_URL",
        help="where comments:suggestscore stores suggestions: a SQLite file (default ./"
        f"{DEFAULT_FEEDBACK_DB}, created by the first one) or a SQLAlchemy URL such as "
        "postgresql+psycopg://user@host/db for several servers",
    )
    parser.add_argument(
        "--feedback-hash-comments",
        action="store_true",
        help="store only the sha256 of each suggested comment, not its text (such rows cannot be exported)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="info logs each request (keys given as ?key= are redacted)",
    )
    return parser.parse_args(argv)


def prepare(options: argparse.Namespace) -> ls.LitServer:
    if options.int8 and not options.onnx:
        raise fail("--int8 goes with --onnx (the int8 ONNX model); leave it out with --ckpt")
    for name in (
        "workers",
        "max_batch_size",
        "max_texts",
        "max_chars",
        "max_body_bytes",
        "max_header_bytes",
        "max_connections",
        "keep_alive",
    ):
        if getattr(options, name) < 1:
            raise fail(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("read_timeout", "shutdown_timeout"):
        if not getattr(options, name) > 0:
            raise fail(f"--{name.replace('_', '-')} must be more than 0 seconds")
    if options.batch_timeout < 0:
        raise fail("--batch-timeout must be 0 or more seconds")
    if options.host != "127.0.0.1" and not options.api_key_env and not options.allow_open:
        raise fail(
            f"--host {options.host} serves every network this machine is on, and anyone there could use "
            "it: require a key with --api-key-env NAME, or say --allow-open"
        )
    api_key = None
    if options.api_key_env:
        api_key = os.environ.get(options.api_key_env)
        if not api_key:
            raise fail(
                f"environment variable {options.api_key_env} is empty or not set; "
                f"export {options.api_key_env}=<key> first, or leave out --api-key-env"
            )
    info = model_info(options.ckpt, options.onnx, options.int8)
    feedback = FeedbackStore(options.feedback_db, options.feedback_hash_comments)
    feedback.prepare()
    timeouts = Timeouts(options.read_timeout, options.keep_alive, options.shutdown_timeout)
    return build_server(
        info,
        options.ckpt or options.onnx,
        options.workers,
        options.threads,
        options.max_batch_size,
        options.batch_timeout,
        Limits(options.max_texts, options.max_chars),
        options.max_body_bytes,
        api_key,
        timeouts,
        feedback,
        drop_unsupported_attributes=options.drop_unsupported_attributes,
    )


def banner(options: argparse.Namespace) -> str:
    where = {
        "127.0.0.1": "this machine only",
        "0.0.0.0": "every IPv4 network of this machine",
        "::": "every network of this machine",
    }[options.host]
    address = f"[{options.host}]" if ":" in options.host else options.host
    return (
        f"listening on {address}:{options.port} ({where}; open http://127.0.0.1:{options.port}/ here), "
        f"{'API key required' if options.api_key_env else 'no API key'}"
    )


def uvicorn_options(options: argparse.Namespace) -> dict:
    return {
        "http": guarded_h11(options.read_timeout),
        "h11_max_incomplete_event_size": options.max_header_bytes,
        "timeout_keep_alive": options.keep_alive,
        "limit_concurrency": options.max_connections,
        "log_config": logging_config(),
    }


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    server = run_tool(lambda: prepare(options))
    print(banner(options), flush=True)
    stop_on_signals()
    try:
        server.run(
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            generate_client_file=False,
            **uvicorn_options(options),
        )
    except KeyboardInterrupt:  # a signal while starting: the children die with this process
        sys.exit(130)


if __name__ == "__main__":
    main()
