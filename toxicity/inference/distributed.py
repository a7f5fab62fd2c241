"""Scoring a table on Lightning's distributed engine: sharded, resumable, every row exactly once.

The input is cut into chunks of `chunk_rows` rows (chunk k holds rows k*chunk_rows ..); chunk k belongs to
rank k % world_size, whatever launched the ranks (Lightning's own launcher, torchrun, SLURM). Each rank
tokenizes its chunks, sorts a chunk's texts by length and cuts it into batches (as BatchScorer does), and
`Trainer.predict` runs the model's `predict_step` on them. A `BasePredictionWriter` collects one chunk's
probabilities (never more) and writes it as one Parquet shard `part-<chunk>.parquet`, atomically, then
its record `_done/<chunk>.json`, atomically: the records are the manifest of finished chunks. A rerun of
the same command skips every chunk with a record; a chunk cut short by a crash has none and is scored
again, its shard replaced whole. `_manifest.json` names the job (the input's and the model's sha256,
columns, the thresholds as numbers, precision, chunk size); a folder holding another job's shards is
refused, naming what changed.

Readers of the folder (pandas, pyarrow.dataset, DuckDB, Spark) ignore the names that start with `_` or
`.`, so the folder reads as one Parquet dataset; `merge_shards` writes it as one file in input order
(checking each shard's `row` column) and records it in `_merged.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from toxicity.core.errors import DataError
from toxicity.core.files import atomic_output, refuse_to_overwrite, write_text_atomically
from toxicity.data.tables import iter_table, table_format
from toxicity.data.tokenize import tokenize_texts
from toxicity.inference.files import clean_texts, output_separator, score_table, unscored_if_not_finite
from toxicity.inference.scorer import BatchScorer, ScoredTexts, ToxicityClassifier

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
DONE_FOLDER = "_done"
MERGED = "_merged.json"  # the files merged from the folder: {path: {"sha256", "rows"}}
OUTPUT_FORMAT = 2  # bump when the shard layout changes: an old folder is then refused, not mixed
ROW_COLUMN = "row"  # each shard row's position in the input (0-based), so the dataset sorts back to it


# ------------------------------------------------------------------------------------------ the job
HASH_BLOCK = 1 << 20  # bytes read at a time when hashing a file: memory stays flat for any size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def thresholds_by_tag(tags: list[str], cutoffs: np.ndarray | None) -> dict[str, float] | None:
    """The cutoffs the decisions use, as {tag: number}; str() gives a float32's shortest exact form (0.3,
    not 0.30000001192092896), so the manifest stays readable and the comparison exact."""
    return None if cutoffs is None else {tag: float(str(value)) for tag, value in zip(tags, cutoffs)}


@dataclass(frozen=True)
class ScoringJob:
    """What `_manifest.json` records: a rerun with the same job resumes; any other job is refused.

    The input and the model are known by their sha256, not by path, size or time: a file replaced by
    another of the same size (or copied with `cp -p`) is a different job; the same file moved is not.
    """

    input: str
    input_sha256: str
    checkpoint: str  # the ONNX model file with --onnx
    checkpoint_sha256: str
    text_column: str
    id_column: str | None
    tags: list[str]
    thresholds: dict[str, float] | None  # the numbers used, per tag ("tuned" resolved)
    chunk_rows: int
    precision: str
    format: int = OUTPUT_FORMAT

    @classmethod
    def describe(
        cls, input_path: Path, model_file: Path, cutoffs: np.ndarray | None, **settings
    ) -> ScoringJob:
        return cls(
            str(input_path.resolve()),
            file_sha256(input_path),
            str(model_file.resolve()),
            file_sha256(model_file),
            thresholds=thresholds_by_tag(settings["tags"], cutoffs),
            **settings,
        )


SETTING_NAMES = {
    "text_column": "--text-column",
    "id_column": "--id-column",
    "tags": "the model's tags",
    "chunk_rows": "--chunk-rows",
    "precision": "the precision (--precision, --onnx, --int8)",
}


def job_changes(stored: dict, job: ScoringJob) -> list[str]:
    """What differs between the job a manifest records and this one, in words."""
    changes = []
    model = "ONNX model" if job.precision.startswith("onnx") else "checkpoint"
    for key, what in (("input", "input"), ("checkpoint", model)):
        then, now = stored.get(f"{key}_sha256"), getattr(job, f"{key}_sha256")
        then_path, now_path = stored.get(key), getattr(job, key)
        if then == now:
            continue
        if then_path == now_path:
            changes.append(
                f"the {what} {now_path} changed since this job began (sha256 {str(then)[:12]}… then, "
                f"{now[:12]}… now)"
            )
        else:
            changes.append(
                f"the {what} is another file ({then_path}, sha256 {str(then)[:12]}… then; {now_path}, "
                f"sha256 {now[:12]}… now)"
            )
    if stored.get("thresholds") != job.thresholds:
        changes.append(
            f"the thresholds changed ({_thresholds_text(stored.get('thresholds'))} then, "
            f"{_thresholds_text(job.thresholds)} now)"
        )
    for key, name in SETTING_NAMES.items():
        if stored.get(key) != getattr(job, key):
            changes.append(f"{name} was {stored.get(key)!r}, now {getattr(job, key)!r}")
    return changes


def _thresholds_text(thresholds: dict[str, float] | None) -> str:
    if not thresholds:
        return "none"
    if len(set(thresholds.values())) == 1:
        return f"{next(iter(thresholds.values()))} for every tag"
    return ", ".join(f"{tag} {value}" for tag, value in thresholds.items())


def read_json(path: Path, what: str, remedy: str) -> dict:
    """A JSON object the scorer wrote; a damaged one is one DataError naming it and what to do."""
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: damaged {what} ({error}). {remedy}") from None
    if not isinstance(stored, dict):
        raise DataError(f"{path}: damaged {what} (not a JSON object). {remedy}")
    return stored


def open_output_folder(folder: Path, job: ScoringJob) -> set[int]:
    """Checks that `folder` is new, empty or this job's own; writes the manifest; returns the finished
    chunks.

    Every rank calls it before any rank writes a shard (the process group starts after it), so all see the
    same folder; they write the same manifest, atomically.
    """
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; --output names a folder for the Parquet shards.")
    manifest = folder / MANIFEST
    if manifest.is_file():
        stored = read_json(manifest, "scoring manifest", "Choose another --output.")
        if stored.get("format") != OUTPUT_FORMAT:
            raise FileExistsError(
                f"{manifest}: written by another version of toxicity.predict (output format "
                f"{stored.get('format')!r}; this one writes {OUTPUT_FORMAT}), so this version cannot resume "
                "it. Choose another --output."
            )
        changes = job_changes(stored, job)
        if changes:
            raise FileExistsError(
                f"{folder} holds the shards of another scoring job: {'; '.join(changes)}. Choose another "
                "--output, or restore what changed and rerun that job's exact command to finish it."
            )
    else:
        visible = (
            sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
        )
        if visible:
            raise FileExistsError(
                f"{folder} is not empty ({', '.join(visible[:5])}) and has no {MANIFEST}: it is not a "
                "scoring output folder. Choose a new or empty folder for --output."
            )
        # the manifest first: a rank that looks while another writes sees no folder, or a manifest
        write_text_atomically(manifest, json.dumps(asdict(job), indent=2) + "\n")
    (folder / DONE_FOLDER).mkdir(exist_ok=True)
    return set(finished_chunks(folder))


@dataclass(frozen=True)
class ChunkRecord:
    """One finished chunk: what `_done/<chunk>.json` holds."""

    chunk: int
    first_row: int
    rows: int
    blank_texts: int
    unscored_rows: int
    first_error: str | None  # "data row N: error" of the first unscored row
    last: bool  # the input's last chunk (so a merge knows how many there are)
    rank: int
    seconds: float


def record_path(folder: Path, chunk: int) -> Path:
    return folder / DONE_FOLDER / f"{chunk:06d}.json"


def shard_path(folder: Path, chunk: int) -> Path:
    return folder / f"part-{chunk:06d}.parquet"


def read_record(path: Path) -> ChunkRecord:
    remedy = (
        f"Delete it and its shard {shard_path(path.parent.parent, int(path.stem)).name} (if any), then rerun "
        "the same command: that chunk is scored again."
    )
    stored = read_json(path, "chunk record", remedy)
    try:
        record = ChunkRecord(**stored)
    except TypeError:
        raise DataError(f"{path}: damaged chunk record (not the fields of one). {remedy}") from None
    if record.chunk != int(path.stem):
        raise DataError(f"{path}: damaged chunk record (it names chunk {record.chunk!r}). {remedy}")
    return record


def finished_chunks(folder: Path) -> dict[int, ChunkRecord]:
    records = {}
    for path in sorted((folder / DONE_FOLDER).glob("[0-9]*.json")):
        if not path.stem.isdigit():
            continue  # not a name the writer gives
        record = read_record(path)
        if shard_path(folder, record.chunk).is_file():  # a record never outlives its shard, but check
            records[record.chunk] = record
    return records


# ------------------------------------------------------------------------------------- reading chunks
@dataclass
class Chunk:
    number: int
    first_row: int
    frame: pd.DataFrame | None  # None for a chunk this rank does not score (read past, not kept)
    last: bool


def iter_chunks(
    path: Path, columns: list[str], chunk_rows: int, wanted: Callable[[int], bool]
) -> Iterator[Chunk]:
    """Every chunk of the input in order, with its rows for the `wanted` ones.

    Parquet: only the row groups of wanted chunks are read. CSV/TSV cannot be entered mid-file, so every
    rank parses the whole file (cheap next to scoring) and keeps its own chunks.
    """
    if table_format(path.name) == "parquet":
        yield from _parquet_chunks(path, columns, chunk_rows, wanted)
        return
    reader = iter_table(path, columns, chunk_rows)
    number, ahead = 0, next(reader, None)
    while ahead is not None:
        frame, ahead = ahead, next(reader, None)
        keep = wanted(number)
        yield Chunk(
            number, number * chunk_rows, frame.reset_index(drop=True) if keep else None, ahead is None
        )
        number += 1


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int, wanted: Callable[[int], bool]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    total = source.metadata.num_rows
    group_starts = np.cumsum(
        [0] + [source.metadata.row_group(g).num_rows for g in range(source.num_row_groups)]
    )
    chunks = math.ceil(total / chunk_rows)
    for number in range(chunks):
        first, end = number * chunk_rows, min(total, (number + 1) * chunk_rows)
        if not wanted(number):
            yield Chunk(number, first, None, number == chunks - 1)
            continue
        groups = [
            g for g in range(source.num_row_groups) if group_starts[g] < end and group_starts[g + 1] > first
        ]
        position, pieces = int(group_starts[groups[0]]), []
        for batch in source.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=columns):
            lo, hi = max(first - position, 0), min(end - position, batch.num_rows)
            if hi > lo:
                pieces.append(batch.slice(lo, hi - lo))
            position += batch.num_rows
            if position >= end:
                break
        frame = pa.Table.from_batches(pieces).to_pandas()
        yield Chunk(number, first, frame, number == chunks - 1)


def parquet_rows(path: Path) -> int | None:
    if table_format(path.name) != "parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# ----------------------------------------------------------------------------------- chunks to batches
class ChunkInfo:
    """What the writer needs of the chunk a batch comes from (a plain class: Lightning moves a batch to the
    device by walking dicts and dataclasses, and leaves other objects alone)."""

    def __init__(self, chunk: Chunk, ids: pd.Series | None, size: int, blank: int):
        self.number, self.first_row, self.last = chunk.number, chunk.first_row, chunk.last
        self.ids, self.size, self.blank = ids, size, blank


class RankChunks(IterableDataset):
    """The length-sorted, padded batches of one rank's unfinished chunks, a chunk at a time."""

    def __init__(
        self, settings: ScoringSettings, scorer: BatchScorer, rank: int, world_size: int, done: set[int]
    ):
        self.settings, self.rank, self.world_size, self.done = settings, rank, world_size, done
        # the scorer's tokenizer and collate: the batches a model's predict_step gets are the ones BatchScorer
        # builds (with whatever the model's batch_featurizer adds beyond token ids)
        self.tokenizer, self.collate = scorer.tokenizer, scorer.collate

    def owns(self, chunk: int) -> bool:
        return chunk % self.world_size == self.rank and chunk not in self.done

    def __iter__(self) -> Iterator[dict]:
        s = self.settings
        columns = [c for c in (s.id_column, s.text_column) if c]
        for chunk in iter_chunks(s.input, columns, s.chunk_rows, self.owns):
            if chunk.frame is None:
                continue
            texts, blank = clean_texts(chunk.frame[s.text_column])
            info = ChunkInfo(chunk, chunk.frame[s.id_column] if s.id_column else None, len(texts), blank)
            ids = tokenize_texts(self.tokenizer, texts, s.max_length, s.truncation)
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for start in range(0, len(order), s.batch_size):
                rows = order[start : start + s.batch_size]
                batch = self.collate([{"input_ids": ids[i], "text": texts[i], "index": i} for i in rows])
                yield {**batch, "chunk": info}


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


class ChunkedInput(pl.LightningDataModule):
    """Deals the chunks to the ranks once Lightning knows them (global rank, world size)."""

    def __init__(self, settings: ScoringSettings, scorer: BatchScorer):
        super().__init__()
        self.settings, self.scorer = settings, scorer

    def predict_dataloader(self) -> DataLoader:
        done = set(finished_chunks(self.settings.output))
        dataset = RankChunks(
            self.settings, self.scorer, self.trainer.global_rank, self.trainer.world_size, done
        )
        return DataLoader(dataset, batch_size=None)  # the dataset yields whole batches


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
            total=self.rows_to_score(trainer.global_rank, trainer.world_size),
            unit="comment",
            desc=f"rank {trainer.global_rank}",
            position=trainer.local_rank,
            disable=not self.settings.progress,
        )

    def rows_to_score(self, rank: int, world_size: int) -> int | None:
        """This rank's unfinished rows, for its progress bar (Parquet only: a CSV's length is unknown)."""
        total, size = parquet_rows(self.settings.input), self.settings.chunk_rows
        if total is None:
            return None
        done = finished_chunks(self.settings.output)
        mine = [k for k in range(math.ceil(total / size)) if k % world_size == rank and k not in done]
        return sum(min(size, total - k * size) for k in mine)

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
    """The chunk's shard, then its record (the chunk counts as finished only once both are whole)."""
    scored = unscored_if_not_finite(scored)
    first_error = (
        f"data row {info.first_row + scored.failed[0] + 1}: {scored.first_error}"
        if scored.failed.size
        else None
    )
    table = score_table(scored, settings.tags, settings.cutoffs, info.ids)
    table.insert(0, ROW_COLUMN, np.arange(info.first_row, info.first_row + info.size, dtype=np.int64))
    with atomic_output(shard_path(settings.output, info.number)) as partial:
        table.to_parquet(partial, index=False)
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
    write_text_atomically(record_path(settings.output, info.number), json.dumps(asdict(record)) + "\n")


# ------------------------------------------------------------------------------------- running the job
@dataclass(frozen=True)
class DistributedSummary:
    rows: int  # rows in the output folder
    rows_scored: int  # scored by this run (the others were finished before it)
    shards: int
    shards_skipped: int  # finished by an earlier run
    blank_texts: int
    unscored_rows: int
    first_error: str | None
    seconds: float
    complete: bool  # every chunk of the input has its shard

    @property
    def comments_per_second(self) -> float:
        return self.rows_scored / self.seconds if self.seconds > 0 else float("nan")


def summarize(folder: Path, before: set[int], seconds: float, rank: int | None = None) -> DistributedSummary:
    """The folder's totals; `rows_scored` counts the chunks finished since `before` (by `rank` alone when
    given)."""
    records = finished_chunks(folder)
    last = [r.chunk for r in records.values() if r.last]
    complete = bool(last) and all(chunk in records for chunk in range(last[0] + 1))
    unscored = [r for r in sorted(records.values(), key=lambda r: r.chunk) if r.unscored_rows]
    return DistributedSummary(
        rows=sum(r.rows for r in records.values()),
        rows_scored=sum(r.rows for c, r in records.items() if c not in before and rank in (None, r.rank)),
        shards=len(records),
        shards_skipped=len(before & set(records)),
        blank_texts=sum(r.blank_texts for r in records.values()),
        unscored_rows=sum(r.unscored_rows for r in records.values()),
        first_error=unscored[0].first_error if unscored else None,
        seconds=seconds,
        complete=complete,
    )


def default_precision(accelerator: str) -> str:
    """bf16 autocast on a GPU that has it (half the memory traffic; scores move by ~1e-2 at most), else
    full float32."""
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def launcher_shape(environ: dict[str, str]) -> tuple[int, int] | None:
    """(processes per node, nodes) set by torchrun or SLURM (sbatch/srun), or None when neither started us."""
    if "LOCAL_WORLD_SIZE" in environ and "WORLD_SIZE" in environ:  # torchrun / torchelastic
        local = int(environ["LOCAL_WORLD_SIZE"])
        return local, max(1, int(environ["WORLD_SIZE"]) // local)
    if "SLURM_NTASKS_PER_NODE" in environ and "SLURM_NNODES" in environ:
        return int(environ["SLURM_NTASKS_PER_NODE"].split("(")[0]), int(environ["SLURM_NNODES"])
    return None


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


def process_rank(environ: dict[str, str]) -> tuple[int, int]:
    """(rank, world size) of a process started by torchrun (RANK, WORLD_SIZE) or srun (SLURM_PROCID,
    SLURM_NTASKS), or set by hand; (0, 1) when none is set."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return int(environ["RANK"]), int(environ["WORLD_SIZE"])
    if "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        return int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
    return 0, 1


def score_rank_without_ddp(scorer: BatchScorer, settings: ScoringSettings, rank: int, world_size: int):
    """This process's chunks scored by any BatchScorer (the ONNX int8 one: no torch model, so no DDP and no
    process group): the same chunks, shards and records as the Trainer path; the ranks never talk, so each
    returns the folder's summary as it stands when it has finished its own chunks."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes (RANK, WORLD_SIZE).")
    before, started = set(finished_chunks(settings.output)), time.perf_counter()
    own = RankChunks(settings, scorer, rank, world_size, before)
    columns = [c for c in (settings.id_column, settings.text_column) if c]
    with tqdm(unit="comment", desc=f"rank {rank}", disable=not settings.progress) as bar:
        for chunk in iter_chunks(settings.input, columns, settings.chunk_rows, own.owns):
            if chunk.frame is None:
                continue
            chunk_started = time.perf_counter()
            texts, blank = clean_texts(chunk.frame[settings.text_column])
            ids = chunk.frame[settings.id_column] if settings.id_column else None
            scored = scorer.score(texts, progress=False)
            write_chunk(
                settings,
                ChunkInfo(chunk, ids, len(texts), blank),
                scored,
                rank,
                time.perf_counter() - chunk_started,
            )
            bar.update(len(texts))
    return summarize(settings.output, before, time.perf_counter() - started, rank)


def check_merge_path(folder: Path, output: Path) -> None:
    """A merged file goes outside the shard folder (a reader of the folder would count its rows twice) and
    is Parquet, CSV or TSV."""
    if output.resolve().is_relative_to(folder.resolve()):
        raise DataError(
            f"--merge {output} is inside the output folder {folder}: readers of the folder would take it "
            "for shards and count its rows twice. Give --merge a path outside that folder."
        )
    if output.suffix.lower() != ".parquet":
        output_separator(output)


REMAKE_MERGE_RECORD = "Delete it, and the merged file or --merge another path, then rerun."


def is_merged(folder: Path, output: Path) -> bool:
    """Whether `output` is a merge of `folder` written by `merge_shards`, unchanged since (same sha256)."""
    path = folder / MERGED
    if not path.is_file() or not output.is_file():
        return False
    merges = read_json(path, "merge record", REMAKE_MERGE_RECORD)
    written = merges.get(str(output.resolve()))
    return isinstance(written, dict) and written.get("sha256") == file_sha256(output)


def merge_shards(folder: Path, output: Path, overwrite: bool = False) -> int:
    """Writes every shard, in input order, as one Parquet/CSV/TSV file (without the `row` column: the same
    columns as `python -m toxicity.predict --output x.csv`); a shard at a time, so memory stays flat.
    Records it in `_merged.json` (so a rerun knows it). Returns the rows written."""
    import pyarrow.parquet as pq

    check_merge_path(folder, output)
    refuse_to_overwrite(output, overwrite=overwrite)
    parquet = output.suffix.lower() == ".parquet"
    sep = None if parquet else output_separator(output)
    records = finished_chunks(folder)
    last = [r.chunk for r in records.values() if r.last]
    missing = [c for c in range(last[0] + 1) if c not in records] if last else ["the last"]
    if missing:
        raise DataError(
            f"{folder}: chunk(s) {missing[:10]} are not scored yet; rerun the scoring command to finish "
            "them, then merge."
        )
    rows = 0
    with atomic_output(output) as partial:
        writer = None
        try:
            for chunk in range(last[0] + 1):
                table = read_shard(folder, records[chunk], rows)
                if parquet:
                    writer = writer or pq.ParquetWriter(partial, table.schema)
                    writer.write_table(table)
                else:
                    table.to_pandas().to_csv(
                        partial, sep=sep, index=False, header=chunk == 0, mode="a" if chunk else "w"
                    )
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    record_merge(folder, output, rows)
    return rows


def read_shard(folder: Path, record: ChunkRecord, first_row: int):
    """The chunk's shard without its `row` column, once that column holds exactly the chunk's rows, in
    order: `first_row` (the rows of the chunks before it) onwards. A shard swapped with another or copied
    from another folder is refused, never merged as rows twice and rows lost."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shard_path(folder, record.chunk)
    remedy = (
        f"Delete it and {record_path(folder, record.chunk)}, then rerun the scoring command: that chunk is "
        "scored again."
    )
    try:
        table = pq.read_table(path)
    except pa.ArrowException as error:
        raise DataError(f"{path}: not a readable shard ({error}). {remedy}") from None
    wanted = np.arange(first_row, first_row + record.rows)
    rows = table.column(ROW_COLUMN).to_numpy() if ROW_COLUMN in table.column_names else None
    if rows is None or not np.array_equal(rows, wanted):
        held = "no row column" if rows is None else _row_span(rows)
        raise DataError(
            f"{path}: chunk {record.chunk} is rows {_row_span(wanted)} of the input, but this shard holds "
            f"{held} (shards swapped, or copied from another folder?). {remedy}"
        )
    return table.drop_columns([ROW_COLUMN])


def _row_span(rows: np.ndarray) -> str:
    return f"{rows[0]}..{rows[-1]} ({len(rows)} rows)" if len(rows) else "no rows"


def record_merge(folder: Path, output: Path, rows: int) -> None:
    path = folder / MERGED
    merges = read_json(path, "merge record", REMAKE_MERGE_RECORD) if path.is_file() else {}
    merges[str(output.resolve())] = {"sha256": file_sha256(output), "rows": rows}
    write_text_atomically(path, json.dumps(merges, indent=2) + "\n")
