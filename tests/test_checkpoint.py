"""The checkpoint contract: safe loading (no code runs), what a checkpoint says about itself, old layouts."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from toxicity.checkpoint import CheckpointError, TrainedCheckpoint, thresholds_path
from toxicity.classifier import ToxicityClassifier
from toxicity.labels import LABELS


class RunsCode:
    """Unpickling this runs a shell command: what a tampered checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def tampered(tiny_checkpoint, tmp_path):
    """A copy of a real checkpoint with a code-running payload added; returns (path, marker file)."""
    contents = torch.load(tiny_checkpoint, weights_only=True)
    marker = tmp_path / "payload-ran"
    contents["hyper_parameters"]["note"] = RunsCode(marker)
    path = tmp_path / "tampered.ckpt"
    torch.save(contents, path)
    return path, marker


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tampered):
    path, marker = tampered
    with pytest.raises(CheckpointError, match="refused: it holds pickled Python objects"):
        ToxicityClassifier.from_checkpoint(path, device="cpu")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load does run it
    assert marker.exists()


@pytest.mark.parametrize("tool", ["predict", "evaluate", "export"])
def test_every_tool_refuses_it_with_exit_2(tampered, tmp_path, tool):
    path, marker = tampered
    comments = tmp_path / "in.csv"
    comments.write_text("comment_text\nhello\n")
    args = {"predict": ["--input", str(comments), "--output", str(tmp_path / "out.csv")],
            "evaluate": ["--out", str(tmp_path / "report")],
            "export": ["--format", "onnx", "--out", str(tmp_path / "onnx")]}[tool]
    result = subprocess.run([sys.executable, "-m", f"toxicity.{tool}", "--ckpt", str(path), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refused" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_checkpoint_says_what_it_holds(tiny_checkpoint):
    checkpoint = TrainedCheckpoint.read(tiny_checkpoint)
    assert checkpoint.family == "encoder"
    assert checkpoint.tags == list(LABELS)
    assert checkpoint.max_length == 48 == checkpoint.hparams["max_length"]  # tiny_encoder.yaml's data.max_length
    assert checkpoint.data.val_fraction == 0.1 and checkpoint.data.data_path.endswith("comments.csv")
    assert checkpoint.thresholds_path == thresholds_path(tiny_checkpoint.resolve())
    assert checkpoint.thresholds_path.parent.name == "checkpoints"  # beside the run's file, not the link
    model = checkpoint.build_model()
    assert not model.training and model.labels == list(LABELS)


def test_an_older_checkpoint_still_loads(tiny_checkpoint, tmp_path):
    """Checkpoints written before the model stored max_length and its family: read from the data settings."""
    contents = torch.load(tiny_checkpoint, weights_only=True)
    del contents["hyper_parameters"]["max_length"], contents["toxicity_family"]
    old = tmp_path / "old.ckpt"
    torch.save(contents, old)
    checkpoint = TrainedCheckpoint.read(old)
    assert checkpoint.family == "encoder" and checkpoint.max_length == 48
    texts = ["you idiot number 3", "thanks for the edit"]
    assert ToxicityClassifier.from_checkpoint(old, device="cpu").predict_proba(texts) == pytest.approx(
        ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu").predict_proba(texts), abs=1e-6)
