"""Every use of a private name of LitServe, uvicorn or h11, kept in this one module; the test
tests/serving/test_internals.py fails when one of them changes (the pin in pyproject.toml bounds LitServe
to the minor version it was written for).

- `Workers`: our routes read and check a request themselves, then hand it to the inference workers through
  LitServe's `RegularRequestHandler` (not in LitServe's public names: a spec or a second LitAPI would need
  the same queue, or load the model twice).
- `ToxicityServer`: LitServe's graceful shutdown, replaced so that requests in flight finish first.
- `without_routes`: LitServe's own `/` and `/predict`, which ours replace.
- `GuardedH11Protocol`: uvicorn's h11 protocol with a deadline for each request's head."""

from __future__ import annotations

import asyncio
import json
import time
from typing import ClassVar

import h11
import litserve as ls
from litserve.server import RegularRequestHandler
from uvicorn.protocols.http.h11_impl import H11Protocol


# ------------------------------------------------------------------------------------------- LitServe
class Workers:
    """Submits a checked request to the inference workers, in the batches LitServe gathers, and waits for
    its answer."""

    def __init__(self, api: ls.LitAPI, server: ls.LitServer):
        self._handler = RegularRequestHandler(api, server)

    async def submit(self, request):
        return await self._handler.handle_request(request, type(request))


class ToxicityServer(ls.LitServer):
    """`shutdown_timeout`: seconds requests in flight may take to finish once the server is stopped."""

    def __init__(self, *args, shutdown_timeout: float = 5.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.uvicorn_graceful_timeout = shutdown_timeout

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


def without_routes(app, paths: set[str]) -> None:
    """Removes LitServe's routes at `paths` (its `/` and `/predict`), which ours replace."""
    app.router.routes = [route for route in app.router.routes if getattr(route, "path", None) not in paths]


# -------------------------------------------------------------------------------------------- uvicorn
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

    def on_response_complete(self) -> None:
        """A next request whose head began before this response ended is read here, not in data_received
        (uvicorn then starts its keep-alive timer, which would close the connection without a word)."""
        super().on_response_complete()
        pending, _ = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and pending and self.head_deadline is None:
            self._unset_keepalive_if_required()
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
            self.send_raw(
                408, f"the request line and headers took over {self.head_timeout:g} s (--read-timeout)"
            )

    def send_400_response(self, msg: str) -> None:
        self.send_raw(
            400,
            f"invalid HTTP request: malformed, or its request line and headers are over "
            f"{self.config.h11_max_incomplete_event_size} bytes (--max-header-bytes)",
        )

    def send_raw(self, status: int, message: str) -> None:
        """A one-line JSON refusal written past h11, which cannot answer a request it has not read."""
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {STATUS_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


STATUS_REASONS = {400: "Bad Request", 408: "Request Timeout"}


def guarded_h11(head_timeout: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout": head_timeout})
