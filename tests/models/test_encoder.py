import pytest
import torch

from tests.helpers import TINY_ENCODER
from toxicity.models.encoder import ToxicCommentTagger, pool
from toxicity.models.epoch_metrics import PerTagAUROC


def tiny(**kwargs) -> ToxicCommentTagger:
    return ToxicCommentTagger(encoder_config=TINY_ENCODER, **kwargs)


def batch(n=4, width=7):
    input_ids = torch.randint(1000, 2000, (n, width))
    attention_mask = torch.ones(n, width, dtype=torch.long)
    attention_mask[0, 3:] = 0
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.randint(0, 2, (n, 6)).float(),
    }


def test_one_logit_per_tag_for_any_label_set():
    assert tiny()(**{k: v for k, v in batch().items() if k != "labels"}).shape == (4, 6)
    model = tiny(labels=["offensive", "hate"])
    assert model(batch()["input_ids"], batch()["attention_mask"]).shape == (4, 2)
    single = tiny(labels=["offensive"])
    b = batch()
    single.training_step(b | {"labels": b["labels"][:, :1]}, 0)
    assert single.train_auroc.compute().numel() == 1


def test_per_tag_auroc_matches_sklearn_and_is_undefined_for_one_class():
    from sklearn.metrics import roc_auc_score

    metric = PerTagAUROC(3)
    preds = torch.tensor([[0.9, 0.2, 0.1], [0.4, 0.3, 0.8], [0.6, 0.7, 0.3], [0.1, 0.6, 0.5]])
    target = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    metric.update(preds[:2], target[:2])
    metric.update(preds[2:], target[2:])
    auroc = metric.compute()
    for k in range(2):
        assert auroc[k].item() == pytest.approx(roc_auc_score(target[:, k], preds[:, k]))
    assert torch.isnan(auroc[2])  # no positives: undefined, not 0


def test_masked_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert pool(hidden, torch.tensor([[1, 1, 0]]), None, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, torch.tensor([[1, 1, 0]]), None, "cls").tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="pooler"):
        pool(hidden, torch.tensor([[1, 1, 0]]), None, "pooler")


def test_loss_is_bce_with_logits_and_pos_weight():
    torch.manual_seed(0)
    model = tiny(pos_weight=[1.0, 10.0, 1.0, 30.0, 1.0, 5.0]).eval()
    b = batch()
    logits = model(b["input_ids"], b["attention_mask"])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, b["labels"], pos_weight=torch.tensor([1.0, 10.0, 1.0, 30.0, 1.0, 5.0])
    )
    assert torch.allclose(model.loss_fn(logits, b["labels"]), expected)
    with pytest.raises(ValueError, match="pos_weight has 2 values for 6 labels"):
        tiny(pos_weight=[1.0, 2.0])


def test_pretrained_false_reinitialises_the_encoder():
    pretrained = ToxicCommentTagger()
    scratch = ToxicCommentTagger(pretrained=False)
    a = pretrained.encoder.embeddings.word_embeddings.weight
    b = scratch.encoder.embeddings.word_embeddings.weight
    assert a.shape == b.shape and not torch.allclose(a, b)
    assert pretrained.encoder.training  # dropout active while training


class FakeTrainer:
    estimated_stepping_batches = 100


def test_adamw_groups_and_linear_warmup_then_decay():
    model = tiny(learning_rate=1e-3, warmup_fraction=0.2, weight_decay=0.01, layer_decay=1.0)
    model.trainer = FakeTrainer()  # only estimated_stepping_batches is read
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert any(p is model.head.bias for p in no_decay["params"])
    assert any(p is model.head.weight for p in decay["params"])
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 20
    assert lrs[-1] < lrs[50] < lrs[21]


def test_layer_decay_lowers_the_rate_layer_by_layer_down_to_the_embeddings():
    model = tiny(learning_rate=1e-3, layer_decay=0.5)  # 2 encoder layers
    rate = {id(p): group["lr"] for group in model.parameter_groups() for p in group["params"]}
    encoder = model.encoder
    assert rate[id(model.head.weight)] == pytest.approx(1e-3)
    assert rate[id(encoder.pooler.dense.weight)] == pytest.approx(1e-3)
    assert rate[id(encoder.encoder.layer[1].output.dense.weight)] == pytest.approx(5e-4)
    assert rate[id(encoder.encoder.layer[0].attention.self.query.weight)] == pytest.approx(2.5e-4)
    assert rate[id(encoder.embeddings.word_embeddings.weight)] == pytest.approx(1.25e-4)
    assert len(rate) == sum(p.requires_grad for p in model.parameters())  # every parameter in one group
    with pytest.raises(ValueError, match="layer_decay"):
        tiny(layer_decay=0.0)


def test_training_step_keeps_no_graph_in_metric_state():
    # metrics keep every prediction of the epoch; with a graph attached they kept every step's activations
    model = tiny()
    model.training_step(batch(), 0)
    assert model.train_auroc.preds and not any(p.requires_grad for p in model.train_auroc.preds)


def test_per_tag_f1_matches_scikit_learn_for_one_tag_or_many():
    from sklearn.metrics import f1_score

    from toxicity.models.epoch_metrics import PerTagF1

    generator = torch.Generator().manual_seed(0)
    for tags in (1, 6):
        probs, target = (
            torch.rand(40, tags, generator=generator),
            (torch.rand(40, tags, generator=generator) > 0.7),
        )
        metric = PerTagF1(tags)
        metric.update(probs[:15], target[:15])
        metric.update(probs[15:], target[15:])
        expected = [
            f1_score(target[:, k].numpy(), (probs[:, k] >= 0.5).numpy(), zero_division=0) for k in range(tags)
        ]
        assert metric.compute().reshape(-1).numpy() == pytest.approx(expected, abs=1e-6)  # 1 tag: 0-d


def test_a_max_length_beyond_the_encoders_positions_is_refused_naming_the_flag():
    with pytest.raises(
        ValueError, match="max_length 1024 is more than the 512 positions.*--data.max_length 512 or less"
    ):
        tiny(max_length=1024)
    tiny(max_length=512)


def test_roberta_style_positions_leave_out_the_padding_offset():
    roberta = TINY_ENCODER | {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    with pytest.raises(ValueError, match="more than the 512 positions"):
        ToxicCommentTagger(encoder_config=roberta, max_length=513)
    model = ToxicCommentTagger(encoder_config=roberta, max_length=512).eval()
    ids = torch.full((1, 512), 5)
    assert model(ids, torch.ones_like(ids)).shape == (1, 6)  # the limit itself runs


def test_a_config_naming_custom_code_is_refused():
    with pytest.raises(ValueError, match="custom code \\(auto_map\\)"):
        ToxicCommentTagger(encoder_config=TINY_ENCODER | {"auto_map": {"AutoModel": "evil.EvilModel"}})
