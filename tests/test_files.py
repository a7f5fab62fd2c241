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
    write_text_atomically(target, "new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_refuse_to_overwrite_input_or_existing_output(tmp_path):
    given = tmp_path / "comments.csv"
    given.write_text("x")
    with pytest.raises(FileExistsError, match="this is the input file"):
        refuse_to_overwrite(given, given, overwrite=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        refuse_to_overwrite(given)
    refuse_to_overwrite(given, overwrite=True)
    refuse_to_overwrite(tmp_path / "new.csv", given)
