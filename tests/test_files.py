import os

import pytest

from toxicity.files import atomic_output, refuse_to_overwrite, write_text_atomically


def test_atomic_output_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
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


def test_refuse_to_overwrite_input_or_existing_output(tmp_path):
    given = tmp_path / "comments.csv"
    given.write_text("x")
    with pytest.raises(FileExistsError, match="this is the input file"):
        refuse_to_overwrite(given, given, overwrite=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        refuse_to_overwrite(given)
    refuse_to_overwrite(given, overwrite=True)
    refuse_to_overwrite(tmp_path / "new.csv", given)
