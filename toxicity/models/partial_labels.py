"""Training on partial labels: the masked BCE loss and the per-source validation metrics.

A tag a row's source does not label is NaN in `batch["labels"]` (toxicity.data.multisource): it adds
nothing to the loss or its gradient, and the metrics count only the rows that label each tag. With every
tag known the loss is exactly BCEWithLogitsLoss's mean, so single-source training is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from toxicity.models.epoch_metrics import PerSourceMetrics


class MaskedBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """BCEWithLogitsLoss over the known labels only (a NaN target is unknown): the mean over the known
    (row, tag) pairs; 0, with a zero gradient, for a batch with none. Keeps `pos_weight` as its buffer, so
    checkpoints read as before."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, known = self.elementwise(logits, target)
        return losses.sum() / known.sum().clamp(min=1)

    def elementwise(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss of each (row, tag), 0 where unknown; the 0/1 mask of known labels)."""
        known = ~torch.isnan(target)
        losses = functional.binary_cross_entropy_with_logits(
            logits, torch.where(known, target, 0.0), pos_weight=self.pos_weight, reduction="none"
        )
        return torch.where(known, losses, 0.0), known.to(losses.dtype)


class SourceValidation(nn.Module):
    """Per-source metrics of the validation and test stages, for a model trained on named sources.

    Logged as `<stage>_auroc_<tag>/<source>`, `<stage>_auroc_mean/<source>` and `<stage>_loss/<source>`;
    `<stage>_loss` itself is the mean of the sources' losses (each source counts alike, however many
    validation rows it has), which is what the best checkpoint and early stopping watch.
    """

    def __init__(self, tags: list[str], names: list[str]):
        super().__init__()
        self.tags, self.names = list(tags), list(names)
        self.stages = nn.ModuleDict(
            {stage: PerSourceMetrics(len(tags), len(names)) for stage in ("val", "test")}
        )

    def update(self, stage: str, logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, loss_fn):
        losses, _ = loss_fn.elementwise(logits, labels)
        self.stages[stage].update(torch.sigmoid(logits), labels, sources, losses)

    def results(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's per-source figures by metric name, and `<stage>_loss`; resets the stage."""
        metric = self.stages[stage]
        if not metric.update_called:
            return {}
        auroc, loss = metric.compute()
        metric.reset()
        # torchmetrics squeezes a one-element result: one source (and one tag) comes back 0-d
        auroc, loss = auroc.reshape(len(self.names), len(self.tags)), loss.reshape(len(self.names))
        out = {}
        for number, name in enumerate(self.names):
            defined = ~torch.isnan(auroc[number])
            for tag, value, ok in zip(self.tags, auroc[number], defined):
                if ok:
                    out[f"{stage}_auroc_{tag}/{name}"] = value
            if defined.any():
                out[f"{stage}_auroc_mean/{name}"] = auroc[number][defined].mean()
            if not torch.isnan(loss[number]):
                out[f"{stage}_loss/{name}"] = loss[number]
        finite = ~torch.isnan(loss)
        if finite.any():
            out[f"{stage}_loss"] = loss[finite].mean()
        return out
