"""Per-tag metrics accumulated over an epoch (synced across DDP ranks), logged during training."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.utilities import dim_zero_cat


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
        values = [
            binary_auroc(preds[:, k], target[:, k])
            if 0 < target[:, k].sum() < len(target)
            else torch.tensor(float("nan"), device=preds.device)
            for k in range(self.num_tags)
        ]
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
