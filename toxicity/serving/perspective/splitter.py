"""Sentence splitting off the HTTP event loop. pysbd is pure Python: in a thread it still holds the GIL the
event loop needs (four span clients took /health from 1 ms to 300 ms that way), so each HTTP process
splits in a child process of its own, one comment at a time, with a time limit; a comment over the limit
is refused and the child replaced. The splitting itself is linear in the comment's length
(text.sentence_spans), so the limit is a safety net, not the rule."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.pool
import os
import threading

from toxicity.serving.perspective.text import Span, sentence_spans
from toxicity.serving.processes import die_with_parent
from toxicity.serving.schemas import Refused

TIME_LIMIT_S = 5.0


class SentenceSplitter:
    """Built before LitServe forks its HTTP processes; each process starts its own child on first use."""

    def __init__(self, time_limit: float = TIME_LIMIT_S):
        self.time_limit = time_limit
        self._pool: multiprocessing.pool.Pool | None = None
        self._pid: int | None = None
        self._starting = threading.Lock()

    def _pool_here(self) -> multiprocessing.pool.Pool:
        with self._starting:
            if self._pid != os.getpid():
                # spawn, not fork: this process runs threads, which a forked child must not inherit
                context = multiprocessing.get_context("spawn")
                self._pool = context.Pool(1, initializer=die_with_parent, initargs=(os.getpid(),))
                self._pid = os.getpid()
            return self._pool

    async def spans(self, text: str, most: int) -> list[Span]:
        pending = self._pool_here().apply_async(sentence_spans, (text, most))
        try:
            return await asyncio.to_thread(pending.get, self.time_limit)
        except multiprocessing.TimeoutError:
            self.restart()
            raise Refused(
                503,
                f"splitting the comment into sentences took over {self.time_limit:g} s; send it without "
                "spanAnnotations, or shorter",
            ) from None

    def restart(self) -> None:
        with self._starting:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.terminate()
            self._pid = None
