"""`python -m toxicity.fit`: train a tagger with LightningCLI; every option is a flag or a YAML key.

    python -m toxicity.fit                                   # the embedded demo, a few minutes on a CPU
    python -m toxicity.fit --config experiments/cpu_minilm.yaml --data.data_path /data/jigsaw
    python -m toxicity.fit --print_config                    # every option with its default
    python -m toxicity.fit --config ... --ckpt_path checkpoints/last.ckpt   # resume a killed run

Writes checkpoints/best-checkpoint.ckpt (lowest val_loss), checkpoints/last.ckpt, and a TensorBoard run
under lightning_logs/toxic-comments/ holding the resolved config.yaml; then prints the best checkpoint's
per-tag validation AUROC.
"""

from __future__ import annotations

import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from toxicity.data import ToxicCommentsDataModule
from toxicity.model import ToxicCommentTagger


def default_precision(accelerator: object) -> str:
    """bf16 mixed precision when training on a GPU that has it, full precision elsewhere."""
    on_gpu = str(accelerator) in ("auto", "gpu", "cuda")
    return "bf16-mixed" if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


class ToxicityCLI(LightningCLI):
    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        if trainer.precision is None:  # not given: pick by the accelerator the run will use
            trainer.precision = default_precision(trainer.accelerator)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.backbone", "data.tokenizer")
        parser.link_arguments("data.label_columns", "model.labels")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.dirpath": "checkpoints", "checkpoint.filename": "best-checkpoint",
            "checkpoint.monitor": "val_loss", "checkpoint.mode": "min", "checkpoint.save_top_k": 1,
            "checkpoint.save_last": True,
            # a new run replaces checkpoints/best-checkpoint.ckpt instead of writing best-checkpoint-v1.ckpt
            "checkpoint.enable_version_counter": False,
        })
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": "val_loss", "early_stopping.patience": 2,
                             "early_stopping.mode": "min"})
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="Resume from this checkpoint (e.g. checkpoints/last.ckpt).")


def make_cli(args=None) -> ToxicityCLI:
    return ToxicityCLI(
        ToxicCommentTagger,
        ToxicCommentsDataModule,
        run=False,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "max_epochs": 10,
            "accelerator": "auto",
            "logger": {"class_path": f"{TensorBoardLogger.__module__}.TensorBoardLogger",
                       "init_args": {"save_dir": "lightning_logs", "name": "toxic-comments"}},
            "callbacks": [LearningRateMonitor(logging_interval="step")],
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


def main(args=None) -> ToxicityCLI:
    cli = make_cli(args)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    best = cli.trainer.checkpoint_callback.best_model_path
    if not best:
        return cli
    metrics = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    if cli.trainer.is_global_zero:
        print(f"\nBest checkpoint: {best}\n{auroc_summary(metrics, cli.model.labels)}")
    return cli


if __name__ == "__main__":
    main()
