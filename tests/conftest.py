"""Fixtures: tiny checkpoints of both families, trained once per session."""

from pathlib import Path

import pytest

from tests.helpers import TINY_TEXT2TEXT_YAML, fit_args, make_comments


@pytest.fixture
def comments_csv(tmp_path) -> Path:
    path = tmp_path / "comments.csv"
    make_comments().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A best checkpoint of the tiny encoder trained on `make_comments()` (train, val and data in its
    folder)."""
    from toxicity.fit import main

    folder = tmp_path_factory.mktemp("tiny_run")
    data = folder / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    main(fit_args(folder, data, "--trainer.max_epochs", "3"))
    return folder / "checkpoints" / "best-checkpoint.ckpt"


@pytest.fixture(scope="session")
def tiny_text2text_checkpoint(tmp_path_factory) -> Path:
    """A best checkpoint of the tiny random T5 text-to-text tagger trained on `make_comments()`."""
    from toxicity.fit import main

    folder = tmp_path_factory.mktemp("tiny_text2text_run")
    data = folder / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    main(fit_args(folder, data, "--trainer.max_epochs", "3", config=TINY_TEXT2TEXT_YAML))
    return folder / "checkpoints" / "best-checkpoint.ckpt"
