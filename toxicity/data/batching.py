"""Token ids to batches: the dataset, padding per batch, length-grouped and length-sorted samplers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# What a model's family needs of a batch beyond token ids (TaggerModule.batch_featurizer): texts in,
# {name: tensor} out, each tensor a keyword argument of the model's forward(). Picklable: DataLoader
# workers get a copy.
Featurizer = Callable[[Sequence[str]], dict[str, torch.Tensor]]
FEATURES = "features"  # the batch key holding them
SOURCE = "source"  # the batch key holding each row's source number (training on several sources)


def features_of(batch: dict) -> dict[str, torch.Tensor]:
    """The model's own inputs beyond token ids that the collator added to `batch` (none for most)."""
    return batch.get(FEATURES, {})


class TokenizedComments(Dataset):
    """Token ids and (optionally) tag rows and texts; each item also carries its row index."""

    def __init__(
        self,
        input_ids: list[list[int]],
        labels: np.ndarray | None = None,
        texts: list[str] | None = None,
        sources: np.ndarray | None = None,
    ):
        self.input_ids = input_ids
        # NaN marks a tag the row's source does not label (unknown, not 0): data.multisource
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.float32)
        self.texts = texts  # for features computed per batch (a model's batch_featurizer)
        self.sources = None if sources is None else torch.tensor(np.asarray(sources), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        item = {"input_ids": self.input_ids[index], "index": index}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        if self.texts is not None:
            item["text"] = self.texts[index]
        if self.sources is not None:
            item[SOURCE] = self.sources[index]
        return item

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


@dataclass
class PadToLongest:
    """Collates items into tensors padded to the longest sequence of the batch (or to `pad_to`); with
    `features` (the model's batch_featurizer), also what it makes of the items' texts, under "features"."""

    pad_token_id: int
    pad_to: int | None = None
    features: Featurizer | None = None

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = self.pad_to or max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            ids = item["input_ids"]
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            attention_mask[row, : len(ids)] = 1
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "index": torch.tensor([item["index"] for item in items]),
        }
        if "labels" in items[0]:
            batch["labels"] = torch.stack([item["labels"] for item in items])
        if SOURCE in items[0]:
            batch[SOURCE] = torch.stack([item[SOURCE] for item in items])
        if self.features is not None:
            if "text" not in items[0]:
                raise ValueError("the model's batch features need each item's text; give the dataset texts.")
            batch[FEATURES] = self.features([item["text"] for item in items])
        return batch


class LengthGroupedSampler(Sampler[int]):
    """Training order in which each run of `batch_size` indices has similar lengths.

    Indices are shuffled, cut into mega-batches of `batch_size * mega_batches` that are sorted by length
    and cut into batches, and the batches are shuffled, the one short batch going last: little padding,
    still random batches. Seeded by (seed, epoch), so every DDP rank draws the same order. Under DDP,
    Lightning deals the order out to the ranks index by index (`order[rank::replicas]`), so batches are
    grouped `replicas` at a time: each rank's batch then comes from one group too.
    """

    def __init__(
        self, lengths: np.ndarray, batch_size: int, seed: int = 0, mega_batches: int = 50, replicas: int = 1
    ):
        self.lengths, self.seed, self.mega_batches = lengths, seed, mega_batches
        self.group_size = batch_size * replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += (
            1  # next epoch differs even where Lightning does not call set_epoch (inside DDP's wrapper)
        )
        order = rng.permutation(len(self.lengths))
        yield from length_grouped(order, self.lengths, self.group_size, self.mega_batches, rng)


def length_grouped(
    order: np.ndarray, lengths: np.ndarray, group_size: int, mega_batches: int, rng: np.random.Generator
) -> Iterator[int]:
    """`order` (shuffled indices) regrouped so that each run of `group_size` has similar lengths: cut into
    mega-batches of `group_size * mega_batches`, each sorted by length and cut into groups, the groups
    shuffled and the one short group last (so every group before it stays aligned under DDP)."""
    mega = group_size * mega_batches
    groups = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        groups.extend(chunk[i : i + group_size] for i in range(0, len(chunk), group_size))
    if not groups:
        return
    short = [groups.pop()] if len(groups[-1]) < group_size else []
    for group_number in rng.permutation(len(groups)):
        yield from groups[group_number].tolist()
    for group in short:
        yield from group.tolist()


class SourceMixSampler(Sampler[int]):
    """Training order over several sources: each epoch draws `rows_per_epoch` rows, source s's share
    `shares[s]` of them (its rows without replacement while they last, then again in a new order), then
    groups them by length as LengthGroupedSampler does.

    Seeded by (seed, epoch), so every DDP rank draws the same order and Lightning deals it out index by
    index (`order[rank::replicas]`), as for LengthGroupedSampler; the length is exact, so every rank gets
    the same number of batches.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        sources: np.ndarray,
        shares: Sequence[float],
        rows_per_epoch: int,
        batch_size: int,
        seed: int = 0,
        replicas: int = 1,
        length_grouping: bool = True,
        mega_batches: int = 50,
    ):
        self.lengths, self.seed, self.mega_batches = lengths, seed, mega_batches
        self.members = [np.flatnonzero(sources == s) for s in range(len(shares))]
        self.counts = largest_remainder(np.asarray(shares, dtype=float), rows_per_epoch)
        self.counts[[len(m) == 0 for m in self.members]] = 0
        self.group_size = batch_size * replicas if length_grouping else 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.counts.sum())

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1  # as LengthGroupedSampler: the next epoch differs inside DDP's wrapper too
        drawn = [draw_rows(members, count, rng) for members, count in zip(self.members, self.counts)]
        order = rng.permutation(np.concatenate(drawn)) if drawn else np.zeros(0, dtype=np.int64)
        if not self.group_size:
            yield from order.tolist()
            return
        yield from length_grouped(order, self.lengths, self.group_size, self.mega_batches, rng)


def largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Whole counts in proportion to `shares` that add up to `total` exactly."""
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(np.int64)
    for index in np.argsort(-(exact - counts), kind="stable")[: total - int(counts.sum())]:
        counts[index] += 1
    return counts


def draw_rows(members: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` of `members`: each once in a random order while they last, then again (a source drawn more
    often than its size is repeated evenly, not at random)."""
    if count == 0 or len(members) == 0:
        return np.zeros(0, dtype=np.int64)
    rounds = [rng.permutation(members) for _ in range(-(-count // len(members)))]
    return np.concatenate(rounds)[:count]


class SortedByLengthSampler(Sampler[int]):
    """Evaluation order: longest first, so batches hold similar lengths and memory peaks at the start."""

    def __init__(self, lengths: np.ndarray):
        self.order = np.argsort(-lengths, kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)
