"""`python -m toxicity.predict`: score every comment of a table file (the classes are in
toxicity.inference.scorer).

    python -m toxicity.predict --ckpt checkpoints/best-checkpoint.ckpt --input comments.csv \\
        --text-column comment_text --output scores.csv [--id-column id] [--threshold 0.5|tuned]

The CLI reads CSV, TSV (optionally compressed) or Parquet `--chunk-rows` rows at a time, so a file of
any size scores in flat memory. It writes the id column (when there is one), one probability column
per tag and, with --threshold, one 0/1 column `<tag>_pred` per tag. Missing or blank texts are scored
as the empty string and counted in the summary. A row that cannot be scored (the model fails on its text
even alone, or gives a NaN or infinite score) is still written, with empty scores and decisions, and
counted; the command then exits with status 3 (SOME_ROWS_UNSCORED), so a pipeline notices without parsing
the log while the other rows are kept. The output appears only once it is complete: a crash, Ctrl-C or
SIGTERM leaves no partial file; SIGKILL can leave a hidden `.<output>.<pid>-*.partial` beside it, which
the next write of the same output removes.

An --output that does not end in .csv or .tsv is a folder of Parquet shards, scored on Lightning's
distributed engine (toxicity.inference.distributed), resumable by running the same command again:

    python -m toxicity.predict --ckpt best.ckpt --input comments.parquet --output scored/ \\
        --devices 8 --num-nodes 4 [--accelerator gpu|cpu] [--merge scores.parquet]
    torchrun --nnodes 4 --nproc-per-node 8 ... -m toxicity.predict ...   # devices and nodes from torchrun
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from toxicity.core.cli import exit_on_sigterm, fail, run_tool
from toxicity.core.files import refuse_to_overwrite
from toxicity.data.sources import TEXT_COLUMN
from toxicity.data.tables import check_columns
from toxicity.inference.distributed import (
    DistributedSummary,
    ScoringJob,
    ScoringSettings,
    check_merge_path,
    default_precision,
    is_merged,
    launcher_shape,
    merge_shards,
    open_output_folder,
    process_rank,
    score_distributed,
    score_rank_without_ddp,
)
from toxicity.inference.files import DEFAULT_CHUNK_ROWS, ScoringSummary, output_separator, score_file
from toxicity.inference.onnx import OnnxToxicityClassifier, read_onnx_folder
from toxicity.inference.scorer import ToxicityClassifier

log = logging.getLogger(__name__)


# Exit status when the output is complete but some rows have no scores: not 0, so a pipeline does not take
# empty scores for real ones; not 1 (a crash, no output) nor 2 (bad input, no output).
SOME_ROWS_UNSCORED = 3


# -------------------------------------------------------------------------------------------------- CLI
def _threshold(value: str) -> float | str:
    if value == "tuned":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number such as 0.5, or 'tuned'; got {value!r}") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toxicity.predict", description="Score every comment of a CSV/TSV/Parquet file."
    )
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--input", required=True, type=Path, help="CSV, TSV (maybe .gz) or Parquet file")
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help="scores CSV (TSV if it ends in .tsv); any other name is a folder of Parquet shards, scored on "
        "Lightning's distributed engine and resumed by rerunning the command",
    )
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--id-column", default=None, help="kept in the output (default: `id` if present)")
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="also write 0/1 <tag>_pred columns: a number, or 'tuned' (the checkpoint's "
        "thresholds from `python -m toxicity.evaluate`)",
    )
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument(
        "--chunk-rows",
        type=_positive,
        default=DEFAULT_CHUNK_ROWS,
        help="rows read from the input at a time (memory stays flat)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    shards = parser.add_argument_group("scoring into a folder of Parquet shards (--output DIR)")
    shards.add_argument(
        "--devices",
        type=_positive,
        default=None,
        help="processes per node (default: torchrun's or SLURM's, else 1)",
    )
    shards.add_argument(
        "--num-nodes", type=_positive, default=None, help="machines (default: torchrun's or SLURM's, else 1)"
    )
    shards.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (a GPU when there is one)")
    shards.add_argument(
        "--precision",
        default=None,
        help="Lightning precision (default: bf16-mixed on a GPU that supports it, else 32-true)",
    )
    shards.add_argument(
        "--onnx",
        type=Path,
        default=None,
        help="score with this ONNX export folder (toxicity.export --format onnx) instead of --ckpt; no DDP: "
        "each process started by torchrun, srun or by hand (RANK, WORLD_SIZE) takes its own chunks",
    )
    shards.add_argument("--int8", action="store_true", help="with --onnx: its int8 model (model.int8.onnx)")
    shards.add_argument(
        "--merge",
        type=Path,
        default=None,
        help="then also write all shards as one file in input order (.parquet, .csv or .tsv)",
    )
    return parser


def is_shard_folder(output: Path) -> bool:
    return output.suffix.lower() not in (".csv", ".tsv")


SHARD_OPTIONS = ("devices", "num_nodes", "precision", "merge", "onnx")


def main(argv: Sequence[str] | None = None) -> ScoringSummary | DistributedSummary | None:
    args = build_parser().parse_args(argv)
    if is_shard_folder(args.output):
        return main_shards(args)
    given = [f"--{name.replace('_', '-')}" for name in SHARD_OPTIONS if getattr(args, name) is not None]
    given += ["--int8"] if args.int8 else []
    if given or args.accelerator != "auto":
        raise fail(
            f"{' '.join(given or ['--accelerator'])}: only for scoring into a folder of Parquet shards; "
            f"give --output a folder name (not {args.output.name})."
        )

    def work() -> ScoringSummary:
        # the cheap checks first, before the model loads
        refuse_to_overwrite(args.output, args.input, overwrite=args.overwrite)
        output_separator(args.output)
        check_columns(args.input, args.text_column, args.id_column)
        classifier = ToxicityClassifier.from_checkpoint(args.ckpt, args.device, args.batch_size)
        return score_file(
            classifier,
            args.input,
            args.output,
            args.text_column,
            args.id_column,
            args.threshold,
            args.chunk_rows,
            args.overwrite,
        )

    summary = run_tool(work)
    blank = (
        f"; {summary.blank_texts} missing or blank '{args.text_column}' scored as empty strings"
        if summary.blank_texts
        else ""
    )
    unscored = (
        f"; {summary.unscored_rows} rows could not be scored (empty scores; see the warning above)"
        if summary.unscored_rows
        else ""
    )
    print(
        f"Scored {summary.rows} comments in {summary.seconds:.1f} s "
        f"({summary.comments_per_second:.1f} comments/s){blank}{unscored}. Wrote {args.output}."
    )
    if summary.unscored_rows:
        raise SystemExit(SOME_ROWS_UNSCORED)
    return summary


def main_shards(args: argparse.Namespace) -> DistributedSummary | None:
    """Scores into a folder of Parquet shards on every rank; only global rank 0 prints and merges."""

    def work():
        merged_before = False
        if args.merge is not None:
            check_merge_path(args.output, args.merge)
            merged_before = is_merged(args.output, args.merge)  # a rerun of a finished job: nothing to do
            refuse_to_overwrite(args.merge, args.input, overwrite=args.overwrite or merged_before)
        id_column = check_columns(args.input, args.text_column, args.id_column)
        if args.onnx is not None:
            if args.devices or args.num_nodes or args.precision:
                raise ValueError(
                    "--onnx runs without DDP: start its processes with torchrun, srun or RANK/WORLD_SIZE "
                    "instead of --devices/--num-nodes (and it has no --precision: --int8 or not)."
                )
            threads = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else None
            classifier = OnnxToxicityClassifier.from_folder(args.onnx, args.int8, args.batch_size, threads)
            model_file, precision = (
                read_onnx_folder(args.onnx, args.int8)[0],
                "onnx-int8" if args.int8 else "onnx-fp32",
            )
        else:
            if args.int8:
                raise ValueError("--int8 goes with --onnx FOLDER (the int8 model of an ONNX export).")
            precision = args.precision or default_precision(args.accelerator)
            classifier = ToxicityClassifier.from_checkpoint(args.ckpt, "cpu", args.batch_size)
            model_file = Path(args.ckpt)
        cutoffs = None if args.threshold is None else classifier.thresholds_for(args.threshold)
        job = ScoringJob.describe(
            args.input,
            model_file,
            cutoffs,
            text_column=args.text_column,
            id_column=id_column,
            tags=classifier.tags,
            chunk_rows=args.chunk_rows,
            precision=precision,
        )
        open_output_folder(args.output, job)
        settings = ScoringSettings(
            args.input,
            args.output,
            args.text_column,
            id_column,
            args.chunk_rows,
            args.batch_size,
            classifier.max_length,
            classifier.truncation,
            classifier.tags,
            cutoffs,
        )
        if args.onnx is not None:
            rank, world_size = process_rank(dict(os.environ))
            summary = score_rank_without_ddp(classifier, settings, rank, world_size)
        else:
            shape = launcher_shape(dict(os.environ)) or (1, 1)
            devices, num_nodes = args.devices or shape[0], args.num_nodes or shape[1]
            trainer, summary = score_distributed(
                classifier, settings, args.accelerator, devices, num_nodes, precision
            )
            rank, world_size = trainer.global_rank, trainer.world_size
        merged = None
        if rank == 0 and args.merge is not None and summary.complete and not merged_before:
            merged = merge_shards(args.output, args.merge, args.overwrite)
        return rank, world_size, summary, merged, merged_before

    rank, world_size, summary, merged, merged_before = run_tool(work)
    if rank != 0:
        return summary
    notes = [f"{summary.shards} shards in {args.output}"]
    if summary.shards_skipped:
        notes.append(f"{summary.shards_skipped} of them finished by an earlier run, skipped")
    if summary.blank_texts:
        notes.append(f"{summary.blank_texts} missing or blank '{args.text_column}' scored as empty strings")
    if summary.unscored_rows:
        notes.append(
            f"{summary.unscored_rows} rows could not be scored (empty scores; first: {summary.first_error})"
        )
    if merged is not None:
        notes.append(f"merged {merged} rows into {args.merge}")
    elif merged_before and summary.complete:
        notes.append(f"{args.merge} already holds them, merged by an earlier run and unchanged since")
    print(
        f"Scored {summary.rows_scored} comments in {summary.seconds:.1f} s "
        f"({summary.comments_per_second:.1f} comments/s) on {world_size} process(es); "
        f"{summary.rows} rows in all; {'; '.join(notes)}."
    )
    if not summary.complete and args.onnx is not None:  # the other processes may still be scoring
        then = "check and merge" if args.merge else "check"
        print(f"Other processes may still be scoring; once all have ended, rerun the same command to {then}.")
    elif not summary.complete:
        raise SystemExit(f"error: {args.output} is not complete; rerun the same command to finish it.")
    if summary.unscored_rows:
        raise SystemExit(SOME_ROWS_UNSCORED)
    return summary


if __name__ == "__main__":
    exit_on_sigterm()
    main()
