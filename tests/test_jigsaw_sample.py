"""Integration: the CPU recipe on the real Kaggle prefix in ../shared/data/jigsaw_sample (minutes)."""

from pathlib import Path

import pytest

from tests.helpers import ROOT, SHARED_DATA, needs_shared_data
from toxicity.fit import main


@pytest.mark.slow
@needs_shared_data("jigsaw_sample")
def test_minilm_two_epochs_scores_kaggle_test_rows(tmp_path):
    cli = main(
        [
            "--config",
            str(ROOT / "experiments" / "cpu_minilm.yaml"),
            "--data.data_path",
            str(SHARED_DATA / "jigsaw_sample"),
            "--data.n_clean_train",
            "null",
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--checkpoint.dirpath",
            str(tmp_path / "checkpoints"),
            "--best_link",  # not the repository's checkpoints/best-checkpoint.ckpt, which is the user's
            str(tmp_path / "checkpoints" / "best-checkpoint.ckpt"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
        ]
    )
    assert len(cli.datamodule.frames["test"]) == 1027  # Kaggle's scored rows; -1 rows left out
    assert len(cli.datamodule.frames["train"]) + len(cli.datamodule.frames["val"]) == 2886
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    assert metrics["test_auroc_mean"] >= 0.90, metrics
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").resolve() == Path(
        cli.trainer.checkpoint_callback.best_model_path
    ).resolve()
