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
distributed engine (toxicity.inference.sharded), resumable by running the same command again:

    python -m toxicity.predict --ckpt best.ckpt --input comments.parquet --output scored/ \\
        --devices 8 --num-nodes 4 [--accelerator gpu|cpu] [--merge scores.parquet]
    torchrun --nnodes 4 --nproc-per-node 8 ... -m toxicity.predict ...   # devices and nodes from torchrun
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from toxicity.core.cli import exit_on_sigterm, fail, run_tool
from toxicity.core.files import refuse_to_overwrite
from toxicity.data.sources import TEXT_COLUMN
from toxicity.data.tables import DEFAULT_CHUNK_ROWS, check_columns

if TYPE_CHECKING:  # the scorers (torch, Lightning) are imported when a command runs, not for --help
    from toxicity.inference.files import ScoringSummary
    from toxicity.inference.shards import DistributedSummary

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
        prog="toxicity predict", description="Score every comment of a CSV/TSV/Parquet file."
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
    add_shard_options(parser)
    return parser


def add_shard_options(parser: argparse.ArgumentParser) -> None:
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
        from toxicity.inference.files import output_separator, score_file
        from toxicity.inference.scorer import ToxicityClassifier

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
    """Scores into a folder of Parquet shards on every rank; only global rank 0 prints (and merges)."""
    from toxicity.inference.sharded import ShardOptions, score_to_shards

    options = ShardOptions(**{option.name: getattr(args, option.name) for option in fields(ShardOptions)})
    run = run_tool(lambda: score_to_shards(options))
    if run.rank != 0:
        return run.summary
    print(run.report(options))
    if not run.summary.complete and args.onnx is None:  # with --onnx, other processes may still be scoring
        raise SystemExit(f"error: {args.output} is not complete; rerun the same command to finish it.")
    if run.summary.unscored_rows:
        raise SystemExit(SOME_ROWS_UNSCORED)
    return run.summary


if __name__ == "__main__":
    exit_on_sigterm()
    main()
