"""experiments/notebooks/load_best_checkpoint.ipynb runs top to bottom against a checkpoint (nbclient)."""

import pytest

from tests.helpers.notebook import run_notebook
from toxicity.core.tags import LABELS


@pytest.mark.parametrize("fixture", ["tiny_checkpoint", "tiny_text2text_checkpoint"])
def test_notebook_scores_comments_and_reports_per_tag(fixture, request, monkeypatch):
    """For either model family: the notebook reads the checkpoint's family and needs nothing else."""
    tiny_checkpoint = request.getfixturevalue(fixture)
    monkeypatch.setenv("TOXICITY_CHECKPOINT", str(tiny_checkpoint))  # the kernel inherits the environment
    text = run_notebook()
    assert str(tiny_checkpoint) in text and "tuned thresholds: no" in text
    assert ("text2text model" if "text2text" in fixture else "encoder model") in text
    assert "You are a complete idiot" in text  # the scores table
    report = text[text.index("validation rows") :]
    assert "precision" in report and "recall" in report and "threshold 0.5" in report
    assert all(tag in report for tag in LABELS)
