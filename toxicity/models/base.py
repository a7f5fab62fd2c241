"""TaggerModule: what both model families share (tags, the tokenizer carried in the checkpoint, per-tag
AUROC and F1 logged per epoch, AdamW with linear warmup and decay, layer-wise learning rates, a stop on a
non-finite loss), and the checkpoint keys it writes.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path

import pytorch_lightning as pl
import torch

from toxicity.core.backbone import load_tokenizer
from toxicity.core.errors import CheckpointError
from toxicity.data.batching import FEATURES, Featurizer, features_of
from toxicity.models.epoch_metrics import PerTagAUROC, PerTagF1
from toxicity.models.tokenizer_files import tokenizer_from_bytes, tokenizer_to_bytes

FAMILY_KEY = "toxicity_family"  # the checkpoint key naming the model family (toxicity.models.families)
RUN_FOLDER_KEY = "log_dir_relative"  # the TensorBoard run, relative to the checkpoint's folder
# (tokenizer, its zip) for the model being built from a checkpoint: see TaggerModule.with_tokenizer
_CARRIED_TOKENIZER: ContextVar[tuple] = ContextVar("carried_tokenizer", default=(None, None))


class TrainingDiverged(ArithmeticError):
    """A NaN or infinite loss or weight in training: the run stops before it writes a checkpoint from it."""


def non_finite_tensors(state: dict) -> list[tuple[str, int]]:
    """(name, how many NaN/inf values) of each floating-point tensor in `state` that holds any."""
    return [
        (name, int((~torch.isfinite(tensor)).sum()))
        for name, tensor in state.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not is_finite(tensor)
    ]


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether no value is NaN or infinite. aminmax propagates NaN and keeps ±inf, in one pass without a
    mask: 7 ms for the default MiniLM's 23M weights on one CPU core, against 90 ms for isfinite().all()."""
    if tensor.numel() == 0:  # aminmax refuses an empty tensor
        return True
    low, high = torch.aminmax(tensor.detach())
    return bool(torch.isfinite(low) & torch.isfinite(high))


def describe_non_finite(bad: list[tuple[str, int]]) -> str:
    """'tensor NAME has N NaN/inf values' for the first of `bad`, and how many other tensors have some."""
    (name, count), others = bad[0], len(bad) - 1
    more = f" (and {others} other tensor{'s' if others > 1 else ''})" if others else ""
    return f"tensor {name} has {count} NaN/inf values{more}"


def encoder_depth(name: str, top: int) -> int:
    """0 for embeddings, i + 1 for encoder layer i, `top` for anything above (head, pooler); 0 if top is 0."""
    if not top:
        return 0
    layer = re.search(r"\.layer\.(\d+)\.", name)
    if layer:
        return int(layer.group(1)) + 1
    return 0 if ".embeddings." in name else top


class TaggerModule(pl.LightningModule):
    """What both model families share: tags, a tokenizer carried in the checkpoint, per-tag AUROC logged
    as `<stage>_auroc_<tag>` and `<stage>_auroc_mean`, and AdamW with linear warmup and decay.

    A subclass sets `family` (written into every checkpoint), calls `save_hyperparameters()` with at
    least `backbone`, `labels`, `learning_rate`, `weight_decay` and `warmup_fraction`, and returns per-tag
    logits from `forward(input_ids, attention_mask, **features)`, so every scorer works on it unchanged.
    `features` are what its `batch_featurizer()` makes of each batch's texts (nothing by default).
    """

    family: str  # the name checkpoints record (FAMILY_KEY)
    config_key: str  # the hyper-parameter holding the model's full config, so a checkpoint loads offline

    def __init__(self):
        super().__init__()
        # the tokenizer and its zip (serialised once, reused by every checkpoint save); None until needed
        self._tokenizer, self._tokenizer_bytes = _CARRIED_TOKENIZER.get()

    @classmethod
    def with_tokenizer(cls, tokenizer, tokenizer_bytes: bytes | None, **hparams) -> TaggerModule:
        """The model built around a given tokenizer (the one a checkpoint carries), so that building it
        never loads the tokenizer its `backbone` names: no network on load, no repository a file chooses."""
        token = _CARRIED_TOKENIZER.set((tokenizer, tokenizer_bytes))
        try:
            return cls(**hparams)
        finally:
            _CARRIED_TOKENIZER.reset(token)

    def add_auroc_metrics(self) -> None:
        """Per-tag AUROC for every stage; per-tag F1 of the model's own decisions on val and test."""
        self.train_auroc, self.val_auroc, self.test_auroc = (PerTagAUROC(len(self.labels)) for _ in range(3))
        self.val_f1, self.test_f1 = PerTagF1(len(self.labels)), PerTagF1(len(self.labels))

    @property
    def labels(self) -> list[str]:
        return list(self.hparams.labels)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.backbone)
        return self._tokenizer

    def _log_auroc(self, stage: str) -> None:
        """Logs `<stage>_auroc_<tag>` for tags with both classes present, and their mean."""
        metric = getattr(self, f"{stage}_auroc")
        auroc = metric.compute().reshape(-1)  # torchmetrics returns a 0-d tensor for a single tag
        defined = ~torch.isnan(auroc)
        for label, value, ok in zip(self.labels, auroc, defined):
            if ok:
                self.log(f"{stage}_auroc_{label}", value)
        if defined.any():
            self.log(f"{stage}_auroc_mean", auroc[defined].mean(), prog_bar=stage == "val")
        metric.reset()
        f1 = getattr(self, f"{stage}_f1", None)
        if f1 is not None and f1.update_called:
            for label, value in zip(self.labels, f1.compute().reshape(-1)):
                self.log(f"{stage}_f1_{label}", value)
            f1.reset()

    def batch_featurizer(self) -> Featurizer | None:
        """The one hook for what a batch needs beyond token ids: None (the default) for nothing, else a
        picklable callable, texts -> {name: tensor}, whose tensors every collator (training, evaluation,
        every scorer) puts in the batch and every scorer passes to `forward` as keyword arguments. The
        shared `one_row` cuts each tensor's first dimension; a family whose features are not one row per
        text (the hybrid's n-gram bags) overrides `one_row`."""
        return None

    def attribution_hooks(self):
        """What word attributions (toxicity.models.attribution, issue 30) need of this family: by default
        the token embeddings of a Hugging Face encoder at `self.encoder`. A family overrides it to add
        exact per-word shares of a linear part of its logits, or to refuse gradient methods (occlusion
        needs scores only, so it works for any family)."""
        from toxicity.models.attribution import AttributionHooks

        return AttributionHooks.for_encoder(getattr(self, "encoder", None))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Per-tag probabilities of a batch as the scorers build it (PadToLongest: `input_ids`,
        `attention_mask`, `index`, and `features` where the model has a batch_featurizer), for
        `Trainer.predict`. A batch that fails is scored again one row at a time (as BatchScorer does): a
        row that fails alone gets NaN and its error in `errors` (row -> text).
        """
        errors: dict[int, str] = {}
        try:
            probs = self.batch_probabilities(batch)
        except Exception:  # noqa: BLE001 (any model error: each row is retried alone below)
            rows = len(batch["input_ids"])
            probs = torch.full((rows, len(self.labels)), float("nan"), device=batch["input_ids"].device)
            for row in range(rows):
                try:
                    probs[row] = self.batch_probabilities(self.one_row(batch, row))[0]
                except Exception as error:  # noqa: BLE001 (recorded and counted by the writer)
                    errors[row] = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        return {"index": batch["index"], "probs": probs, "errors": errors}

    def batch_probabilities(self, batch: dict) -> torch.Tensor:
        return torch.sigmoid(self(batch["input_ids"], batch["attention_mask"], **features_of(batch)).float())

    def one_row(self, batch: dict, row: int) -> dict:
        """Row `row` of a batch as a batch of one, without its padding (and row `row` of each feature)."""
        width = int(batch["attention_mask"][row].sum())
        tokens = {
            "input_ids": batch["input_ids"][row : row + 1, :width],
            "attention_mask": batch["attention_mask"][row : row + 1, :width],
        }
        if FEATURES not in batch:
            return tokens
        return {**tokens, FEATURES: {name: value[row : row + 1] for name, value in batch[FEATURES].items()}}

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams.learning_rate)
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.hparams.warmup_fraction * total_steps), total_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def parameter_groups(self) -> list[dict]:
        """AdamW groups: no weight decay on biases and norms; with `layer_decay` < 1, a learning rate per
        encoder depth (embeddings 0, layer i at i + 1, everything above at the top rate)."""
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        decay_rate = self.hparams.get("layer_decay", 1.0)
        encoder = getattr(self, "encoder", None)  # the text-to-text family has none: one rate
        top = encoder.config.num_hidden_layers + 1 if encoder is not None and decay_rate < 1.0 else 0
        groups: dict[tuple[int, bool], dict] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            depth, decays = encoder_depth(name, top), not name.endswith(no_decay)
            group = groups.setdefault(
                (depth, decays),
                {
                    "params": [],
                    "weight_decay": self.hparams.weight_decay if decays else 0.0,
                    "lr": self.hparams.learning_rate * decay_rate ** (top - depth),
                },
            )
            group["params"].append(parameter)
        return list(groups.values())

    def on_before_backward(self, loss: torch.Tensor) -> None:
        """Stops training on a NaN or infinite loss, before its gradients reach the weights."""
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(
                f"training diverged: the loss is {loss.detach().float().mean().item()} at global step "
                f"{self.global_step} (epoch {self.current_epoch}), so training stopped before that step "
                "changed the weights; lower --model.learning_rate (or raise warmup_fraction) and train again."
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        bad = non_finite_tensors(checkpoint.get("state_dict", {}))
        if bad:  # weights gone bad without a NaN loss (an overflow in the update): never save them
            raise TrainingDiverged(
                f"training diverged: {describe_non_finite(bad)} at global step {self.global_step} "
                f"(epoch {self.current_epoch}), so training stopped without writing the checkpoint; lower "
                "--model.learning_rate and train again."
            )
        checkpoint[FAMILY_KEY] = self.family
        if self._tokenizer_bytes is None:
            self._tokenizer_bytes = tokenizer_to_bytes(self.tokenizer)
        checkpoint["tokenizer"] = self._tokenizer_bytes
        run_folder = self._run_folder_from_checkpoints()
        if run_folder is not None:
            checkpoint[RUN_FOLDER_KEY] = run_folder

    def _run_folder_from_checkpoints(self) -> str | None:
        """The TensorBoard run, relative to the folder the checkpoint is written to (usually `..`): an
        absolute path would tell whoever receives the file where it was trained, and be wrong on their
        disk."""
        callback = self._trainer.checkpoint_callback if self._trainer is not None else None
        if not self.trainer.log_dir or callback is None or not getattr(callback, "dirpath", None):
            return None
        try:
            return os.path.relpath(Path(self.trainer.log_dir).resolve(), Path(callback.dirpath).resolve())
        except ValueError:  # Windows: the run and the checkpoint folder on different drives
            return None

    def stored_settings_mismatch(self, checkpoint: dict) -> str | None:
        """Why this model cannot read `checkpoint`'s weights although their shapes fit (a family with
        settings that shapes do not show says so); None when it can."""
        return None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        mismatch = self.stored_settings_mismatch(checkpoint)
        if mismatch:
            raise CheckpointError(f"refused: {mismatch}")
        if "tokenizer" in checkpoint and checkpoint["tokenizer"] != self._tokenizer_bytes:
            self._tokenizer = tokenizer_from_bytes(checkpoint["tokenizer"])
            self._tokenizer_bytes = checkpoint["tokenizer"]
