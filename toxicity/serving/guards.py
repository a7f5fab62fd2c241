"""Who and what may reach a route, checked in the HTTP process before the route runs: the Host header (DNS
rebinding), the Origin of a request that is not a plain read (a page on another site), the content type of a
body the server stores, the size of a request's head and of its body, and the API key.

A browser lets any page send a POST to any address with a "simple" content type (text/plain, a form) and
no preflight; it cannot add an API key or set application/json without asking the server first (CORS),
which this server never allows. So a write route that demands application/json, refuses a foreign Origin
and checks Host cannot be driven by a page on another site, even on a server without a key."""

from __future__ import annotations

import hmac
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # fastapi is imported when the server starts, not by `toxicity.serve --help`
    from fastapi import Request

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # --allowed-hosts' default
READS = {"GET", "HEAD", "OPTIONS"}
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


# ------------------------------------------------------------------------------------------ API keys
class ApiKeys:
    """The keys the server accepts, each with a name that is stored with what it writes (never the key)."""

    def __init__(self, named: dict[str, str]):
        self.named = named  # name -> key

    def name_of(self, given: str | None) -> str | None:
        """The name of the key `given`, or None; every stored key is compared, in constant time each."""
        found = None
        for name, key in self.named.items():
            if hmac.compare_digest((given or "").encode(), key.encode()):
                found = name
        return found

    @classmethod
    def from_env(cls, variable: str) -> ApiKeys:
        key = os.environ.get(variable)
        if not key:
            raise ValueError(
                f"environment variable {variable} is empty or not set; "
                f"export {variable}=<key> first, or leave out --api-key-env"
            )
        return cls({variable: key})

    @classmethod
    def from_file(cls, path: str) -> ApiKeys:
        """One `NAME:KEY` a line (blank lines and `#` comments skipped), from a file only its owner reads."""
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"--api-keys-file {path}: no such file")
        if file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"--api-keys-file {path}: others can read it; run chmod 600 {path}")
        named: dict[str, str] = {}
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, key = line.strip().partition(":")
            where = f"--api-keys-file {path}, line {number}"
            if not KEY_NAME.fullmatch(name) or not key:
                raise ValueError(f"{where}: write NAME:KEY (a name of letters, digits, _.@-, then the key)")
            if name in named or key in named.values():
                raise ValueError(f"{where}: {'name ' + name if name in named else 'its key'} given twice")
            named[name] = key
        if not named:
            raise ValueError(f"--api-keys-file {path}: no NAME:KEY line")
        return cls(named)


# ------------------------------------------------------------------------------------------- checks
def host_check(allowed_hosts: list[str], error):
    """Refuses a Host header that is not one of `allowed_hosts` (a name, `*.domain`, or `*` for any), as
    Starlette's TrustedHostMiddleware does, answered in this server's error shape: a page whose name was
    re-pointed at this machine (DNS rebinding) sends its own name as Host. /health answers any Host: it
    tells nothing, and orchestrators probe it by the machine's address."""
    allowed = [host.lower() for host in allowed_hosts]

    async def check_host(request: Request, call_next):
        host = host_name(request.headers.get("host", ""))
        if request.url.path == "/health" or "*" in allowed or any(host_matches(host, p) for p in allowed):
            return await call_next(request)
        return error(
            request,
            400,
            f"Host {request.headers.get('host', '(none)')!r} is not one this server answers to; its operator "
            f"adds it with --allowed-hosts (now: {' '.join(allowed_hosts)})",
        )

    return check_host


def host_matches(host: str, pattern: str) -> bool:
    return host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def host_name(host: str) -> str:
    """`example.org:8000` -> `example.org`; `[::1]:8000` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def same_origin_writes(error):
    """Refuses a request other than a read whose Origin is not this server's own (browsers send Origin with
    every POST; other clients send none, and are let through to the key check)."""

    async def check_origin(request: Request, call_next):
        origin = request.headers.get("origin")
        if request.method in READS or origin is None:
            return await call_next(request)
        if urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower():
            return await call_next(request)
        return error(
            request,
            403,
            f"requests from pages of another origin ({origin}) are refused; serve your page from this "
            "server's own address (behind one proxy), or send the request from your back end",
        )

    return check_origin


def json_bodies(paths: set[str], error):
    """Refuses a POST to `paths` whose body is not declared application/json (415): the content types a
    page may send without asking (text/plain, forms) are not read as JSON there."""

    async def check_content_type(request: Request, call_next):
        if request.method == "POST" and request.url.path in paths:
            declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if declared != "application/json":
                return error(
                    request,
                    415,
                    f"Content-Type {declared or '(none)'} is not accepted here; send the body as "
                    "application/json",
                )
        return await call_next(request)

    return check_content_type


def head_limit(max_header_bytes: int, error):
    """Refuses a request whose line and headers are over `max_header_bytes` (431), however they arrived: the
    HTTP parser's own limit holds only for a head that arrives in pieces."""

    async def check_head(request: Request, call_next):
        scope = request.scope
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])  # ": " and CRLF
        if size > max_header_bytes:
            refusal = error(
                request,
                431,
                f"request line and headers of {size} bytes, over {max_header_bytes} bytes "
                "(--max-header-bytes); send fewer or shorter headers",
            )
            refusal.headers["connection"] = "close"
            return refusal
        return await call_next(request)

    return check_head


def body_limit(max_body_bytes: int, error):
    """Refuses a declared Content-Length over the limit before reading a byte of the body (LitServe's own
    limit counts the bytes as they arrive)."""

    async def refuse_large_bodies(request: Request, call_next):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            refusal = error(
                request,
                413,
                f"request body of {declared} bytes, over {max_body_bytes} bytes "
                "(--max-body-bytes); send fewer or shorter texts",
            )
            refusal.headers["connection"] = "close"  # rather than wait for a body it will not read
            return refusal
        return await call_next(request)

    return refuse_large_bodies


def key_check(keys: ApiKeys, open_paths: set[str], refusal):
    """Refuses a request without a known key, but on `open_paths`; a known key's name is left in
    `request.state.api_key_name` for what the route stores."""

    async def require_key(request: Request, call_next):
        request.state.api_key_name = None
        if request.url.path not in open_paths:
            given = (  # x-goog-api-key: where Google's client libraries may put it
                request.headers.get("x-api-key")
                or request.headers.get("x-goog-api-key")
                or request.query_params.get("key")
            )
            name = keys.name_of(given)
            if name is None:
                return refusal(request, given)
            request.state.api_key_name = name
        return await call_next(request)

    return require_key


def api_key_name(request: Request) -> str | None:
    return getattr(request.state, "api_key_name", None)
