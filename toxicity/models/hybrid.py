"""HybridTagger: the encoder (meaning) plus a linear branch on hashed character and word n-grams
(spelling), their per-tag logits added and trained end to end.

The encoder reads "you are not an idiot" as it is meant; the n-gram branch reads "1d10t" and "i.d.i.o.t",
which a subword encoder trained on a few thousand rows has rarely seen. The branch is an `nn.EmbeddingBag`
of `ngram_buckets` rows, one logit per tag each (a logistic regression on hashed n-grams, as the TF-IDF
baseline is, without idf). By default (`ngram_warm_start`) the table starts as those regressions fitted on
the training rows; otherwise at zero, so training begins from the encoder alone. Its features come with
each batch (`batch_featurizer`: the n-gram bags of the batch's texts), never from raw strings inside
`forward`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from toxicity.data.batching import FEATURES, Featurizer, features_of
from toxicity.data.ngrams import NgramHasher
from toxicity.models.encoder import ToxicCommentTagger

HASHING_KEY = "ngram_hashing"  # the checkpoint key holding the hasher's fingerprint (NgramHasher.fingerprint)
NGRAMS_MISSING = (
    "a hybrid model needs each text's n-gram features (ngram_ids, ngram_offsets, ngram_weights): build "
    "batches with PadToLongest(pad_token_id, features=model.batch_featurizer()), or score with "
    "ToxicityClassifier, which does."
)


class HybridTagger(ToxicCommentTagger):
    """ToxicCommentTagger plus a hashed n-gram linear branch; every ToxicCommentTagger argument applies.

    Args:
        ngram_buckets: hash buckets shared by word and character n-grams (each holds one weight per tag:
            2^18 buckets and 6 tags are 6.3 MB of float32).
        char_ngrams: [shortest, longest] character n-grams, inside word boundaries.
        word_ngrams: [shortest, longest] word n-grams.
        ngram_learning_rate: AdamW learning rate of the branch; no weight decay. Started warm, a small
            step keeps it near its fitted solution; started from zero it needs a far larger one (0.02).
        branch_dropout: in training, the share of texts that see only the encoder, and again the share that
            see only the n-grams, so that neither half leans on the other (0: both always).
        branch_loss: weight of each branch's own loss (its logits alone against the tags), added in
            training to the loss of the sum: the n-gram branch fits a small training set within an epoch,
            after which the sum's loss leaves the encoder little to learn from; its own loss does not.
        ngram_warm_start: before the first step, fit the branch to convergence on the training rows (one
            L2 logistic regression per tag on the hashed n-grams, scikit-learn), its weights the table's
            start and its intercepts added to the head's bias; joint training then fine-tunes both.
        ngram_class_weight: "balanced" fits those regressions with each tag's rare class weighted up, as
            the TF-IDF baseline does (the branch alone then flags the behaviour suite's spelled insults,
            benchmarks/results/ngram_branch.md); None weighs every row alike.
    """

    family = "hybrid"

    def __init__(
        self,
        ngram_buckets: int = 1 << 18,
        char_ngrams: list[int] = [2, 5],  # noqa: B006 - LightningCLI shows the default; never mutated
        word_ngrams: list[int] = [1, 2],  # noqa: B006
        ngram_learning_rate: float = 0.001,
        branch_dropout: float = 0.0,
        branch_loss: float = 0.0,
        ngram_warm_start: bool = True,
        ngram_class_weight: str | None = None,
        **kwargs,
    ):
        if branch_loss < 0:
            raise ValueError(f"branch_loss must be 0 or more, got {branch_loss}.")
        if not 0.0 <= branch_dropout <= 0.5:
            raise ValueError(f"branch_dropout must be from 0 to 0.5, got {branch_dropout}.")
        if ngram_class_weight not in (None, "balanced"):
            raise ValueError(f'ngram_class_weight must be "balanced" or null, got {ngram_class_weight!r}.')
        super().__init__(**kwargs)
        self.ngram_hasher = NgramHasher(ngram_buckets, tuple(char_ngrams), tuple(word_ngrams))
        self.ngrams = nn.EmbeddingBag(ngram_buckets, len(self.labels), mode="sum")
        nn.init.zeros_(self.ngrams.weight)

    def batch_featurizer(self) -> Featurizer:
        """The hashed n-gram bags of a batch's texts (ngram_ids, ngram_offsets, ngram_weights)."""
        return self.ngram_hasher.batch

    def attribution_hooks(self):
        """The encoder's token embeddings, plus each word's exact share of the linear n-gram branch."""
        from functools import partial

        from toxicity.models.ngram_shares import ngram_word_shares

        hooks = super().attribution_hooks()
        shares = partial(ngram_word_shares, self.ngram_hasher, self.ngrams.weight)
        return type(hooks)(embeddings=hooks.embeddings, word_shares=shares)

    def on_fit_start(self) -> None:
        # Lightning restores the weights before this hook but the step count after it: a resumed run is
        # told apart by its ckpt_path, and keeps its table and head bias as saved.
        if self.hparams.get("ngram_warm_start") and self.trainer.ckpt_path is None:
            dataset = self.trainer.datamodule.dataset("train")
            sources = None if dataset.sources is None else dataset.sources.numpy()
            self.warm_start(dataset.texts, dataset.labels.numpy(), sources)

    @torch.no_grad()
    def warm_start(self, texts: list[str], labels, sources=None) -> None:
        """The table and head bias from per-tag logistic regressions on the n-grams of `texts`, each tag's
        on the rows that label it (a NaN in `labels` is a tag the row's source leaves unknown). With
        `source_bias`, each source but the first has its own indicator column, so a source's base rate goes
        to its offset (`sources`: each row's source number) and not into the n-grams."""
        from scipy.sparse import csr_matrix, hstack
        from sklearn.linear_model import LogisticRegression

        features = self.ngram_hasher.matrix(texts)
        offsets = self.source_logit_bias
        if offsets is not None:
            rows = np.flatnonzero(sources > 0)
            shape = (len(texts), len(offsets))
            indicators = csr_matrix((np.ones(len(rows)), (rows, sources[rows] - 1)), shape=shape)
            features = hstack([features, indicators], format="csr")
        buckets = self.ngrams.weight.shape[0]
        class_weight = self.hparams.get("ngram_class_weight")
        for k in range(len(self.labels)):
            known = ~np.isnan(labels[:, k])  # trained on several sources: the rows that label tag k only
            column = labels[known, k]
            if len(column) == 0 or column.min() == column.max():  # one class in training: nothing to learn
                continue
            model = LogisticRegression(C=4.0, max_iter=1000, class_weight=class_weight).fit(
                features[known] if not known.all() else features, column
            )
            self.ngrams.weight[:, k] = torch.as_tensor(
                model.coef_[0, :buckets], dtype=self.ngrams.weight.dtype
            )
            self.head.bias[k] += float(model.intercept_[0])
            if offsets is not None:
                offsets[:, k] = torch.as_tensor(model.coef_[0, buckets:], dtype=offsets.dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        ngram_ids: torch.Tensor | None = None,
        ngram_offsets: torch.Tensor | None = None,
        ngram_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        meaning, spelling = self.branches(input_ids, attention_mask, ngram_ids, ngram_offsets, ngram_weights)
        return meaning + spelling

    def branches(self, input_ids, attention_mask, ngram_ids, ngram_offsets, ngram_weights):
        """(encoder logits, n-gram logits), each (batch, tags)."""
        if ngram_ids is None or ngram_offsets is None or ngram_weights is None:
            raise ValueError(NGRAMS_MISSING)
        meaning = super().forward(input_ids, attention_mask)
        # the table's dtype, not the encoder's: under autocast the encoder's logits are bf16, the table not
        spelling = self.ngrams(
            ngram_ids, ngram_offsets, per_sample_weights=ngram_weights.to(self.ngrams.weight.dtype)
        )
        return meaning, spelling

    def logits_of(self, batch: dict) -> torch.Tensor:
        features = features_of(batch)
        meaning, spelling = self.branches(
            batch["input_ids"],
            batch["attention_mask"],
            features.get("ngram_ids"),
            features.get("ngram_offsets"),
            features.get("ngram_weights"),
        )
        if self.training and self.hparams.get("branch_loss"):
            self._branches = (meaning, spelling)  # for training_step's branch losses
        share = self.hparams.branch_dropout
        if not self.training or not share:
            return meaning + spelling
        draw = torch.rand(len(meaning), 1, device=meaning.device)
        return meaning * (draw >= share) + spelling * ((draw < share) | (draw >= 2 * share))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        weight = self.hparams.get("branch_loss")
        if not weight:
            return loss
        labels = batch["labels"]
        alone = sum(self.loss_fn(branch.float(), labels) for branch in self._branches)
        return loss + weight * alone

    def batch_probabilities(self, batch: dict) -> torch.Tensor:
        return torch.sigmoid(self.logits_of(batch).float())

    def one_row(self, batch: dict, row: int) -> dict:
        """Row `row` as a batch of one, with its own bag of n-grams."""
        features = features_of(batch)
        offsets, ids = features["ngram_offsets"], features["ngram_ids"]
        begin = int(offsets[row])
        end = int(offsets[row + 1]) if row + 1 < len(offsets) else len(ids)
        bag = {
            "ngram_ids": ids[begin:end],
            "ngram_offsets": offsets.new_zeros(1),
            "ngram_weights": features["ngram_weights"][begin:end],
        }
        return {**super().one_row(batch, row), FEATURES: bag}  # the tokens' row, this row's bag

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[HASHING_KEY] = self.ngram_hasher.fingerprint()

    def stored_settings_mismatch(self, checkpoint: dict) -> str | None:
        """A hasher other than the one the table was trained with (the table's shape alone does not show
        it); checkpoints written before the fingerprint are not checked."""
        if HASHING_KEY not in checkpoint:
            return None
        return self.ngram_hasher.fingerprint_mismatch(checkpoint[HASHING_KEY])

    def parameter_groups(self) -> list[dict]:
        """The encoder's groups, and the n-gram table in its own group at `ngram_learning_rate`."""
        table = self.ngrams.weight
        groups = []
        for group in super().parameter_groups():
            group["params"] = [parameter for parameter in group["params"] if parameter is not table]
            if group["params"]:
                groups.append(group)
        groups.append({"params": [table], "weight_decay": 0.0, "lr": self.hparams.ngram_learning_rate})
        return groups
