"""A table scored into a folder of Parquet shards, end to end (`python -m toxicity.predict --output DIR`):
the cheap checks, the model (a checkpoint on Lightning's DDP, or an ONNX export without it), the job's
manifest, the run on this process's rank, and the merge into one file once every chunk is scored.

The pieces: toxicity.inference.manifest (the job), toxicity.inference.shards (the folder),
toxicity.inference.launch (ranks, devices, precision), toxicity.inference.distributed (the run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from toxicity.core.files import DEFAULT_CHUNK_ROWS, refuse_to_overwrite
from toxicity.data.tables import check_columns
from toxicity.inference.distributed import ScoringSettings, score_distributed, score_rank_without_ddp
from toxicity.inference.launch import cpu_threads, default_precision, devices_and_nodes, process_rank
from toxicity.inference.manifest import ScoringJob, open_output_folder
from toxicity.inference.onnx import OnnxToxicityClassifier, read_onnx_folder
from toxicity.inference.scorer import BatchScorer, ToxicityClassifier
from toxicity.inference.shards import DistributedSummary, check_merge_path, is_merged, merge_shards


@dataclass(frozen=True)
class ShardOptions:
    """What a sharded scoring job is asked to do (the options of `toxicity.predict`, by the same names)."""

    data: Path
    output: Path
    ckpt: str | Path
    text_column: str
    id_column: str | None = None
    threshold: float | str | None = None  # a number, or "tuned"; None: no decision columns
    batch_size: int = 64
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    accelerator: str = "auto"
    devices: int | None = None  # processes per node; None: the launcher's, else 1
    num_nodes: int | None = None
    precision: str | None = None  # None: default_precision(accelerator)
    onnx: Path | None = None  # an ONNX export folder instead of ckpt: no DDP
    int8: bool = False
    merge: Path | None = None  # then also write all shards as one file
    overwrite: bool = False


@dataclass(frozen=True)
class ShardedRun:
    """What one process did: its rank, the folder's totals, and the merge (rank 0 only)."""

    rank: int
    world_size: int
    summary: DistributedSummary
    merged: int | None  # rows this run merged into options.merge
    merged_before: bool  # options.merge already held a merge of the folder, unchanged since

    def report(self, options: ShardOptions) -> str:
        """What the command prints (on rank 0)."""
        summary = self.summary
        notes = [f"{summary.shards} shards in {options.output}"]
        if summary.shards_skipped:
            notes.append(f"{summary.shards_skipped} of them finished by an earlier run, skipped")
        if summary.blank_texts:
            blank = f"missing or blank '{options.text_column}' scored as empty strings"
            notes.append(f"{summary.blank_texts} {blank}")
        if summary.unscored_rows:
            unscored = f"could not be scored (empty scores; first: {summary.first_error})"
            notes.append(f"{summary.unscored_rows} rows {unscored}")
        if self.merged is not None:
            notes.append(f"merged {self.merged} rows into {options.merge}")
        elif self.merged_before and summary.complete:
            notes.append(f"{options.merge} already holds them, merged by an earlier run and unchanged since")
        if summary.complete and summary.rows_scored == 0 and self.merged is None:  # a finished job rerun
            return f"Nothing to do: this job is finished ({summary.rows} rows); {'; '.join(notes)}."
        report = (
            f"Scored {summary.rows_scored} comments in {summary.seconds:.1f} s "
            f"({summary.comments_per_second:.1f} comments/s) on {self.world_size} process(es); "
            f"{summary.rows} rows in all; {'; '.join(notes)}."
        )
        if not summary.complete and options.onnx is not None:  # the other processes may still be scoring
            then = "check and merge" if options.merge else "check"
            report += (
                "\nOther processes may still be scoring; once all have ended, rerun the same command to "
                f"{then}."
            )
        return report


def score_to_shards(options: ShardOptions, environ: Mapping[str, str] = os.environ) -> ShardedRun:
    """Scores this process's chunks of `options.data` into the folder `options.output` (every rank calls
    it; `environ` tells the ranks); rank 0 merges once the folder is complete."""
    merged_before = False
    if options.merge is not None:
        check_merge_path(options.output, options.merge)
        merged_before = is_merged(options.output, options.merge)  # a rerun of a finished job: nothing to do
        refuse_to_overwrite(options.merge, options.data, overwrite=options.overwrite or merged_before)
    id_column = check_columns(options.data, options.text_column, options.id_column)
    scorer, model_file, precision = load_scorer(options, environ)
    cutoffs = None if options.threshold is None else scorer.thresholds_for(options.threshold)
    job = ScoringJob.describe(
        options.data,
        model_file,
        cutoffs,
        text_column=options.text_column,
        id_column=id_column,
        tags=scorer.tags,
        chunk_rows=options.chunk_rows,
        precision=precision,
    )
    open_output_folder(options.output, job)
    settings = ScoringSettings(
        options.data,
        options.output,
        options.text_column,
        id_column,
        options.chunk_rows,
        options.batch_size,
        scorer.max_length,
        scorer.truncation,
        scorer.tags,
        cutoffs,
    )
    if options.onnx is not None:
        rank, world_size = process_rank(environ)
        summary = score_rank_without_ddp(scorer, settings, rank, world_size)
    else:
        devices, num_nodes = devices_and_nodes(options.devices, options.num_nodes, environ)
        trainer, summary = score_distributed(
            scorer, settings, options.accelerator, devices, num_nodes, precision
        )
        rank, world_size = trainer.global_rank, trainer.world_size
    merged = None
    if rank == 0 and options.merge is not None and summary.complete and not merged_before:
        merged = merge_shards(options.output, options.merge, options.overwrite)
    return ShardedRun(rank, world_size, summary, merged, merged_before)


def load_scorer(options: ShardOptions, environ: Mapping[str, str]) -> tuple[BatchScorer, Path, str]:
    """The scorer, the model file the manifest names, and the precision it records."""
    if options.onnx is not None:
        if options.devices or options.num_nodes or options.precision:
            raise ValueError(
                "--onnx runs without DDP: start its processes with torchrun, srun or RANK/WORLD_SIZE "
                "instead of --devices/--num-nodes (and it has no --precision: --int8 or not)."
            )
        threads = cpu_threads(environ)
        scorer = OnnxToxicityClassifier.from_folder(options.onnx, options.int8, options.batch_size, threads)
        model_file = read_onnx_folder(options.onnx, options.int8)[0]
        return scorer, model_file, "onnx-int8" if options.int8 else "onnx-fp32"
    if options.int8:
        raise ValueError("--int8 goes with --onnx FOLDER (the int8 model of an ONNX export).")
    precision = options.precision or default_precision(options.accelerator)
    scorer = ToxicityClassifier.from_checkpoint(options.ckpt, "cpu", options.batch_size)
    return scorer, Path(options.ckpt), precision
