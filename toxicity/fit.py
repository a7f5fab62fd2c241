"""`python -m toxicity.fit`: train a tagger with LightningCLI; every option is a flag or a YAML key.

    python -m toxicity.fit                                   # the embedded demo, a few minutes on a CPU
    python -m toxicity.fit --config experiments/cpu_minilm.yaml --data.data_path /data/jigsaw
    python -m toxicity.fit --print_config                    # every option with its default
    python -m toxicity.fit --config ... \\
        --ckpt lightning_logs/toxic-comments/version_N/checkpoints/last.ckpt

Each run has a folder of its own, lightning_logs/toxic-comments/version_N/, holding its TensorBoard
events, the resolved config.yaml and checkpoints/: best.ckpt (lowest val_loss; weights, tokenizer and
settings only, for loading) and last.ckpt (the full training state of the latest epoch, for resuming).
checkpoints/best-checkpoint.ckpt is a link to the newest run's best.ckpt (`--best_link` moves or, with
null, drops it), so two runs never overwrite each other's model. At the end it prints the best
checkpoint's per-tag validation AUROC.

Bad data stops the run before any run folder is made, with one line naming the file and what to do
(exit status 2). A NaN or infinite loss stops it at that step, before its checkpoints are overwritten, with
one line naming the step (exit status 2).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from toxicity.core.cli import BEST_CHECKPOINT, fail
from toxicity.core.errors import BackboneError, CheckpointError, DataError
from toxicity.core.tags import LABELS
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.data.tables import tweeteval_task
from toxicity.inference.launch import default_precision
from toxicity.models.base import TaggerModule, TrainingDiverged
from toxicity.models.encoder import ToxicCommentTagger
from toxicity.models.text2text import TextToTextTagger

log = logging.getLogger(__name__)

BEST_LINK = BEST_CHECKPOINT


class LastCheckpoint(ModelCheckpoint):
    """last.ckpt: the full training state (optimizer, schedule, loops) of the latest epoch, to resume from.

    It is written in the best checkpoint's folder and replaced every epoch; the best checkpoint itself
    holds weights only, so the run keeps one full state, not two.
    """

    def __init__(self):
        super().__init__(filename="last", monitor=None, save_top_k=1)


class ValidateAtMaxSteps(Callback):
    """Validates when `--trainer.max_steps` ends training inside an epoch, so the run keeps a best model.

    Lightning validates at epoch ends only; a run cut short by max_steps reached early stopping's and the
    best checkpoint's epoch-end checks with no `val_loss` (early stopping raised, and no model was saved).
    A stop request makes Lightning validate after the current batch (TrainingEpochLoop._should_check_val_fx).
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class ToxicityCLI(LightningCLI):
    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        if trainer.precision is None:  # not given: pick by the accelerator the run will use
            trainer.precision = default_precision(trainer.accelerator)
        if self.config.ckpt:
            continue_run_folder(self.config.ckpt, trainer.logger)
        tag_tweeteval_task(self.config)

    def before_fit(self) -> None:
        best, last = best_checkpoint_callback(self.trainer), last_checkpoint_callback(self.trainer)
        last.dirpath = best.dirpath  # None (the run's folder) unless --checkpoint.dirpath moved the best one

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.init_args.backbone", "data.tokenizer")
        parser.link_arguments("data.label_columns", "model.init_args.labels")
        parser.link_arguments("data.max_length", "model.init_args.max_length")
        parser.link_arguments("data.truncation", "model.init_args.truncation")
        parser.set_defaults(
            {"model": {"class_path": f"{ToxicCommentTagger.__module__}.{ToxicCommentTagger.__name__}"}}
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                # dirpath None: Lightning writes into the run's own folder, <log_dir>/checkpoints
                "checkpoint.dirpath": None,
                "checkpoint.filename": "best",
                "checkpoint.monitor": "val_loss",
                "checkpoint.mode": "min",
                "checkpoint.save_top_k": 1,
                "checkpoint.save_weights_only": True,
                "checkpoint.save_last": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {"early_stopping.monitor": "val_loss", "early_stopping.patience": 2, "early_stopping.mode": "min"}
        )
        parser.add_argument(
            "--ckpt",
            type=str | None,
            default=None,
            help="Resume from this checkpoint (a run's checkpoints/last.ckpt); the run "
            "goes on in the same run folder.",
        )
        parser.add_argument(
            "--best_link",
            type=str | None,
            default=BEST_LINK,
            help="After training, make this path a link to the run's best checkpoint (null: no link).",
        )


def tag_tweeteval_task(config) -> None:
    """A TweetEval folder trained with the default Jigsaw tags gets its task as its one tag (`offensive`)."""
    task = tweeteval_task(config.data.data_path) if config.data.data_path else None
    if task and list(config.data.label_columns) == list(LABELS):
        config.data.label_columns = [task]
        config.model.init_args.labels = [task]


def best_checkpoint_callback(trainer) -> ModelCheckpoint:
    return next(c for c in trainer.checkpoint_callbacks if not isinstance(c, LastCheckpoint))


def last_checkpoint_callback(trainer) -> LastCheckpoint:
    return next(c for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint))


def continue_run_folder(ckpt_path: str, logger_config) -> None:
    """Resuming from <save_dir>/<name>/version_N/checkpoints/last.ckpt logs into version_N again.

    So the resumed epochs land in the same TensorBoard run and the same checkpoint folder, where the
    restored best checkpoint lives (Lightning keeps the best score only when the folder is the same).
    """
    init = getattr(logger_config, "init_args", None)
    if init is None or not getattr(init, "save_dir", None):
        return
    run = Path(ckpt_path).resolve().parent.parent
    if (
        Path(ckpt_path).resolve().parent.name == "checkpoints"
        and re.fullmatch(r"version_\d+", run.name)
        and run.parent == (Path(init.save_dir) / (init.name or "")).resolve()
        and init.version is None
    ):
        init.version = run.name


# class paths before the package moved into subpackages (0.1), as users' YAML and saved run configs name them
MOVED_CLASSES = {
    f"toxicity.{old}": f"{new.__module__}.{new.__name__}"
    for old, new in (
        ("model.ToxicCommentTagger", ToxicCommentTagger),
        ("text2text.TextToTextTagger", TextToTextTagger),
    )
}


def refuse_moved_class_paths(args: Sequence[str]) -> None:
    """One clear error for a config or flag naming a class where it lived before the move."""
    configs = [value for flag, value in itertools.pairwise(args) if flag == "--config"]
    sources = [("the command line", " ".join(args))]
    sources += [(config, Path(config).read_text()) for config in configs if Path(config).is_file()]
    for where, text in sources:
        for old, new in MOVED_CLASSES.items():
            if re.search(rf"{re.escape(old)}\b", text):
                raise fail(f"{where} names {old}, which is now {new}; write the new class path there.")


def make_cli(args=None) -> ToxicityCLI:
    return ToxicityCLI(
        # a family: toxicity.models.encoder.ToxicCommentTagger (default),
        # toxicity.models.hybrid.HybridTagger or toxicity.models.text2text.TextToTextTagger
        TaggerModule,
        ToxicCommentsDataModule,
        subclass_mode_model=True,
        run=False,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "max_epochs": 10,
            "accelerator": "auto",
            "logger": {
                "class_path": f"{TensorBoardLogger.__module__}.TensorBoardLogger",
                "init_args": {"save_dir": "lightning_logs", "name": "toxic-comments"},
            },
            "callbacks": [
                LearningRateMonitor(logging_interval="step"),
                LastCheckpoint(),
                ValidateAtMaxSteps(),
            ],
        },
        args=args,
    )


def auroc_summary(metrics: dict[str, float], labels: list[str]) -> str:
    lines = [f"{'tag':<15}{'val AUROC':>10}"]
    for label in labels:
        value = metrics.get(f"val_auroc_{label}")
        lines.append(f"{label:<15}{'n/a (one class)' if value is None else f'{value:10.4f}'}")
    if "val_auroc_mean" in metrics:
        lines.append(f"{'mean':<15}{metrics['val_auroc_mean']:10.4f}")
    return "\n".join(lines)


def no_best_checkpoint_reason(trainer) -> str:
    """Why a finished fit left no best checkpoint: the best one is chosen on val_loss, so validation must
    run."""
    if trainer.global_step == 0:
        return (
            "No checkpoint was saved and no link made: no training step ran (check --trainer.max_steps, "
            "max_epochs and limit_train_batches)."
        )
    return (
        "No best checkpoint was saved and no link made: validation never ran, so there is no val_loss "
        "to choose by (check --trainer.limit_val_batches, check_val_every_n_epoch and max_epochs). "
        f"The latest training state is {trainer.log_dir}/checkpoints/last.ckpt."
    )


def kept_after_divergence(trainer) -> str:
    """What a diverged run leaves: its best checkpoint so far (never overwritten by the diverged weights)."""
    best = best_checkpoint_callback(trainer).best_model_path
    if best and Path(best).is_file():
        return f"The best checkpoint before it is kept: {best} (no link was made to it)."
    return f"No best checkpoint was written; the run folder is {trainer.log_dir}."


def link_best(best: str, link: str | None) -> None:
    """Points `link` at `best` (a relative symlink, swapped in atomically); a real file there is kept."""
    if not link:
        return
    link_path = Path(link)
    if link_path.exists() and not link_path.is_symlink():
        log.warning(
            "%s is a file (from an older toxicity), not a link; left it in place. "
            "This run's best checkpoint is %s.",
            link_path,
            best,
        )
        return
    link_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = link_path.with_name(f".{link_path.name}.{os.getpid()}.link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(Path(best).resolve(), link_path.parent.resolve()))
    os.replace(temporary, link_path)


def model_refusal(error: ValueError) -> str:
    """The model's own reason from jsonargparse's many-line message (it tries each type of `model`)."""
    reasons = [
        line.strip()[2:]
        for line in str(error).splitlines()
        if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    return reasons[0] if reasons else str(error)


def main(args=None) -> ToxicityCLI:
    refuse_moved_class_paths(list(sys.argv[1:] if args is None else args))
    try:
        cli = make_cli(args)
        cli.datamodule.setup("fit")  # read and check the data before a run folder is made
    except (DataError, BackboneError) as error:
        raise fail(str(error)) from None
    except ValueError as error:  # a model that refuses its arguments, wrapped by jsonargparse
        raise fail(model_refusal(error)) from None
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt)
    except TrainingDiverged as error:
        raise fail(f"{error} {kept_after_divergence(cli.trainer)}") from None
    except DataError as error:  # a model refusing the data in its setup (text-to-text on partial labels)
        raise fail(str(error)) from None
    except CheckpointError as error:  # the checkpoint resumed from does not fit the model
        raise fail(f"{cli.config.ckpt}: {error}") from None
    best = best_checkpoint_callback(cli.trainer).best_model_path
    if not best:
        log.warning(no_best_checkpoint_reason(cli.trainer))
        return cli
    metrics = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    if cli.trainer.is_global_zero:
        link_best(best, cli.config.best_link)
        linked = f" (linked from {cli.config.best_link})" if cli.config.best_link else ""
        print(f"\nBest checkpoint: {best}{linked}\n{auroc_summary(metrics, cli.model.labels)}")
    return cli


if __name__ == "__main__":
    main()
