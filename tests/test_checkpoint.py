"""The checkpoint contract: safe loading (no code runs, nothing fetched, no size unchecked), what a checkpoint
says about itself, old layouts."""

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import ROOT
from toxicity.checkpoint import TrainedCheckpoint, thresholds_path
from toxicity.core.errors import CheckpointError
from toxicity.core.tags import LABELS
from toxicity.inference.scorer import ToxicityClassifier


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
    args = {
        "predict": ["--data", str(comments), "--output", str(tmp_path / "out.csv")],
        "evaluate": ["--output", str(tmp_path / "report")],
        "export": ["--format", "onnx", "--output", str(tmp_path / "onnx")],
    }[tool]
    result = subprocess.run(
        [sys.executable, "-m", f"toxicity.{tool}", "--ckpt", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refused" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_checkpoint_says_what_it_holds(tiny_checkpoint):
    checkpoint = TrainedCheckpoint.read(tiny_checkpoint)
    assert checkpoint.family == "encoder"
    assert checkpoint.tags == list(LABELS)
    assert (
        checkpoint.max_length == 48 == checkpoint.hparams["max_length"]
    )  # tiny_encoder.yaml's data.max_length
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
        ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu").predict_proba(texts), abs=1e-6
    )


# ------------------------------------------------------------------- checkpoints written by older versions
LEGACY = ROOT / "tests" / "fixtures" / "legacy"
FAMILIES = ["encoder", "text2text"]


def legacy_scores(family: str, path=None) -> np.ndarray:
    return ToxicityClassifier.from_checkpoint(path or LEGACY / f"{family}.ckpt", device="cpu").predict_proba(
        json.loads((LEGACY / "scores.json").read_text())["texts"]
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_legacy_checkpoints_score_as_they_did(family):
    expected = json.loads((LEGACY / "scores.json").read_text())["scores"][family]
    np.testing.assert_allclose(legacy_scores(family), expected, atol=1e-5)


def edited_legacy(family: str, folder, edit) -> Path:
    """A copy of a legacy checkpoint after `edit(contents)`."""
    contents = torch.load(LEGACY / f"{family}.ckpt", weights_only=True)
    edit(contents)
    path = folder / f"edited-{family}.ckpt"
    torch.save(contents, path)
    return path


# --------------------------------------------------------------------------- no network, no code, on load
@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test (HF_HUB_OFFLINE alone is read once, at import)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"loading a checkpoint tried to connect to {args[1:]!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_checkpoint_loads_offline_without_fetching_the_backbone_it_names(family, tmp_path, no_network):
    def name_a_stranger(contents):
        contents["hyper_parameters"]["backbone"] = "someone/evil-repo"

    path = edited_legacy(family, tmp_path, name_a_stranger)
    np.testing.assert_allclose(legacy_scores(family, path), legacy_scores(family), atol=1e-6)


def tokenizer_zip(family: str, extra: dict[str, bytes] | None = None, config_edit=None) -> bytes:
    """The legacy checkpoint's tokenizer zip, with `extra` files and its tokenizer_config.json edited."""
    original = zipfile.ZipFile(
        io.BytesIO(torch.load(LEGACY / f"{family}.ckpt", weights_only=True)["tokenizer"])
    )
    files = {name: original.read(name) for name in original.namelist()}
    if config_edit:
        settings = json.loads(files["tokenizer_config.json"])
        config_edit(settings)
        files["tokenizer_config.json"] = json.dumps(settings).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in (files | (extra or {})).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def with_tokenizer_zip(data: bytes):
    def edit(contents):
        contents["tokenizer"] = data

    return edit


CUSTOM_TOKENIZER = (
    "from transformers import BertTokenizerFast\nimport pathlib\npathlib.Path({marker!r}).touch()\n"
    "class EvilTokenizer(BertTokenizerFast):\n    pass\n"
)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tokenizer_carrying_code_is_refused_even_if_someone_answers_yes(family, tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    monkeypatch.setattr("builtins.input", lambda *args: "y")  # transformers' "run the custom code? [y/N]"

    def auto_map(settings):
        settings["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}

    with_code = tokenizer_zip(
        family, {"evil.py": CUSTOM_TOKENIZER.format(marker=str(marker)).encode()}, auto_map
    )
    path = edited_legacy(family, tmp_path, with_tokenizer_zip(with_code))
    with pytest.raises(
        CheckpointError, match=f"{re.escape(str(path))}: refused: .*'evil.py', which is not a tokenizer"
    ):
        ToxicityClassifier.from_checkpoint(path, device="cpu")
    path = edited_legacy(family, tmp_path, with_tokenizer_zip(tokenizer_zip(family, config_edit=auto_map)))
    with pytest.raises(CheckpointError, match="names custom code \\(auto_map in tokenizer_config.json\\)"):
        ToxicityClassifier.from_checkpoint(path, device="cpu")
    assert not marker.exists()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("bomb", "refusal"),
    [  # callables: the large ones are built only when run
        (
            lambda: {f"vocab{k}.txt": b"x" for k in range(20_000)},
            "holds 'vocab0.txt', which is not a tokenizer file",
        ),
        (lambda: {"tokenizer.json": b"\0" * (60 * 2**20)}, "unpacks to more than 50 MB"),
        (
            lambda: {"vocab.txt": b"\0" * (30 * 2**20), "merges.txt": b"\0" * (30 * 2**20)},
            "unpacks to more than 50 MB",
        ),
        (lambda: {"../tokenizer.json": b"{}"}, "holds '../tokenizer.json', which is not a tokenizer file"),
    ],
    ids=["many-files", "one-huge-file", "two-large-files", "path"],
)
def test_a_tokenizer_zip_bomb_is_refused_before_anything_is_written(bomb, refusal, tmp_path, monkeypatch):
    path = edited_legacy("encoder", tmp_path, with_tokenizer_zip(zip_of(bomb())))
    monkeypatch.setattr(tempfile, "TemporaryDirectory", lambda *a, **k: pytest.fail("the zip was extracted"))
    with pytest.raises(
        CheckpointError, match=f"{re.escape(str(path))}: refused: its embedded tokenizer {refusal}"
    ):
        TrainedCheckpoint.read(path).build_model()


# ------------------------------------------------------------------------------ sizes from the checkpoint
@pytest.mark.parametrize(("family", "key"), [("encoder", "encoder_config"), ("text2text", "model_config")])
def test_a_checkpoint_without_its_model_config_is_refused(family, key, tmp_path):
    def drop_config(contents):
        contents["hyper_parameters"][key] = None

    path = edited_legacy(family, tmp_path, drop_config)
    with pytest.raises(CheckpointError, match=f"refused: it carries no {key}"):
        TrainedCheckpoint.read(path).build_model()


HUGE_VOCABULARY = """
import resource, sys
from toxicity.core.errors import CheckpointError
from toxicity.checkpoint import TrainedCheckpoint
checkpoint = TrainedCheckpoint.read(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    checkpoint.build_model()
except CheckpointError as error:
    print("refused:", error)
print("peak growth MB", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize(("family", "key"), [("encoder", "encoder_config"), ("text2text", "model_config")])
def test_a_huge_size_in_the_config_is_refused_before_it_is_allocated(family, key, tmp_path):
    """A vocabulary of 20,000,000 rows would take 640 MB (hidden size 8) before any check."""

    def huge_vocabulary(contents):
        contents["hyper_parameters"][key]["vocab_size"] = 20_000_000

    path = edited_legacy(family, tmp_path, huge_vocabulary)
    result = subprocess.run(
        [sys.executable, "-c", HUGE_VOCABULARY, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "refused: its model config makes" in result.stdout and "20000000" in result.stdout, result.stdout
    assert float(result.stdout.split("peak growth MB")[1]) < 200, result.stdout


# ----------------------------------------------------------------------------------------- no absolute paths
def test_a_checkpoint_records_its_run_folder_relative_to_itself(tiny_checkpoint, tmp_path):
    contents = torch.load(tiny_checkpoint, weights_only=True)
    assert "log_dir" not in contents and contents["log_dir_relative"] == ".."
    run = tiny_checkpoint.resolve().parent.parent
    assert TrainedCheckpoint.read(tiny_checkpoint).log_dir == str(run)  # through the best-checkpoint link
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    assert TrainedCheckpoint.read(moved / "checkpoints" / tiny_checkpoint.resolve().name).log_dir == str(
        moved
    )


def test_an_older_checkpoint_keeps_its_absolute_log_dir():
    assert (
        TrainedCheckpoint.read(LEGACY / "encoder.ckpt").log_dir
        == "/tmp/legacy/out/run_encoder/logs/toxic-comments/version_0"
    )


# ------------------------------------------------------------------------ weights a diverged run leaves
QUERY = "encoder.encoder.layer.0.attention.self.query.weight"
REFUSED_NAN = (
    "refused: tensor {name} has {count} NaN/inf values{more}; the run diverged or the file is damaged. "
    "Use an earlier checkpoint, or train again with a lower --model.learning_rate."
)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_weights_holding_nan_or_inf_are_refused_when_read_naming_the_tensor(bad, tmp_path):
    def diverge(contents):
        contents["state_dict"][QUERY][0, :3] = bad
        contents["state_dict"]["head.weight"][1, 1] = bad

    path = edited_legacy("encoder", tmp_path, diverge)
    with pytest.raises(CheckpointError) as refused:
        TrainedCheckpoint.read(path)
    assert str(refused.value) == f"{path}: " + REFUSED_NAN.format(
        name=QUERY, count=3, more=" (and 1 other tensor)"
    )


def test_the_tools_and_the_server_refuse_a_diverged_checkpoint_before_scoring(tmp_path, capsys):
    from toxicity.predict import main as predict
    from toxicity.serving.app import model_info

    path = edited_legacy(
        "encoder", tmp_path, lambda contents: contents["state_dict"]["head.bias"].fill_(np.nan)
    )
    comments = tmp_path / "in.csv"
    comments.write_text("comment_text\nhello\n")
    with pytest.raises(SystemExit) as stopped:
        predict(["--ckpt", str(path), "--data", str(comments), "--output", str(tmp_path / "out.csv")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert stopped.value.code == 2 and len(errors) == 1
    assert errors[0] == f"error: {path}: " + REFUSED_NAN.format(name="head.bias", count=6, more="")
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(CheckpointError, match="tensor head.bias has 6 NaN/inf values"):
        model_info(str(path))  # what the server reads before it starts: it never comes up healthy


# ------------------------------------------------------------------------- weights the model does not make
@pytest.mark.parametrize("family", FAMILIES)
def test_a_weight_its_model_does_not_make_is_refused_naming_it(family, tmp_path):
    def add_weights(contents):
        contents["state_dict"]["extra.weight"] = torch.zeros(2)
        contents["state_dict"]["extra.bias"] = torch.zeros(2)

    path = edited_legacy(family, tmp_path, add_weights)
    with pytest.raises(CheckpointError) as refused:
        TrainedCheckpoint.read(path).build_model()
    assert str(refused.value).startswith(
        f"{path}: refused: it holds weights 'extra.bias', 'extra.weight', which its model config does not"
    )
