"""Which words made a score (issue 30): one attribution per word and tag, in logit units, for any family.

A word is what the tokenizer's pre-tokenizer calls one (its sub-word pieces merged through the fast
tokenizer's offset mapping; punctuation is a word of its own; special tokens dropped), with its character
offsets in the text as given (Python str indices). Methods:

- `integrated_gradients`: Captum's LayerIntegratedGradients on the family's token embeddings, from a
  baseline where every token but the special ones is padding, to the text; all tags at once (one row per
  tag), the integration steps batched. Its word shares add up to logit(text) - logit(baseline).
- `gradient_x_input`: Captum's LayerGradientXActivation on the same layer (one forward and backward).
- `occlusion`: leave one word out, the drop in each tag's logit; needs scores only, so it works for every
  family (the text-to-text one included) and sees every input (n-grams, features) change with the word.

What a family must give is `TaggerModule.attribution_hooks()`: the token embeddings (default: those of
`self.encoder`), optionally exact per-word shares of a part of its logits that the gradient does not see
(the hybrid's linear n-gram branch), or a refusal naming what works. Inputs a family adds through
`batch_featurizer` are held as they are for the text along the integration path (they are not words).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from toxicity.data.batching import PadToLongest, features_of
from toxicity.data.tokenize import head_and_tail, special_tokens_around, tokenize_texts

METHODS = ("integrated_gradients", "gradient_x_input", "occlusion")
# the most faithful on real comments (ERASER comprehensiveness and sufficiency) and the fastest of the three:
# benchmarks/results/explain_faithfulness-2026-12-07-cpu.md, docs/explanations.md
DEFAULT_METHOD = "occlusion"
DEFAULT_STEPS = 16  # integration steps (Gauss-Legendre, Captum's default rule)


@dataclass(frozen=True)
class Word:
    """A word of a text: `text[start:end] == word`."""

    word: str
    start: int
    end: int


@dataclass(frozen=True)
class Explanation:
    """A text's per-tag probabilities and, per tag, one attribution per word (logit units: positive pushes
    the tag's score up)."""

    text: str
    words: tuple[Word, ...]
    scores: dict[str, float]
    attributions: dict[str, np.ndarray]  # tag -> float32 array, one value per word
    method: str

    def top(self, tag: str, k: int) -> list[Word]:
        """The k words that push `tag` up most (highest attribution first)."""
        order = np.argsort(-self.attributions[tag], kind="stable")[:k]
        return [self.words[i] for i in order]

    def to_dict(self) -> dict:
        """Plain JSON: the words once, and per tag its score and the words' attributions in that order."""
        return {
            "method": self.method,
            "words": [{"word": w.word, "start": w.start, "end": w.end} for w in self.words],
            "tags": {
                tag: {
                    "score": float(self.scores[tag]),
                    "attributions": [round(float(v), 6) for v in self.attributions[tag]],
                }
                for tag in self.attributions
            },
        }


# (texts, words of each) -> (n_words, n_tags) logit shares
WordShares = Callable[[str, Sequence[Word]], np.ndarray]


@dataclass(frozen=True)
class AttributionHooks:
    """What word attributions need of a family (TaggerModule.attribution_hooks).

    embeddings: the layer whose output is the token embeddings (gradient methods attribute there); None
        where scores have no gradient, then only occlusion works.
    word_shares: exact shares of a part of the logits that is held fixed along the gradient path (the
        hybrid's n-gram branch), added to the gradient attributions; None for none.
    refusal: why gradient methods cannot explain this family, and what works instead.
    """

    embeddings: nn.Module | None = None
    word_shares: WordShares | None = None
    refusal: str | None = None

    @classmethod
    def for_encoder(cls, encoder: nn.Module | None) -> AttributionHooks:
        if encoder is None or not hasattr(encoder, "get_input_embeddings"):
            return cls(
                refusal="this model has no Hugging Face encoder at `encoder` whose token embeddings gradient "
                "methods could attribute to; use method='occlusion', or give its family an "
                "attribution_hooks() naming its embedding layer."
            )
        return cls(embeddings=encoder.get_input_embeddings())


@dataclass
class TokenizedText:
    """A text's model input (as the scorers cut it) and which word each token belongs to (-1: special)."""

    words: tuple[Word, ...]
    input_ids: list[int]
    token_word: np.ndarray  # (tokens,) int64


def tokenized_with_words(tokenizer, text: str, max_length: int, truncation: str = "head") -> TokenizedText:
    """The ids the scorers would give `text` (same cut) and the word of each token. Words are taken from the
    whole text, so a word cut off by `max_length` is still listed (the encoder's share of it is 0)."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    word_ids = encoded.word_ids()
    spans: dict[int, list[int]] = {}
    for (start, end), word in zip(offsets, word_ids):
        if word is None or end <= start:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    ordered = sorted(spans.items(), key=lambda item: item[1][0])
    words = tuple(Word(text[s:e], s, e) for _, (s, e) in ordered)
    position = {word: k for k, (word, _) in enumerate(ordered)}
    front, back = special_tokens_around(tokenizer)
    budget = max(max_length - len(front) - len(back), 0)
    kept = list(range(len(ids)))
    kept = head_and_tail(kept, budget) if truncation == "head_tail" else kept[:budget]
    token_word = [-1] * len(front)
    token_word += [position.get(word_ids[i], -1) if word_ids[i] is not None else -1 for i in kept]
    token_word += [-1] * len(back)
    return TokenizedText(words, front + [ids[i] for i in kept] + back, np.asarray(token_word, dtype=np.int64))


def per_word(token_values: np.ndarray, token_word: np.ndarray, n_words: int) -> np.ndarray:
    """(tags, tokens) values summed into (tags, words); special tokens dropped."""
    out = np.zeros((token_values.shape[0], n_words), dtype=np.float64)
    real = token_word >= 0
    for tag in range(token_values.shape[0]):
        np.add.at(out[tag], token_word[real], token_values[tag, real])
    return out


def text_logits(model, texts: Sequence[str], max_length: int, truncation: str = "head", batch_size: int = 64):
    """(n_texts, n_tags) float64 logits of `texts`, cut and featurized as the scorers do."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, len(model.labels)))
    ids = tokenize_texts(model.tokenizer, texts, max_length, truncation)
    collate = PadToLongest(model.tokenizer.pad_token_id or 0, features=model.batch_featurizer())
    device = next(model.parameters()).device
    out = np.empty((len(texts), len(model.labels)), dtype=np.float64)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = collate([{"input_ids": ids[i], "text": texts[i], "index": i} for i in rows])
            extra = {name: value.to(device) for name, value in features_of(batch).items()}
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device), **extra)
            out[rows] = logits.double().cpu().numpy()
    return out


def without_words(text: str, words: Sequence[Word], drop: Sequence[int]) -> str:
    """`text` with the words at positions `drop` cut out (the rest, white space included, as it was)."""
    cut = sorted((words[k].start, words[k].end) for k in drop)
    pieces, position = [], 0
    for start, end in cut:
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def only_words(text: str, words: Sequence[Word], keep: Sequence[int]) -> str:
    """The words at positions `keep`, in text order, joined by spaces (ERASER's sufficiency input)."""
    return " ".join(words[k].word for k in sorted(keep))


@dataclass
class Attributor:
    """Explains texts with one model: `explain(text, tags, method)`."""

    model: nn.Module
    max_length: int
    truncation: str = "head"
    steps: int = DEFAULT_STEPS
    internal_batch_size: int = 64
    _hooks: AttributionHooks | None = field(default=None, init=False, repr=False)

    @property
    def hooks(self) -> AttributionHooks:
        if self._hooks is None:
            self._hooks = self.model.attribution_hooks()
        return self._hooks

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def explain(self, text: str, tags: Sequence[int], method: str = DEFAULT_METHOD) -> Explanation:
        """Per-word attributions of `text` for the tags at positions `tags` (of model.labels)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
        if method != "occlusion" and self.hooks.embeddings is None:
            raise ValueError(f"{method} cannot explain a {self.model.family} model: {self.hooks.refusal}")
        tokenized = tokenized_with_words(self.model.tokenizer, text, self.max_length, self.truncation)
        logits = text_logits(self.model, [text], self.max_length, self.truncation)[0]
        n_words = len(tokenized.words)
        if not n_words:
            values = np.zeros((len(tags), 0))
        elif method == "occlusion":
            values = self.occlusion(text, tokenized.words, logits)[:, tags]
            values = values.T
        else:
            values = self.gradient(text, tokenized, tags, method)
            if self.hooks.word_shares is not None:
                values = values + self.hooks.word_shares(text, tokenized.words)[:, tags].T
        labels = self.model.labels
        probs = 1.0 / (1.0 + np.exp(-logits))
        return Explanation(
            text,
            tokenized.words,
            {labels[t]: float(probs[t]) for t in tags},
            {labels[t]: values[k].astype(np.float32) for k, t in enumerate(tags)},
            method,
        )

    def occlusion(self, text: str, words: Sequence[Word], logits: np.ndarray) -> np.ndarray:
        """(words, tags): each tag's logit minus its logit with that word left out."""
        variants = [without_words(text, words, [k]) for k in range(len(words))]
        return logits[None, :] - text_logits(
            self.model, variants, self.max_length, self.truncation, self.internal_batch_size
        )

    def gradient(self, text: str, tokenized: TokenizedText, tags: Sequence[int], method: str) -> np.ndarray:
        """(tags, words) by a Captum gradient method on the token embeddings, one input row per tag."""
        from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

        device, rows = self.device, len(tags)
        featurizer = self.model.batch_featurizer()
        features = lru_cache(maxsize=8)(
            lambda n: (
                {} if featurizer is None else {k: v.to(device) for k, v in featurizer([text] * n).items()}
            )
        )

        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids, attention_mask, **features(len(input_ids))).float()

        target = list(tags)
        # gradients even when called under inference mode (a serving loop): every tensor made in here
        with torch.inference_mode(False), torch.enable_grad():
            ids = torch.tensor([tokenized.input_ids], device=device).expand(rows, -1)
            mask = torch.ones_like(ids)
            if method == "integrated_gradients":
                special = torch.as_tensor(tokenized.token_word < 0, device=device)
                pad = self.model.tokenizer.pad_token_id or 0
                baseline = torch.where(special, ids, torch.full_like(ids, pad))
                attributions = LayerIntegratedGradients(forward, self.hooks.embeddings).attribute(
                    ids,
                    baselines=baseline,
                    target=target,
                    additional_forward_args=(mask,),
                    n_steps=self.steps,
                    internal_batch_size=max(self.internal_batch_size, rows),
                )
            else:
                attributions = LayerGradientXActivation(forward, self.hooks.embeddings).attribute(
                    ids, target=target, additional_forward_args=(mask,)
                )
        token_values = attributions.detach().float().sum(-1).cpu().numpy()
        return per_word(token_values, tokenized.token_word, len(tokenized.words))
