"""Partial labels in the models: an unknown tag adds nothing to the loss or its gradient, the metrics skip
it, the per-source figures, and the hybrid's warm start fits each tag on the rows that label it."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torchmetrics.functional.classification import binary_auroc

from tests.helpers import TINY_ENCODER
from toxicity.models.epoch_metrics import PerSourceMetrics, PerTagAUROC, PerTagF1
from toxicity.models.partial_labels import MaskedBCEWithLogitsLoss, SourceValidation

NAN = float("nan")


def test_an_unknown_tag_contributes_nothing_to_the_loss_or_its_gradient():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    labels = torch.tensor([[1.0, NAN], [0.0, 1.0]])
    loss = MaskedBCEWithLogitsLoss()(logits, labels)
    loss.backward()
    assert logits.grad[0, 1] == 0 and torch.isfinite(logits.grad).all()
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.detach()[[0, 1, 1], [0, 0, 1]], torch.tensor([1.0, 0.0, 1.0])
    )
    assert torch.isclose(loss, known)  # the mean over the three known labels


def test_with_every_label_known_it_is_bce_with_logits_and_keeps_its_pos_weight_buffer():
    logits, labels = torch.randn(5, 3), torch.randint(0, 2, (5, 3)).float()
    weight = torch.tensor([1.0, 3.0, 0.5])
    masked = MaskedBCEWithLogitsLoss(pos_weight=weight)
    assert torch.isclose(
        masked(logits, labels), torch.nn.BCEWithLogitsLoss(pos_weight=weight)(logits, labels)
    )
    assert list(masked.state_dict()) == ["pos_weight"]  # checkpoints written before read the same


def test_a_batch_with_no_known_label_has_zero_loss_and_gradient():
    logits = torch.randn(2, 2, requires_grad=True)
    loss = MaskedBCEWithLogitsLoss()(logits, torch.full((2, 2), NAN))
    loss.backward()
    assert loss.item() == 0 and (logits.grad == 0).all()


def test_auroc_and_f1_count_only_the_rows_that_label_the_tag():
    preds = torch.tensor([[0.9, 0.2], [0.1, 0.8], [0.95, 0.6], [0.3, 0.1]])
    target = torch.tensor([[1.0, 0.0], [0.0, NAN], [NAN, 1.0], [0.0, 0.0]])
    auroc = PerTagAUROC(2)
    auroc.update(preds, target)
    value = auroc.compute()
    assert value[0] == binary_auroc(preds[[0, 1, 3], 0], torch.tensor([1, 0, 0]))
    assert value[1] == binary_auroc(preds[[0, 2, 3], 1], torch.tensor([0, 1, 0]))
    f1 = PerTagF1(2)
    f1.update(preds, target)
    # tag 1: row 1 (0.8, unknown) would be a false positive if it counted; rows 0, 2, 3: one true positive
    assert f1.compute().tolist() == [1.0, 1.0]


def test_per_source_auroc_and_loss():
    preds = torch.tensor([[0.9], [0.2], [0.4], [0.6], [0.7]])
    target = torch.tensor([[1.0], [0.0], [1.0], [0.0], [NAN]])
    sources = torch.tensor([0, 0, 1, 1, 1])
    losses = torch.tensor([[1.0], [3.0], [2.0], [4.0], [0.0]])
    metric = PerSourceMetrics(1, 3)
    metric.update(preds, target, sources, losses)
    auroc, loss = metric.compute()
    assert auroc[:, 0].tolist()[:2] == [1.0, 0.0] and math.isnan(auroc[2, 0])
    assert loss.tolist()[:2] == [2.0, 3.0] and math.isnan(loss[2])  # the mean over each source's known labels


def test_val_loss_is_the_mean_of_the_sources_losses_each_counting_alike():
    validation = SourceValidation(["toxic"], ["big", "small"])
    loss_fn = MaskedBCEWithLogitsLoss()
    logits = torch.tensor([[0.0]] * 9 + [[5.0]])
    labels = torch.tensor([[1.0]] * 9 + [[0.0]])
    validation.update("val", logits, labels, torch.tensor([0] * 9 + [1]), loss_fn)
    results = validation.results("val")
    big, small = results["val_loss/big"], results["val_loss/small"]
    assert torch.isclose(results["val_loss"], (big + small) / 2)  # not the pooled mean (9 rows to 1)
    assert "val_auroc_toxic/big" not in results  # one class in that source: no AUROC
    assert validation.results("val") == {}  # reset


@pytest.fixture(scope="module")
def hybrid():
    from toxicity.models.hybrid import HybridTagger

    return HybridTagger(encoder_config=TINY_ENCODER, pooling="mean", ngram_buckets=2048, labels=["a", "b"])


def test_the_hybrid_warm_start_fits_each_tag_on_its_labelled_rows_only(hybrid):
    texts = ["you idiot", "thanks a lot", "idiot idiot", "nice edit", "you moron", "good work"] * 3
    a = np.array([1, 0, 1, 0, 1, 0] * 3, dtype=float)
    b = np.array([NAN, NAN, 1, 0, 1, 0] * 3)  # the first two of each six leave tag b unknown
    hybrid.warm_start(texts, np.stack([a, b], axis=1))
    features = hybrid.ngram_hasher.matrix(texts)
    known = ~np.isnan(b)
    expected = LogisticRegression(C=4.0, max_iter=1000).fit(features[known], b[known])
    table = hybrid.ngrams.weight.detach()[:, 1].numpy()
    assert np.allclose(table, expected.coef_[0], atol=1e-5)
    as_zero = LogisticRegression(C=4.0, max_iter=1000).fit(features, np.nan_to_num(b))  # unknown read as 0
    assert not np.allclose(table, as_zero.coef_[0], atol=1e-3)


def test_one_source_and_one_tag_still_log_per_source():
    validation = SourceValidation(["toxic"], ["only"])
    logits, labels = torch.tensor([[1.0], [-1.0]]), torch.tensor([[1.0], [0.0]])
    validation.update("val", logits, labels, torch.tensor([0, 0]), MaskedBCEWithLogitsLoss())
    results = validation.results("val")
    assert set(results) == {"val_auroc_toxic/only", "val_auroc_mean/only", "val_loss/only", "val_loss"}


def test_source_bias_adds_each_rows_source_offset_and_the_first_source_none():
    from toxicity.data.batching import SOURCE
    from toxicity.models.encoder import ToxicCommentTagger

    model = ToxicCommentTagger(
        encoder_config=TINY_ENCODER,
        labels=["a", "b"],
        source_bias=True,
        source_names=["wiki", "tweets", "ethos"],
    )
    with torch.no_grad():
        model.source_logit_bias.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
    logits = torch.zeros(3, 2)
    shifted = model.with_source_bias(logits, {SOURCE: torch.tensor([0, 1, 2])})
    assert torch.equal(shifted, torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]]))
    assert model.with_source_bias(logits, {}) is logits  # scoring: no source, no offset
