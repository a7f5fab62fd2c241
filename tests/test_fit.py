"""End to end: `python -m toxicity.fit` on a small fixture with a tiny random encoder (no download)."""

import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, fit_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoTokenizer

from toxicity.backbone import DEFAULT_BACKBONE, resolve_backbone
from toxicity.fit import main
from toxicity.model import ToxicCommentTagger


def test_fit_writes_checkpoints_and_tensorboard_and_reloads_offline(tmp_path, comments_csv, monkeypatch, capsys):
    # the backbone is a folder that is gone when the checkpoint is loaded: the checkpoint must carry it all
    backbone = tmp_path / "my-backbone"
    AutoTokenizer.from_pretrained(resolve_backbone(DEFAULT_BACKBONE)).save_pretrained(backbone)
    cli = main(fit_args(tmp_path, comments_csv, "--model.backbone", str(backbone)))

    best, last = tmp_path / "checkpoints" / "best-checkpoint.ckpt", tmp_path / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file()
    run = tmp_path / "logs" / "toxic-comments" / "version_0"
    assert list(run.glob("events.out.tfevents.*")) and (run / "config.yaml").is_file()
    summary = capsys.readouterr().out
    assert "Best checkpoint:" in summary and "val AUROC" in summary and "identity_hate" in summary
    scalars = set()
    for events in run.glob("events.out.tfevents.*"):
        scalars |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    expected = {"train_loss", "val_loss", "val_auroc_mean", "train_auroc_mean", "val_auroc_toxic", "lr-AdamW/pg1"}
    assert expected <= scalars, scalars

    shutil.rmtree(backbone)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reloaded = ToxicCommentTagger.load_from_checkpoint(best).eval()
    trained = cli.model.eval()  # holds the best weights: the final validation loaded them
    ids = reloaded.tokenizer(["you idiot", "thanks for the edit"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(reloaded(ids["input_ids"], ids["attention_mask"]),
                           trained(ids["input_ids"], ids["attention_mask"]))
    assert reloaded.labels == cli.model.labels


def test_single_tag_training(tmp_path, comments_csv):
    cli = main(fit_args(tmp_path, comments_csv, "--data.label_columns", "[toxic]", "--trainer.max_epochs", "1"))
    assert cli.model.labels == ["toxic"] and cli.model.head.out_features == 1
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").is_file()


def test_resume_from_last_continues_the_run(tmp_path, comments_csv):
    first = main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1"))
    steps_per_epoch = first.trainer.global_step
    last = tmp_path / "checkpoints" / "last.ckpt"
    resumed = main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    assert resumed.trainer.current_epoch == 2
    assert resumed.trainer.global_step == 2 * steps_per_epoch


@pytest.mark.parametrize(("recipe", "expected"), [
    ("demo", ["max_epochs: 10", "backbone: sentence-transformers/all-MiniLM-L6-v2"]),
    ("cpu_minilm", ["n_clean_train: 15000", "max_length: 128", "pooling: mean"]),
    ("bert_balanced", ["backbone: bert-base-uncased", "max_length: 512", "batch_size: 12",
                       "warmup_fraction: 0.2", "learning_rate: 2.0e-05", "n_clean_train: 15000"]),
])
def test_every_recipe_parses_with_its_settings(recipe, expected):
    out = subprocess.run([sys.executable, "-m", "toxicity.fit", "--config", f"experiments/{recipe}.yaml",
                          "--print_config"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for setting in expected + ["monitor: val_loss", "name: toxic-comments", "filename: best-checkpoint"]:
        assert setting in out, setting


def test_cli_rejects_unknown_options():
    result = subprocess.run([sys.executable, "-m", "toxicity.fit", "--model.no_such_option", "1"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "no_such_option" in result.stderr


def test_ddp_two_cpu_processes_train_and_checkpoint(tmp_path, comments_csv):
    args = fit_args(tmp_path, comments_csv, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1")
    result = subprocess.run([sys.executable, "-m", "toxicity.fit", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in result.stderr or "MEMBER: 2/2" in result.stderr + result.stdout
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
