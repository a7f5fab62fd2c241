"""Writing outputs safely: atomically (temp file, then rename), never over the user's input."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    A crash or Ctrl-C leaves no partial file at `path` (and removes the temporary one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual permissions
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomically(path: str | Path, text: str) -> None:
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def refuse_to_overwrite(output: str | Path, *inputs: str | Path, overwrite: bool = False) -> None:
    """Raises if `output` is one of the inputs, or already exists and `overwrite` is not set."""
    output = Path(output)
    for given in inputs:
        if Path(given).resolve() == output.resolve():
            raise FileExistsError(f"{output}: this is the input file; choose another output path.")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; choose another path or pass --overwrite.")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
