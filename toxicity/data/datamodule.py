"""ToxicCommentsDataModule: the data pipeline of `toxicity.fit`, in order (see toxicity.data)."""

from __future__ import annotations

import logging

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from toxicity.core.backbone import DEFAULT_BACKBONE, load_tokenizer
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.augment import obfuscated_copies
from toxicity.data.batching import (
    LengthGroupedSampler,
    PadToLongest,
    SortedByLengthSampler,
    SourceMixSampler,
    TokenizedComments,
)
from toxicity.data.demo import DEMO_CSV
from toxicity.data.multisource import DEFAULT_MIX_EXPONENT, SOURCE_COLUMN, load_sources, read_sources
from toxicity.data.sources import TEXT_COLUMN, load_splits
from toxicity.data.splits import (
    balance_clean_rows,
    check_split_sizes,
    split_train_val,
    warn_one_class_tags,
    warn_overlapping_texts,
)
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH, Truncation, tokenize_texts
from toxicity.data.validation import TagRule, check_binarise_at

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- datamodule
class ToxicCommentsDataModule(pl.LightningDataModule):
    """Kaggle Jigsaw files (or any labelled table) as train / val / test loaders of token batches.

    Args:
        data_path: a Kaggle folder or competition .zip (train.csv, optionally test.csv + test_labels.csv),
            a TweetEval task folder (its official train / val / test files), or one CSV/TSV/Parquet with a
            text column and 0/1 tag columns. Default: the embedded demo set.
        tokenizer: Hugging Face tokenizer name or folder (linked to `model.backbone` by the CLI).
        text_column: the column holding the comment.
        label_columns: the 0/1 tag columns, in the model's output order.
        label_from: make the tags from one categorical column, e.g. "class:0=hate+offensive,1=offensive".
        binarise_at: tag columns of fractions in [0, 1] become 1 at or above this cut (e.g. 0.5).
        separator: the column separator of CSV files when not ',' (e.g. ";"); .tsv files use a tab.
        test_path: an optional labelled table to test on (replaces the Kaggle test files).
        val_path: an optional labelled table to validate on; without it (and without official TweetEval
            val files), `val_fraction` of the training rows is held out.
        val_fraction: share of train.csv held out for validation (stratified, duplicate-safe).
        n_clean_train: if set, balance the training split to all tagged rows + this many clean rows.
        max_length: truncation length in tokens (up to the encoder's limit, 512 for BERT).
        truncation: `head` keeps the start of a longer comment; `head_tail` its first quarter and its end.
        batch_size: training batch size; eval_batch_size: validation / test batch size.
        length_grouping: group training batches by length (False: plain random batches).
        pad_to_max_length: pad every batch to `max_length` (slow; kept for comparison benchmarks).
        obfuscate_share: add, for this share of the tagged training rows, a copy whose most tag-indicative
            word is misspelled ("i d i o t", "1d10t"); 0 adds none (toxicity/augment.py).
        sources: train on several differently-labelled sources instead of `data_path`: a list of sources
            (each a `path`, optionally `labels` mapping the model's tags onto its columns, a `weight`...) or
            the path of a YAML / JSON file holding one (toxicity.data.multisource, docs/data.md). A tag a
            source does not label is unknown for its rows, never 0. Each source is split (and balanced by
            `n_clean_train`) on its own; validation metrics are logged per source too.
        mix_exponent: with `sources`, each source's share of the training rows drawn per epoch is
            weight * rows ** mix_exponent, normalised: 0.5 by default, 1.0 proportional to size, 0 equal.
        rows_per_epoch: with `sources`, training rows drawn per epoch (default: as many as the sources'
            training rows together); a cap keeps an epoch's time fixed however many sources there are.
    """

    def __init__(
        self,
        data_path: str = str(DEMO_CSV),
        tokenizer: str = DEFAULT_BACKBONE,
        text_column: str = TEXT_COLUMN,
        label_columns: list[str] = list(LABELS),  # noqa: B006 - LightningCLI shows it; never mutated
        label_from: str | None = None,
        binarise_at: float | None = None,
        separator: str | None = None,
        test_path: str | None = None,
        val_path: str | None = None,
        val_fraction: float = 0.1,
        n_clean_train: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        truncation: Truncation = "head",
        batch_size: int = 32,
        eval_batch_size: int = 64,
        length_grouping: bool = True,
        pad_to_max_length: bool = False,
        obfuscate_share: float = 0.0,
        num_workers: int = 0,
        seed: int = 42,
        sources: list[dict] | str | None = None,
        mix_exponent: float = DEFAULT_MIX_EXPONENT,
        rows_per_epoch: int | None = None,
    ):
        super().__init__()
        if not 0 <= obfuscate_share <= 1:
            raise ValueError(
                f"obfuscate_share is a share of the tagged training rows, from 0 to 1; got {obfuscate_share}."
            )
        check_binarise_at(binarise_at)  # here, so a bad cut stops the run before a run folder is made
        if not 0 <= mix_exponent <= 1:
            raise ValueError(
                f"mix_exponent is from 0 (equal shares) to 1 (proportional); got {mix_exponent}."
            )
        if rows_per_epoch is not None and rows_per_epoch < 1:
            raise ValueError(f"rows_per_epoch must be 1 or more (or null: all rows); got {rows_per_epoch}.")
        self.save_hyperparameters()
        self.source_names: list[str] = []  # with `sources`: their names, by source number
        self.source_shares = None
        self.datasets: dict[str, TokenizedComments] = {}
        self.frames: dict[str, pd.DataFrame] = {}
        self._tokenizer = None

    @property
    def tokenizer(self):
        """Loaded on first use: reading and splitting the rows (as evaluation does) needs no tokenizer."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.tokenizer)
        return self._tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.frames:  # read and split once per run, whatever the stage
            return
        hp = self.hparams
        if hp.sources:
            self._setup_sources()
            return
        splits = load_splits(
            hp.data_path,
            hp.text_column,
            hp.label_columns,
            hp.test_path,
            hp.val_path,
            TagRule(hp.label_from, hp.binarise_at),
            hp.separator,
        )
        if "val" in splits:  # given (val_path, or TweetEval's official val files): no split of train
            train, val = splits["train"], splits["val"]
        else:
            train, val = split_train_val(splits["train"], hp.label_columns, hp.val_fraction, hp.seed)
        check_split_sizes(train, val, splits["train"], hp.data_path, hp.val_fraction)
        warn_overlapping_texts(train, {"validation": val, "test": splits.get("test")}, hp.data_path)
        warn_one_class_tags({"training": train, "validation": val}, hp.label_columns, hp.data_path)
        if hp.n_clean_train is not None:
            train = balance_clean_rows(train, hp.label_columns, hp.n_clean_train, hp.seed)
        if hp.obfuscate_share:
            copies = obfuscated_copies(train, hp.label_columns, hp.obfuscate_share, hp.seed)
            train = pd.concat([train, copies], ignore_index=True)
        self.frames = {"train": train, "val": val, **({"test": splits["test"]} if "test" in splits else {})}
        log.info("Rows: %s", {split: len(frame) for split, frame in self.frames.items()})

    def _setup_sources(self) -> None:
        """Every source read, mapped onto the model's tags, checked, split and balanced on its own."""
        hp = self.hparams
        mixed = load_sources(
            read_sources(hp.sources, hp.label_columns),
            hp.label_columns,
            hp.val_fraction,
            hp.seed,
            hp.n_clean_train,
        )
        train = mixed.frames["train"]
        if hp.obfuscate_share:
            copies = obfuscated_copies(train, hp.label_columns, hp.obfuscate_share, hp.seed)
            train = pd.concat([train, copies], ignore_index=True)
        self.frames = {**mixed.frames, "train": train}
        self.source_names = mixed.names
        self.source_shares = mixed.shares(hp.mix_exponent)
        log.info(
            "Sources %s: rows %s; share of the training rows drawn per epoch %s (mix_exponent %g)",
            self.source_names,
            {
                split: frame[SOURCE_COLUMN].value_counts().sort_index().tolist()
                for split, frame in self.frames.items()
            },
            [round(float(share), 3) for share in self.source_shares],
            hp.mix_exponent,
        )

    def dataset(self, split: str) -> TokenizedComments:
        """The split's token ids: tokenized on first use, then kept for the rest of the run (every epoch)."""
        if split not in self.datasets:
            if split not in self.frames:
                raise DataError(
                    f"{self.hparams.data_path}: there is no {split} split (a test split needs "
                    "Kaggle's test.csv + test_labels.csv, or --data.test_path)."
                )
            frame, hp = self.frames[split], self.hparams
            ids = tokenize_texts(self.tokenizer, frame["text"].tolist(), hp.max_length, hp.truncation)
            self.datasets[split] = TokenizedComments(
                ids,
                frame[list(hp.label_columns)].to_numpy(dtype="float32"),
                frame["text"].tolist(),
                frame[SOURCE_COLUMN].to_numpy() if SOURCE_COLUMN in frame.columns else None,
            )
        return self.datasets[split]

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        dataset = self.dataset(split)
        batch_size = hp.batch_size if train else hp.eval_batch_size
        if train and self.source_names:
            sampler = self.mix_sampler(dataset)
        elif train and hp.length_grouping:
            replicas = self.trainer.world_size if self.trainer is not None else 1
            sampler = LengthGroupedSampler(dataset.lengths, batch_size, seed=hp.seed, replicas=replicas)
            if self.trainer is not None:  # a resumed run goes on with the next epoch's order, not epoch 0's
                sampler.set_epoch(self.trainer.current_epoch)
        elif train:
            sampler = torch.utils.data.RandomSampler(dataset)
        else:
            sampler = SortedByLengthSampler(dataset.lengths)
        collate = PadToLongest(
            self.tokenizer.pad_token_id or 0,
            hp.max_length if hp.pad_to_max_length else None,
            self.featurizer(),
        )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def mix_sampler(self, dataset: TokenizedComments) -> SourceMixSampler:
        hp = self.hparams
        sampler = SourceMixSampler(
            dataset.lengths,
            dataset.sources.numpy(),
            self.source_shares,
            hp.rows_per_epoch or len(dataset),
            hp.batch_size,
            seed=hp.seed,
            replicas=self.trainer.world_size if self.trainer is not None else 1,
            length_grouping=hp.length_grouping,
        )
        if self.trainer is not None:  # a resumed run goes on with the next epoch's order, not epoch 0's
            sampler.set_epoch(self.trainer.current_epoch)
        return sampler

    def featurizer(self):
        """What the model being trained needs of a batch beyond token ids (its batch_featurizer)."""
        model = getattr(self.trainer, "lightning_module", None)
        return model.batch_featurizer() if hasattr(model, "batch_featurizer") else None

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
