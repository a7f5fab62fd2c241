"""Per-tag metrics accumulated over an epoch (synced across DDP ranks), logged during training."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.utilities import dim_zero_cat


class PerTagAUROC(Metric):
    """ROC AUC of each tag over an epoch (synced across DDP ranks), on the rows that label the tag (a NaN
    target is unknown: trained on several sources, data.multisource); NaN for a tag with one class only."""

    full_state_update = False

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.preds.append(preds.detach())  # detached: a kept graph would hold every step's activations
        self.target.append(target.float())  # float: NaN marks an unknown tag

    def compute(self) -> torch.Tensor:
        return per_tag_auroc(dim_zero_cat(self.preds), dim_zero_cat(self.target))


def per_tag_auroc(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AUROC of each column of `preds` over the rows whose target is known (not NaN); NaN where those rows
    hold one class only."""
    values = []
    for k in range(target.shape[1]):
        known = ~torch.isnan(target[:, k])
        labels = target[known, k]
        if 0 < labels.sum() < len(labels):
            values.append(binary_auroc(preds[known, k], labels.long()))
        else:
            values.append(torch.tensor(float("nan"), device=preds.device))
    return torch.stack(values) if values else torch.zeros(0, device=preds.device)


class PerSourceMetrics(Metric):
    """Per source (each row's source number): the AUROC of each tag on the rows that label it, and the
    loss, the mean over the labels known for its rows (synced across DDP ranks)."""

    full_state_update = False

    def __init__(self, num_tags: int, num_sources: int):
        super().__init__()
        self.num_tags, self.num_sources = num_tags, num_sources
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("source", default=[], dist_reduce_fx="cat")
        self.add_state(
            "loss_sum", default=torch.zeros(num_sources, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("known", default=torch.zeros(num_sources, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, source: torch.Tensor, losses: torch.Tensor):
        """`losses`: the loss of each (row, tag), 0 where the tag is unknown."""
        self.preds.append(preds.detach())
        self.target.append(target.float())
        self.source.append(source.long())
        known = (~torch.isnan(target)).sum(dim=1).double()
        self.loss_sum.index_add_(0, source.long(), losses.detach().sum(dim=1).double())
        self.known.index_add_(0, source.long(), known)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(AUROC: sources x tags, NaN where undefined; loss per source, NaN for a source with no label)."""
        preds, target, source = dim_zero_cat(self.preds), dim_zero_cat(self.target), dim_zero_cat(self.source)
        auroc = torch.full((self.num_sources, self.num_tags), float("nan"), device=preds.device)
        for number in range(self.num_sources):
            rows = source == number
            if rows.any():
                auroc[number] = per_tag_auroc(preds[rows], target[rows])
        loss = torch.where(self.known > 0, self.loss_sum / self.known.clamp(min=1), float("nan"))
        return auroc, loss.float()


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
        """A NaN target (a tag the row's source does not label) counts nowhere."""
        known = (~torch.isnan(target.float())).float()
        predicted = (decisions.detach() >= 0.5).float() * known
        actual = target.float().nan_to_num(0.0)
        self.true_positives += (predicted * actual).sum(dim=0)
        self.false_positives += (predicted * (1 - actual)).sum(dim=0)
        self.false_negatives += (known * (1 - predicted) * actual).sum(dim=0)

    def compute(self) -> torch.Tensor:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return torch.where(denominator > 0, 2 * self.true_positives / denominator.clamp(min=1), 0.0)
