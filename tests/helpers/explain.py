"""A model whose reasons are known: the pretrained MiniLM (offline) with a deterministic head, each tag's
weight the direction from neutral to insulting sentences in its mean-pooled space. No training, no
randomness: "idiot" pushes every tag up and "table" down, which word attributions must show."""

from pathlib import Path

import torch

INSULTS = ["you idiot", "stupid moron", "you are an idiot", "what an idiot"]
NEUTRAL = ["the table", "thanks for the edit", "the article is long", "a nice day"]


def mean_pooled(model, texts: list[str]) -> torch.Tensor:
    encoded = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.encoder(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1)


def insult_direction_model(labels: list[str], scale: float = 10.0):
    """A ToxicCommentTagger (mean pooling) whose tag k scores scale / (k + 1) along the insult direction."""
    from toxicity.models.encoder import ToxicCommentTagger

    model = ToxicCommentTagger(pooling="mean", labels=list(labels)).eval()
    toxic, clean = mean_pooled(model, INSULTS).mean(0), mean_pooled(model, NEUTRAL).mean(0)
    direction = (toxic - clean) / (toxic - clean).norm()
    with torch.no_grad():
        model.head.weight[:] = torch.stack([scale / (k + 1) * direction for k in range(len(labels))])
        model.head.bias[:] = -(model.head.weight @ ((toxic + clean) / 2))
    return model


def save_as_checkpoint(model, path: Path) -> Path:
    """What fit writes, as far as the reader needs: weights, hyper-parameters, family, tokenizer."""
    from toxicity.models.base import FAMILY_KEY
    from toxicity.models.tokenizer_files import tokenizer_to_bytes

    contents = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        FAMILY_KEY: model.family,
        "tokenizer": tokenizer_to_bytes(model.tokenizer),
    }
    torch.save(contents, path)
    return path
