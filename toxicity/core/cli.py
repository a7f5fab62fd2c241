"""The shell shared by the argparse tools (predict, evaluate, export): logging, and exit codes.

Exit codes: 0 done; 2 bad input (a file, column, checkpoint or option the user gave), with one line on
stderr that says what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

from toxicity.core.errors import CheckpointError, DataError

BAD_INPUT = 2
USER_ERRORS = (DataError, CheckpointError, FileExistsError, ValueError, TypeError)

Result = TypeVar("Result")


class BadInput(SystemExit):
    """Exit status 2; `str()` is the one-line message already printed on stderr."""

    def __init__(self, message: str):
        super().__init__(BAD_INPUT)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str) -> BadInput:
    """Prints `error: message` on stderr and returns the exception to raise."""
    line = f"error: {message}"
    print(line, file=sys.stderr)
    return BadInput(line)


def setup_logging(level: int = logging.WARNING) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its event-file reader is chatty at INFO


def run_tool(
    work: Callable[[], Result],
    level: int = logging.WARNING,
    errors: tuple[type[BaseException], ...] = USER_ERRORS,
) -> Result:
    """Runs a tool's work; a user error becomes one line on stderr and exit status 2, not a traceback."""
    setup_logging(level)
    try:
        return work()
    except errors as error:
        raise fail(str(error)) from None


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks run (partial outputs are removed)."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
