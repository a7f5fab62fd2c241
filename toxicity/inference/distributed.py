"""Scoring a table on Lightning's distributed engine: sharded, resumable, every row exactly once.

The input is cut into chunks of `chunk_rows` rows (toxicity.data.tables.iter_chunks); each rank takes its
own (toxicity.inference.launch.RankShare), tokenizes them, sorts a chunk's texts by length and cuts it
into batches (as BatchScorer does), and `Trainer.predict` runs the model's `predict_step` on them. A
`BasePredictionWriter` collects one chunk's probabilities (never more) and writes it as one Parquet shard
with its record (toxicity.inference.shards: the folder's layout, its totals and its merge). A rerun of
the same command skips every chunk with a record. `score_rank_without_ddp` scores the same chunks into
the same shards with any BatchScorer (ONNX), without Lightning.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from toxicity.data.tables import Chunk, iter_chunks, parquet_rows, row_ranges
from toxicity.data.tokenize import tokenize_texts
from toxicity.inference.files import clean_texts, score_table, unscored_if_not_finite
from toxicity.inference.launch import RankShare
from toxicity.inference.scorer import BatchScorer, ScoredTexts, ToxicityClassifier
from toxicity.inference.shards import ChunkRecord, DistributedSummary, finished_chunks, summarize, write_shard


@dataclass(frozen=True)
class ScoringSettings:
    input: Path
    output: Path
    text_column: str
    id_column: str | None
    chunk_rows: int
    batch_size: int
    max_length: int
    truncation: str
    tags: list[str]
    cutoffs: np.ndarray | None = field(default=None, compare=False)
    progress: bool = True

    @property
    def columns(self) -> list[str]:
        """The input columns read: the id column (if any) and the texts."""
        return [c for c in (self.id_column, self.text_column) if c]

    def share(self, rank: int, world_size: int) -> RankShare:
        """The chunks `rank` scores: its own, less those finished by an earlier run."""
        return RankShare(rank, world_size, frozenset(finished_chunks(self.output)))


# ----------------------------------------------------------------------------------- chunks to batches
class ChunkInfo:
    """What the writer needs of the chunk a batch comes from (a plain class: Lightning moves a batch to the
    device by walking dicts and dataclasses, and leaves other objects alone)."""

    def __init__(self, chunk: Chunk, ids: pd.Series | None, size: int, blank: int):
        self.number, self.first_row, self.last = chunk.number, chunk.first_row, chunk.last
        self.ids, self.size, self.blank = ids, size, blank


def own_chunks(settings: ScoringSettings, share: RankShare) -> Iterator[tuple[ChunkInfo, list[str]]]:
    """The chunks `share` owns, read from the input: each chunk's info and cleaned texts."""
    for chunk in iter_chunks(settings.input, settings.columns, settings.chunk_rows, share.owns):
        if chunk.frame is None:
            continue
        texts, blank = clean_texts(chunk.frame[settings.text_column])
        ids = chunk.frame[settings.id_column] if settings.id_column else None
        yield ChunkInfo(chunk, ids, len(texts), blank), texts


class RankChunks(IterableDataset):
    """The length-sorted, padded batches of one rank's unfinished chunks, a chunk at a time."""

    def __init__(self, settings: ScoringSettings, scorer: BatchScorer, share: RankShare):
        self.settings, self.share = settings, share
        # the scorer's tokenizer and collate: the batches a model's predict_step gets are the ones BatchScorer
        # builds (with whatever the model's batch_featurizer adds beyond token ids)
        self.tokenizer, self.collate = scorer.tokenizer, scorer.collate

    def __iter__(self) -> Iterator[dict]:
        s = self.settings
        for info, texts in own_chunks(s, self.share):
            ids = tokenize_texts(self.tokenizer, texts, s.max_length, s.truncation)
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for start in range(0, len(order), s.batch_size):
                rows = order[start : start + s.batch_size]
                batch = self.collate([{"input_ids": ids[i], "text": texts[i], "index": i} for i in rows])
                yield {**batch, "chunk": info}


class ChunkedInput(pl.LightningDataModule):
    """Deals the chunks to the ranks once Lightning knows them (global rank, world size)."""

    def __init__(self, settings: ScoringSettings, scorer: BatchScorer):
        super().__init__()
        self.settings, self.scorer = settings, scorer

    def predict_dataloader(self) -> DataLoader:
        share = self.settings.share(self.trainer.global_rank, self.trainer.world_size)
        return DataLoader(RankChunks(self.settings, self.scorer, share), batch_size=None)  # whole batches


# ---------------------------------------------------------------------------------------- the writer
class ShardWriter(BasePredictionWriter):
    """Collects a chunk's probabilities and writes its shard, then its record, each atomically."""

    def __init__(self, settings: ScoringSettings):
        super().__init__(write_interval="batch")
        self.settings = settings
        self.current: ChunkInfo | None = None
        self.probs = np.empty((0, len(settings.tags)), dtype=np.float32)
        self.errors: dict[int, str] = {}
        self.received = 0
        self.started = time.perf_counter()
        self.bar = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar = tqdm(
            total=self.rows_to_score(self.settings.share(trainer.global_rank, trainer.world_size)),
            unit="comment",
            desc=f"rank {trainer.global_rank}",
            position=trainer.local_rank,
            disable=not self.settings.progress,
        )

    def rows_to_score(self, share: RankShare) -> int | None:
        """This rank's unfinished rows, for its progress bar (Parquet only: a CSV's length is unknown)."""
        total = parquet_rows(self.settings.input)
        if total is None:
            return None
        chunks = enumerate(row_ranges(total, self.settings.chunk_rows))
        return sum(len(rows) for chunk, rows in chunks if share.owns(chunk))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        info: ChunkInfo = batch["chunk"]
        if self.current is not info:
            self.current, self.received, self.errors = info, 0, {}
            self.probs = np.full((info.size, len(self.settings.tags)), np.nan, dtype=np.float32)
            self.started = time.perf_counter()
        index = prediction["index"].cpu().numpy()
        self.probs[index] = prediction["probs"].float().cpu().numpy()
        self.errors.update({int(index[row]): error for row, error in prediction.get("errors", {}).items()})
        self.received += len(index)
        if self.bar is not None:
            self.bar.update(len(index))
        if self.received == info.size:
            self.finish_chunk(info, trainer.global_rank)

    def finish_chunk(self, info: ChunkInfo, rank: int) -> None:
        failed = np.array(sorted(self.errors), dtype=np.int64)
        first_error = self.errors[failed[0]] if failed.size else None
        seconds = time.perf_counter() - self.started
        write_chunk(self.settings, info, ScoredTexts(self.probs, failed, first_error), rank, seconds)
        self.current = None


def write_chunk(settings: ScoringSettings, info: ChunkInfo, scored: ScoredTexts, rank: int, seconds: float):
    """The chunk's scores as its shard and record (NaN or infinite scores written as unscored rows)."""
    scored = unscored_if_not_finite(scored)
    first_error = (
        f"data row {info.first_row + scored.failed[0] + 1}: {scored.first_error}"
        if scored.failed.size
        else None
    )
    record = ChunkRecord(
        info.number,
        info.first_row,
        info.size,
        info.blank,
        int(scored.failed.size),
        first_error,
        info.last,
        rank,
        round(seconds, 3),
    )
    write_shard(settings.output, record, score_table(scored, settings.tags, settings.cutoffs, info.ids))


# ------------------------------------------------------------------------------------- running the job
def score_distributed(
    classifier: ToxicityClassifier,
    settings: ScoringSettings,
    accelerator: str = "auto",
    devices: int = 1,
    num_nodes: int = 1,
    precision: str = "32-true",
) -> tuple[pl.Trainer, DistributedSummary]:
    """Runs `Trainer.predict` over the chunks on `devices` x `num_nodes` processes; every rank returns
    the summary of the whole folder (after a barrier, so it counts every rank's shards)."""
    before = set(finished_chunks(settings.output))
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if devices * num_nodes > 1 else "auto",
        precision=precision,
        callbacks=[ShardWriter(settings)],
        logger=False,
        enable_progress_bar=False,  # Lightning's bar shows rank 0 only; the writer shows one per rank
        enable_model_summary=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,  # chunks are dealt by RankChunks; a sampler would pad with repeats
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        # batches come from an IterableDataset and carry their rows' positions: Lightning's indices are unused
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices", category=UserWarning)
        trainer.predict(
            classifier.model,
            datamodule=ChunkedInput(settings, classifier),
            return_predictions=False,
        )
    trainer.strategy.barrier("toxicity-scored")
    return trainer, summarize(settings.output, before, time.perf_counter() - started)


def score_rank_without_ddp(scorer: BatchScorer, settings: ScoringSettings, rank: int, world_size: int):
    """This process's chunks scored by any BatchScorer (the ONNX int8 one: no torch model, so no DDP and no
    process group): the same chunks, shards and records as the Trainer path; the ranks never talk, so each
    returns the folder's summary as it stands when it has finished its own chunks."""
    share, started = settings.share(rank, world_size), time.perf_counter()
    with tqdm(unit="comment", desc=f"rank {rank}", disable=not settings.progress) as bar:
        for info, texts in own_chunks(settings, share):
            chunk_started = time.perf_counter()
            scored = scorer.score(texts, progress=False)
            write_chunk(settings, info, scored, rank, time.perf_counter() - chunk_started)
            bar.update(len(texts))
    return summarize(settings.output, set(share.done), time.perf_counter() - started, rank)
