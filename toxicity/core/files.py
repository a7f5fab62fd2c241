"""Writing outputs safely: atomically (temp file, then rename), never over the user's input."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_FORMATS = (".csv", ".tsv", ".parquet", ".jsonl")  # the files scores are written as
DEFAULT_CHUNK_ROWS = 10_000  # rows read from an input file at a time (scoring keeps memory flat)
OLD_PARTIAL_AGE_S = 3600  # a PID-less partial untouched this long is from a dead run, not a slow writer


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    A crash or Ctrl-C leaves no partial file at `path` (and removes the temporary one). SIGKILL cannot be
    caught, so the temporary name `.{name}.{pid}-{random}.partial` carries the writer's PID, and the next
    write of the same output removes partials whose writer is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-", suffix=".partial", dir=path.parent
    )
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual permissions
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def remove_stale_partials(path: str | Path) -> int:
    """Removes the partials of `path` left by killed runs; returns how many.

    Only this output's partials are matched, by an exact pattern: mkstemp's random part holds no '.' or '-',
    so `.out.csv.gz.…` (another output) never matches `out.csv`. A partial is stale when its PID is not a
    running process, or, for a PID-less one from an older version, when it is older than an hour. The PID
    check assumes the writers run on this machine (PIDs of another host sharing the folder mean nothing here).
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?:(\d+)-)?[a-z0-9_]+\.partial")
    removed = 0
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        match = pattern.fullmatch(candidate.name)
        if match and _is_stale(candidate, match.group(1)):
            with contextlib.suppress(FileNotFoundError):  # another run may be cleaning up at the same time
                candidate.unlink()
                removed += 1
    if removed:
        log.warning(
            "Removed %d stale partial file(s) of %s left by killed runs in %s.",
            removed,
            path.name,
            path.parent,
        )
    return removed


def _is_stale(partial: Path, pid: str | None) -> bool:
    if pid is not None:
        return not _is_running(int(pid))
    try:
        return time.time() - partial.stat().st_mtime > OLD_PARTIAL_AGE_S
    except FileNotFoundError:
        return False


def _is_running(pid: int) -> bool:
    """Whether a process `pid` exists (signal 0 checks without sending anything); another user's counts.

    On Windows os.kill terminates the process whatever the signal, so there every PID counts as running.
    """
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, read 1 MiB at a time: memory stays flat for any size."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
