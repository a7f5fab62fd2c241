"""`toxicity serve`: a trained tagger behind HTTP, on LitServe.

Routes:
    POST /predict                       {"texts": [...], "threshold": 0.5 | "tuned" (optional)}
    POST /v1alpha1/comments:analyze     the Perspective API's request and response shape
    POST /v1alpha1/comments:suggestscore  Perspective's feedback, stored in --feedback-db (off without it)
    GET  /health                        "ok" once every worker has loaded its model (no key needed)
    GET  /info                          {"model": tags, backbone, max_length, thresholds, sha256, ...}
    GET  /                              the try-it page (toxicity/serving/static/index.html; no key needed)

Each inference worker (--workers) loads the classifier once, in `setup`. LitServe gathers requests that
arrive together (up to --max-batch-size, waiting at most --batch-timeout seconds) into one `predict`
call, which scores all their texts in one `predict_proba`.

Requests are checked before any route runs (toxicity.serving.guards): the Host header against
--allowed-hosts, the Origin of a POST against the server's own (a page on another site is refused), the
content type of a suggestion (application/json only), the sizes of the head and the body, and the API key.

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
import tempfile
from typing import TYPE_CHECKING

from toxicity.core.cli import add_ckpt, add_threads, command_parser, fail, run_tool
from toxicity.serving.guards import LOCAL_HOSTS, ApiKeys

if TYPE_CHECKING:
    import litserve as ls

    from toxicity.serving.perspective.store import FeedbackStore

# The server's own modules (LitServe, torch) are imported when it starts, not with this module: the sentence
# splitter's child process (toxicity.serving.perspective.splitter) imports this module again, and needs
# none of them.

log = logging.getLogger(__name__)


_forking_pid = os.getpid()


# --------------------------------------------------------------------------------------------------- CLI
def port_number(text: str) -> int:
    port = int(text)
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 1024 to 65535, got {port}")
    return port


EXAMPLES = (
    "toxicity serve                                   # the best checkpoint on http://127.0.0.1:8000",
    "toxicity serve --onnx exported/onnx --int8 --port 8080 --api-key-env TOXICITY_API_KEY",
    (
        "toxicity serve --host 0.0.0.0 --allowed-hosts toxicity.example.org --api-keys-file keys.txt "
        "--feedback-db feedback.sqlite"
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("serve", __doc__.split("\n")[0], EXAMPLES)
    add_model_options(parser.add_argument_group("the model and its workers"))
    add_access_options(parser.add_argument_group("who may reach the server"))
    add_limit_options(parser.add_argument_group("limits"))
    add_feedback_options(parser.add_argument_group("feedback (comments:suggestscore)"))
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="info logs each request (keys given as ?key= are redacted)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.onnx:  # --ckpt's default (the best checkpoint) gives way to --onnx
        options.ckpt = None
    return options


def add_model_options(group) -> None:
    source = group.add_mutually_exclusive_group()
    add_ckpt(source, help="a checkpoint written by `toxicity fit` (scored with PyTorch)")
    source.add_argument(
        "--onnx",
        metavar="FOLDER",
        help="an ONNX export (`toxicity export --format onnx`) instead of --ckpt (scored with onnxruntime)",
    )
    group.add_argument("--int8", action="store_true", help="with --onnx: the int8 model (export with --int8)")
    group.add_argument("--workers", type=int, default=1, help="inference workers, each with its own model")
    add_threads(group, help="threads per worker (default: (cores - 1) / workers, at least 1)")
    group.add_argument(
        "--max-batch-size", type=int, default=16, help="requests scored together (1: no batching)"
    )
    group.add_argument(
        "--batch-timeout",
        type=float,
        default=0.005,
        help="seconds a worker waits to fill a batch (default 0.005)",
    )
    group.add_argument(
        "--drop-unsupported-attributes",
        action="store_true",
        help="comments:analyze leaves out the attributes it cannot score (not in the model, or not in the "
        "comment's language) instead of refusing, as if every request said dropUnsupportedAttributes",
    )


def add_access_options(group) -> None:
    group.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "0.0.0.0", "::"],
        help="interface to listen on (default: this machine only); 0.0.0.0 and :: need an "
        "API key or --allow-open",
    )
    group.add_argument("--port", type=port_number, default=8000)
    group.add_argument(
        "--allow-open",
        action="store_true",
        help="with --host 0.0.0.0 or ::, serve every network without an API key",
    )
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="require the API key held in this environment variable (never on the command line)",
    )
    keys.add_argument(
        "--api-keys-file",
        metavar="FILE",
        help="require one of the keys in FILE, one NAME:KEY a line (chmod 600); a suggestion is stored "
        "with the name of the key that sent it",
    )
    group.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="HOST",
        default=None,
        help="the names clients reach the server by, checked against each request's Host header (a name, "
        f"*.domain, or '*' for any; default: {' '.join(LOCAL_HOSTS)}); needed with --host 0.0.0.0 or ::",
    )
    group.add_argument(
        "--public-url",
        metavar="URL",
        help="the address clients use (e.g. https://toxicity.example.org), given in the discovery document "
        "(default: the address each request was sent to)",
    )


def add_limit_options(group) -> None:
    group.add_argument("--max-texts", type=int, default=64, help="texts in one /predict request")
    group.add_argument("--max-chars", type=int, default=5000, help="characters in one text")
    group.add_argument(
        "--max-explained", type=int, default=8, help='texts one /predict request may ask to "explain"'
    )
    group.add_argument("--max-body-bytes", type=int, default=1_000_000, help="bytes in one request body")
    for flag, kind, default, what in (
        ("--max-header-bytes", int, 16384, "bytes in a request line and its headers"),
        (
            "--read-timeout",
            float,
            10.0,
            "seconds a client has to send a request's headers, and again its body",
        ),
        ("--keep-alive", int, 5, "seconds an idle connection is kept open between requests"),
        ("--max-connections", int, 256, "connections and requests in flight per HTTP process; more get 503"),
        ("--shutdown-timeout", float, 5.0, "seconds requests in flight may take to finish once stopped"),
    ):
        group.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")


def add_feedback_options(group) -> None:
    group.add_argument(
        "--feedback-db",
        default=None,
        metavar="PATH_OR_URL",
        help="turns comments:suggestscore on, storing suggestions here: a SQLite file (created by the "
        "first one) or a SQLAlchemy URL such as postgresql+psycopg://user@host/db for several servers "
        "(the password from PGPASSWORD or ~/.pgpass). Default: off",
    )
    group.add_argument(
        "--feedback-hash-comments",
        metavar="SECRET_ENV",
        help="store each suggested comment's HMAC-SHA256 under the secret held in this environment "
        "variable instead of its text (such rows cannot be exported)",
    )


def prepare(options: argparse.Namespace) -> ls.LitServer:
    from toxicity.serving.app import Access, Timeouts, build_server, model_info
    from toxicity.serving.schemas import Limits

    if options.int8 and not options.onnx:
        raise fail("--int8 goes with --onnx (the int8 ONNX model); leave it out with --ckpt")
    for name in (
        "workers",
        "max_batch_size",
        "max_texts",
        "max_chars",
        "max_explained",
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
    keys = api_keys(options)
    access = Access(keys, allowed_hosts(options), options.public_url, options.max_header_bytes)
    feedback = feedback_store(options, keys)
    check_serving_needs()
    info = model_info(options.ckpt, options.onnx, options.int8)
    timeouts = Timeouts(options.read_timeout, options.keep_alive, options.shutdown_timeout)
    return build_server(
        info,
        options.ckpt or options.onnx,
        options.workers,
        options.threads,
        options.max_batch_size,
        options.batch_timeout,
        Limits(options.max_texts, options.max_chars, max_explained=options.max_explained),
        options.max_body_bytes,
        access,
        timeouts,
        feedback,
        drop_unsupported_attributes=options.drop_unsupported_attributes,
    )


def listens_beyond_this_machine(options: argparse.Namespace) -> bool:
    return options.host != "127.0.0.1"


def api_keys(options: argparse.Namespace) -> ApiKeys | None:
    if options.api_key_env:
        return ApiKeys.from_env(options.api_key_env)
    if options.api_keys_file:
        return ApiKeys.from_file(options.api_keys_file)
    if listens_beyond_this_machine(options) and not options.allow_open:
        raise fail(
            f"--host {options.host} serves every network this machine is on, and anyone there could use "
            "it: require a key with --api-key-env NAME or --api-keys-file FILE, or say --allow-open"
        )
    return None


def allowed_hosts(options: argparse.Namespace) -> tuple[str, ...]:
    if options.allowed_hosts:
        return tuple(options.allowed_hosts)
    if listens_beyond_this_machine(options):
        raise fail(
            f"--host {options.host}: name the hosts clients reach this server by with --allowed-hosts (e.g. "
            "--allowed-hosts toxicity.example.org 10.0.0.5), or --allowed-hosts '*' for any; requests with "
            "another Host header are refused (a web page's DNS rebinding)"
        )
    return LOCAL_HOSTS


def feedback_store(options: argparse.Namespace, keys: ApiKeys | None) -> FeedbackStore | None:
    """The store behind comments:suggestscore, or None (the route off) without --feedback-db."""
    if not options.feedback_db:
        if options.feedback_hash_comments:
            raise fail("--feedback-hash-comments goes with --feedback-db (the feedback route is off)")
        return None
    if keys is None and listens_beyond_this_machine(options):
        raise fail(
            f"--feedback-db with --host {options.host} and no API key would store as training rows what "
            "anyone on the network sends: require keys (--api-key-env or --api-keys-file)"
        )
    secret = None
    if options.feedback_hash_comments:
        secret = os.environ.get(options.feedback_hash_comments, "").encode()
        if len(secret) < 16:
            raise fail(
                f"--feedback-hash-comments: environment variable {options.feedback_hash_comments} must hold "
                "a secret of 16 characters or more (e.g. export it from `openssl rand -hex 32`); keep it: "
                "the same comment hashes the same only under the same secret"
            )
    from toxicity.serving.perspective.store import FeedbackStore

    feedback = FeedbackStore(options.feedback_db, secret)
    feedback.prepare()
    return feedback


def check_serving_needs() -> None:
    """What the routes need at run time, checked at start so a missing piece stops the server with one
    line instead of failing requests: the sentence splitter, the language detector, a writable temp
    folder (LitServe passes requests to its workers through it)."""
    for module, package in (("pysbd", "pysbd"), ("py3langid", "py3langid")):
        try:
            __import__(module)
        except ImportError:
            raise fail(f"the Perspective route needs {package}: pip install {package}") from None
    try:
        with tempfile.TemporaryFile() as probe:
            probe.write(b"x" * 4096)
            probe.flush()
    except OSError as error:
        raise fail(
            f"cannot write to the temp folder {tempfile.gettempdir()} ({error.strerror}); free some space, "
            "or point TMPDIR at a writable folder"
        ) from None


def banner(options: argparse.Namespace) -> str:
    where = {
        "127.0.0.1": "this machine only",
        "0.0.0.0": "every IPv4 network of this machine",
        "::": "every network of this machine",
    }[options.host]
    address = f"[{options.host}]" if ":" in options.host else options.host
    return (
        f"listening on {address}:{options.port} ({where}; open http://127.0.0.1:{options.port}/ here), "
        f"{'API key required' if options.api_key_env or options.api_keys_file else 'no API key'}, "
        f"feedback {'stored in ' + options.feedback_db if options.feedback_db else 'off'}"
    )


def uvicorn_options(options: argparse.Namespace) -> dict:
    from toxicity.serving.connections import logging_config
    from toxicity.serving.internals import guarded_h11

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
    from toxicity.serving.processes import stop_on_signals

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
