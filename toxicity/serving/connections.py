"""Connection-level protection under uvicorn: a deadline for request heads, and API keys redacted from
logs."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from typing import ClassVar

import h11
import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol


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
