"""The shell shared by the argparse commands: the one vocabulary of flags, logging, and exit codes.

Every command builds its parser with `command_parser` and spells a shared notion with the `add_*` function
below, so the checkpoint, the data, the output, overwriting, the accelerator and threads read the same
everywhere (docs/commands.md has the table; tests/test_cli.py reads every parser).

Exit codes: 0 done; 2 bad input (a file, column, checkpoint or option the user gave), with one line on
stderr that says what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from toxicity.core.errors import CheckpointError, DataError

BAD_INPUT = 2
USER_ERRORS = (DataError, CheckpointError, FileExistsError, ValueError, TypeError)

Result = TypeVar("Result")

BEST_CHECKPOINT = "checkpoints/best-checkpoint.ckpt"  # the link `toxicity fit` makes to the run's best
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # Lightning's names; gpu and cuda mean the same


# ------------------------------------------------------------------------------------------ the vocabulary
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' line breaks and shows every option's default (argparse's
    own ArgumentDefaultsHelpFormatter skips the options that have no help text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
        if not shown or "default" in text:
            return text
        return f"{text} (default: %(default)s)".lstrip()


def command_parser(name: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of `toxicity <name>`: its description, every default shown, and examples at the end."""
    return argparse.ArgumentParser(
        prog=f"toxicity {name}",
        description=description,
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # one spelling: --out is not taken for --output
    )


def add_ckpt(parser, help: str = "a checkpoint written by `toxicity fit`", **options) -> None:
    """--ckpt: defaults to the link fit makes to the best checkpoint of the latest run."""
    parser.add_argument("--ckpt", default=BEST_CHECKPOINT, metavar="CKPT", help=help, **options)


def add_data(parser, help: str, **options) -> None:
    """--data: the comments a command reads (a file, a Kaggle folder or zip, a TweetEval folder)."""
    parser.add_argument("--data", metavar="PATH", help=help, **options)


def add_output(parser, help: str, **options) -> None:
    """--output: what a command writes (a file or a folder, as its help says); never overwritten unasked."""
    parser.add_argument("--output", metavar="PATH", help=help, **options)


def add_overwrite(parser, what: str = "--output") -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")


def add_accelerator(parser) -> None:
    parser.add_argument(
        "--accelerator",
        choices=ACCELERATORS,
        default="auto",
        help="where the model runs (auto: a GPU when there is one, else the CPU)",
    )


def add_threads(parser, help: str = "CPU threads for the model (default: torch's, one per core)") -> None:
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=help)


def add_batch_size(parser, default: int = 64) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=default, help="texts scored at once")


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {value!r}")
    return int(value)


def torch_device(accelerator: str) -> str | None:
    """The torch device of one process for an --accelerator value (None: auto, a GPU when there is one)."""
    return {"auto": None, "gpu": "cuda"}.get(accelerator, accelerator)


def use_threads(threads: int | None) -> None:
    """Applies --threads (torch is imported here: call it when the command runs, not for --help)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


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
