"""End to end: `python -m toxicity.fit` on a small fixture with a tiny random encoder (no download)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoTokenizer

from tests.helpers import ROOT, fit_args
from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.backbone import DEFAULT_BACKBONE, resolve_backbone
from toxicity.fit import main
from toxicity.models.encoder import ToxicCommentTagger


def test_fit_writes_checkpoints_and_tensorboard_and_reloads_offline(
    tmp_path, comments_csv, monkeypatch, capsys
):
    # the backbone is a folder that is gone when the checkpoint is loaded: the checkpoint must carry it all
    backbone = tmp_path / "my-backbone"
    AutoTokenizer.from_pretrained(resolve_backbone(DEFAULT_BACKBONE)).save_pretrained(backbone)
    cli = main(fit_args(tmp_path, comments_csv, "--model.backbone", str(backbone)))

    run = tmp_path / "logs" / "toxic-comments" / "version_0"
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file()
    link = tmp_path / "checkpoints" / "best-checkpoint.ckpt"
    assert link.is_symlink() and link.resolve() == best.resolve()
    assert list(run.glob("events.out.tfevents.*")) and (run / "config.yaml").is_file()
    summary = capsys.readouterr().out
    assert "Best checkpoint:" in summary and "val AUROC" in summary and "identity_hate" in summary
    scalars = set()
    for events in run.glob("events.out.tfevents.*"):
        scalars |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    expected = {
        "train_loss",
        "val_loss",
        "val_auroc_mean",
        "train_auroc_mean",
        "val_auroc_toxic",
        "lr-AdamW/pg1",
    }
    assert expected <= scalars, scalars

    shutil.rmtree(backbone)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reloaded = ToxicCommentTagger.load_from_checkpoint(best).eval()
    trained = cli.model.eval()  # holds the best weights: the final validation loaded them
    ids = reloaded.tokenizer(["you idiot", "thanks for the edit"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(
            reloaded(ids["input_ids"], ids["attention_mask"]),
            trained(ids["input_ids"], ids["attention_mask"]),
        )
    assert reloaded.labels == cli.model.labels


def test_single_tag_training(tmp_path, comments_csv):
    cli = main(
        fit_args(tmp_path, comments_csv, "--data.label_columns", "[toxic]", "--trainer.max_epochs", "1")
    )
    assert cli.model.labels == ["toxic"] and cli.model.head.out_features == 1
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").is_file()
    assert TrainedCheckpoint.read(tmp_path / "checkpoints" / "best-checkpoint.ckpt").tags == ["toxic"]


def test_resume_from_last_continues_the_run_in_its_folder(tmp_path, comments_csv):
    first = main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1"))
    steps_per_epoch = first.trainer.global_step
    run = tmp_path / "logs" / "toxic-comments" / "version_0"
    resumed = main(
        fit_args(
            tmp_path,
            comments_csv,
            "--trainer.max_epochs",
            "2",
            "--ckpt",
            str(run / "checkpoints" / "last.ckpt"),
        )
    )
    assert resumed.trainer.current_epoch == 2
    assert resumed.trainer.global_step == 2 * steps_per_epoch
    assert Path(resumed.trainer.log_dir).resolve() == run.resolve()  # the same run, not version_1
    assert not (run.parent / "version_1").exists()
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").resolve().parent == (
        run / "checkpoints"
    ).resolve()


def test_two_runs_keep_their_own_checkpoints_and_the_link_follows_the_newest(tmp_path, comments_csv):
    main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1"))
    runs = tmp_path / "logs" / "toxic-comments"
    first_best = runs / "version_0" / "checkpoints" / "best.ckpt"
    first_bytes = first_best.read_bytes()
    main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1", "--seed_everything", "7"))
    second_best = runs / "version_1" / "checkpoints" / "best.ckpt"
    assert first_best.read_bytes() == first_bytes  # the first run's model is still there, untouched
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").resolve() == second_best.resolve()

    best, last = (
        torch.load(second_best, weights_only=True),
        torch.load(second_best.with_name("last.ckpt"), weights_only=True),
    )
    assert "optimizer_states" not in best and "state_dict" in best and "tokenizer" in best  # for loading
    assert "optimizer_states" in last and "lr_schedulers" in last  # the full state, for resuming
    assert second_best.stat().st_size < second_best.with_name("last.ckpt").stat().st_size


def test_a_real_file_at_the_link_path_is_never_replaced(tmp_path, comments_csv):
    older = tmp_path / "checkpoints" / "best-checkpoint.ckpt"
    older.parent.mkdir()
    older.write_bytes(b"a model from an older toxicity")
    main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1"))
    assert older.read_bytes() == b"a model from an older toxicity" and not older.is_symlink()


def fit_in_subprocess(args: list[str]) -> subprocess.CompletedProcess:
    """`python -m toxicity.fit ARGS` run as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "toxicity.fit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def refusal_of_fit(args: list[str]) -> str:
    """The one `error:` line of `python -m toxicity.fit ARGS`; asserts exit 2 and no traceback."""
    result = fit_in_subprocess(args)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("comment_text,toxic\nyou idiot,1\nthanks,0\n", "validation split is empty"),
        ("comment_text,toxic\nyou idiot,yes\nthanks,0\n" * 6, "'yes'"),
    ],
)
def test_bad_data_is_one_line_exit_2_and_no_run_folder(tmp_path, rows, message):
    data = tmp_path / "comments.csv"
    data.write_text(rows)
    error = refusal_of_fit(fit_args(tmp_path, data, "--data.label_columns", "[toxic]"))
    assert message in error and str(data) in error
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("demo", ["max_epochs: 10", "backbone: sentence-transformers/all-MiniLM-L6-v2"]),
        ("cpu_minilm", ["n_clean_train: 15000", "max_length: 128", "pooling: pooler", "layer_decay: 0.8"]),
        (
            "bert_balanced",
            [
                "backbone: bert-base-uncased",
                "max_length: 512",
                "batch_size: 12",
                "warmup_fraction: 0.2",
                "learning_rate: 2.0e-05",
                "n_clean_train: 15000",
            ],
        ),
    ],
)
def test_every_recipe_parses_with_its_settings(recipe, expected):
    printed = fit_in_subprocess(["--config", f"experiments/{recipe}.yaml", "--print_config"])
    assert printed.returncode == 0, printed.stderr[-3000:]
    out = printed.stdout
    for setting in expected + [
        "monitor: val_loss",
        "name: toxic-comments",
        "filename: best",
        "save_weights_only: true",
        "best_link: checkpoints/best-checkpoint.ckpt",
    ]:
        assert setting in out, setting


def test_cli_rejects_unknown_options():
    result = fit_in_subprocess(["--model.no_such_option", "1"])
    assert result.returncode != 0 and "no_such_option" in result.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_checkpoint(tmp_path, comments_csv):
    args = fit_args(
        tmp_path,
        comments_csv,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_epochs",
        "1",
    )
    result = fit_in_subprocess(list(args))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in result.stderr or "MEMBER: 2/2" in result.stderr + result.stdout
    run = tmp_path / "logs" / "toxic-comments" / "version_0" / "checkpoints"
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").resolve() == (run / "best.ckpt").resolve()


def test_max_steps_inside_an_epoch_validates_and_keeps_a_linked_best_model(tmp_path, comments_csv, capsys):
    # before: early stopping raised for want of val_loss at the epoch end, and no model was saved
    cli = main(fit_args(tmp_path, comments_csv, "--trainer.max_steps", "1"))
    assert cli.trainer.global_step == 1 and cli.trainer.num_training_batches > 1  # stopped inside the epoch
    run = tmp_path / "logs" / "toxic-comments" / "version_0" / "checkpoints"
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").resolve() == (run / "best.ckpt").resolve()
    assert (run / "last.ckpt").is_file() and "Best checkpoint:" in capsys.readouterr().out


def test_a_run_without_validation_says_why_it_has_no_best_model(tmp_path, comments_csv, caplog):
    main(
        fit_args(
            tmp_path,
            comments_csv,
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_val_batches",
            "0",
            "--early_stopping.strict",
            "false",
        )
    )
    assert not (tmp_path / "checkpoints" / "best-checkpoint.ckpt").exists()
    assert "validation never ran" in caplog.text and "last.ckpt" in caplog.text


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        (
            "comment_text,share\n" + "".join(f"text {k},0.{k}\n" for k in range(10)),
            ["--data.label_columns", "[share]", "--data.binarise_at", "1.5"],
            "--data.binarise_at 1.5",
        ),
        (
            "comment_text,class\n" + "".join(f"text {k},{k % 2}\n" for k in range(10)),
            ["--data.label_columns", "[toxic]", "--data.label_from", "class:2=toxic"],
            "[2] match no row of column 'class'",
        ),
        (
            "comment_text,class\n" + "".join(f"text {k},{'' if k == 3 else k % 2}\n" for k in range(10)),
            ["--data.label_columns", "[toxic]", "--data.label_from", "class:1=toxic"],
            "empty at data row 4 (line 5)",
        ),
    ],
)
def test_tag_rules_that_give_no_positives_are_refused_with_exit_2(tmp_path, rows, extra, message):
    data = tmp_path / "comments.csv"
    data.write_text(rows)
    assert message in refusal_of_fit(fit_args(tmp_path, data, *extra))
    assert not (tmp_path / "logs").exists()


def test_a_max_length_beyond_the_encoders_positions_is_one_line_and_exit_2(tmp_path, comments_csv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, comments_csv, "--data.max_length", "1024"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: max_length 1024 is more than the 512 positions the encoder of "
        "sentence-transformers/all-MiniLM-L6-v2 can embed; use --data.max_length 512 or less."
    )


def test_a_config_naming_a_class_path_from_before_the_move_gets_the_new_one(tmp_path, comments_csv, capsys):
    saved = ROOT / "tests" / "fixtures" / "legacy" / "encoder.config.yaml"  # a run config written by 0.1
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(saved), "--data.data_path", str(comments_csv)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {saved} names toxicity.model.ToxicCommentTagger, which is now "
        "toxicity.models.encoder.ToxicCommentTagger; write the new class path there."
    )


# ------------------------------------------------------------------------------------------ divergence
def error_line(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def finite_checkpoints(folder: Path) -> list[str]:
    """Names of the checkpoints under `folder`, each asserted to hold finite weights only."""
    from toxicity.models.base import non_finite_tensors

    for path in folder.rglob("*.ckpt"):
        assert not non_finite_tensors(torch.load(path, weights_only=True)["state_dict"]), path
    return sorted(path.name for path in folder.rglob("*.ckpt"))


def test_a_diverging_run_stops_at_the_step_with_a_nan_loss_and_writes_no_nan_checkpoint(
    tmp_path, comments_csv, capsys
):
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, comments_csv, "--model.learning_rate", "1e30"))
    assert stopped.value.code == 2
    error = error_line(capsys)
    assert re.match(
        r"error: training diverged: the loss is (nan|inf) at global step [1-9]\d* \(epoch 0\)", error
    )
    assert "lower --model.learning_rate" in error and "No best checkpoint was written" in error
    assert finite_checkpoints(tmp_path) == []
    assert not (tmp_path / "checkpoints" / "best-checkpoint.ckpt").exists()


def test_a_nan_loss_later_in_the_run_keeps_the_best_checkpoint_written_before_it(
    tmp_path, comments_csv, capsys, monkeypatch
):
    run = tmp_path / "logs" / "toxic-comments" / "version_0" / "checkpoints"
    shared_step = ToxicCommentTagger._shared_step
    before_nan = {}

    def nan_in_the_second_epoch(self, batch, stage):
        loss = shared_step(self, batch, stage)
        if stage != "train" or self.current_epoch == 0:
            return loss
        before_nan.setdefault("step", self.global_step)
        before_nan.setdefault("best", (run / "best.ckpt").read_bytes())
        return loss * float("nan")

    monkeypatch.setattr(ToxicCommentTagger, "_shared_step", nan_in_the_second_epoch)
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "3"))
    assert stopped.value.code == 2
    assert error_line(capsys) == (
        f"error: training diverged: the loss is nan at global step {before_nan['step']} (epoch 1), so "
        "training stopped before that step changed the weights; lower --model.learning_rate (or raise "
        f"warmup_fraction) and train again. The best checkpoint before it is kept: {run / 'best.ckpt'} "
        "(no link was made to it)."
    )
    assert (run / "best.ckpt").read_bytes() == before_nan["best"]
    assert finite_checkpoints(tmp_path) == ["best.ckpt", "last.ckpt"]


def test_weights_gone_non_finite_without_a_nan_loss_are_never_saved(
    tmp_path, comments_csv, capsys, monkeypatch
):
    validated = ToxicCommentTagger.on_validation_epoch_end

    def overflow_after_validating(self):  # as an update that overflows would leave them
        validated(self)
        if not self.trainer.sanity_checking:
            with torch.no_grad():
                self.head.weight[2, 3] = float("inf")

    monkeypatch.setattr(ToxicCommentTagger, "on_validation_epoch_end", overflow_after_validating)
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, comments_csv, "--trainer.max_epochs", "1"))
    assert stopped.value.code == 2
    error = error_line(capsys)
    assert error.startswith(
        "error: training diverged: tensor head.weight has 1 NaN/inf values at global step"
    )
    assert "training stopped without writing the checkpoint" in error
    assert finite_checkpoints(tmp_path) == []
