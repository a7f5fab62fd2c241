import logging
import os
import subprocess
import sys
import time

import pytest

from toxicity.core.files import atomic_output, refuse_to_overwrite, write_text_atomically


def test_atomic_output_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "previous" and list(tmp_path.iterdir()) == [target]
    previous_umask = os.umask(0o022)
    try:
        write_text_atomically(target, "new")
    finally:
        os.umask(previous_umask)
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o644  # like any file the user writes, not mkstemp's 0600


def test_atomic_output_removes_stale_partials_of_its_own_output_only(tmp_path, caplog):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its PID now names no process
    dead_pid = finished.pid
    live_pid = os.getpid()
    names = {
        "stale": f".out.csv.{dead_pid}-abcd1234.partial",
        "live": f".out.csv.{live_pid}-abcd1234.partial",
        "other output": f".other.csv.{dead_pid}-abcd1234.partial",
        "longer output name": f".out.csv.gz.{dead_pid}-abcd1234.partial",
        "old and stale": ".out.csv.abcd1234.partial",
        "old but recent": ".out.csv.efgh5678.partial",
    }
    for name in names.values():
        (tmp_path / name).write_text("half")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / names["old and stale"], (two_hours_ago, two_hours_ago))
    with (
        caplog.at_level(logging.INFO, logger="toxicity.core.files"),
        atomic_output(tmp_path / "out.csv") as temporary,
    ):
        assert temporary.name.startswith(f".out.csv.{live_pid}-")
        temporary.write_text("new")
    left = {path.name for path in tmp_path.iterdir()}
    assert left == {"out.csv", *names.values()} - {names["stale"], names["old and stale"]}
    assert f"Removed 2 stale partial file(s) of out.csv left by killed runs in {tmp_path}" in caplog.text


def test_refuse_to_overwrite_input_or_existing_output(tmp_path):
    given = tmp_path / "comments.csv"
    given.write_text("x")
    with pytest.raises(FileExistsError, match="this is the input file"):
        refuse_to_overwrite(given, given, overwrite=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        refuse_to_overwrite(given)
    refuse_to_overwrite(given, overwrite=True)
    refuse_to_overwrite(tmp_path / "new.csv", given)
