"""A model family defined outside toxicity (issue 27): the tiny encoder plus one input of its own, each
text's length in characters, which reaches it through the `batch_featurizer` hook alone.

A process knows it once it is registered: TOXICITY_FAMILY_MODULES=tests.models.toy_family.
"""

from collections.abc import Sequence

import torch
from torch import nn

from toxicity.models.encoder import ToxicCommentTagger

LENGTH_MISSING = "the toy family needs each text's length in characters (`chars`) with its token ids"


def char_lengths(texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Each text's length in characters: one value per text, so the shared one_row cuts it."""
    return {"chars": torch.tensor([len(text) for text in texts], dtype=torch.float32)}


class CharLengthTagger(ToxicCommentTagger):
    """The encoder's logits plus a per-tag linear term in log(1 + the text's length in characters)."""

    family = "toy_char_length"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.length_head = nn.Linear(1, len(self.labels))

    def batch_featurizer(self):
        return char_lengths

    def forward(self, input_ids, attention_mask, chars=None) -> torch.Tensor:
        if chars is None:
            raise ValueError(LENGTH_MISSING)
        length = torch.log1p(chars.to(self.length_head.weight.dtype))[:, None]
        return super().forward(input_ids, attention_mask) + self.length_head(length)


TOXICITY_FAMILIES = [CharLengthTagger]
