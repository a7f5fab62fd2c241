"""`toxicity predict`: score every comment of a table file (the classes are in toxicity.inference).

    toxicity predict --ckpt checkpoints/best-checkpoint.ckpt --data comments.csv \\
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

An --output ending in .csv, .tsv, .parquet or .jsonl is that file, scored in this process (with --ckpt
or --onnx). A name without a suffix is a folder of Parquet shards, scored on Lightning's distributed
engine (toxicity.inference.sharded), resumable by running the same command again:

    toxicity predict --ckpt best.ckpt --data comments.parquet --output scored/ \\
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

from toxicity.core.cli import (
    add_accelerator,
    add_batch_size,
    add_ckpt,
    add_data,
    add_output,
    add_overwrite,
    add_threads,
    command_parser,
    exit_on_sigterm,
    fail,
    positive_int,
    run_tool,
    torch_device,
    use_threads,
)
from toxicity.core.files import DEFAULT_CHUNK_ROWS, OUTPUT_FORMATS, refuse_to_overwrite
from toxicity.core.tags import TEXT_COLUMN

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


EXAMPLES = (
    "toxicity predict --data comments.csv --output scores.csv",
    "toxicity predict --data comments.parquet --output scores.parquet --threshold tuned --id-column id",
    "toxicity predict --onnx exported/onnx --int8 --data comments.csv --output scores.jsonl",
    "toxicity predict --data big.parquet --output scored/ --devices 8 --merge scores.parquet",
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "predict",
        "Score every comment of a CSV, TSV (maybe compressed) or Parquet file: a probability per tag.",
        EXAMPLES,
    )
    add_ckpt(parser)
    parser.add_argument(
        "--onnx",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="score with this ONNX export (`toxicity export --format onnx`) instead of --ckpt",
    )
    parser.add_argument("--int8", action="store_true", help="with --onnx: its int8 model (model.int8.onnx)")
    add_data(parser, "the comments: a CSV, TSV (maybe .gz) or Parquet file", required=True, type=Path)
    add_output(
        parser,
        f"a file ({', '.join(OUTPUT_FORMATS)}) gets the scores; a name without a suffix (or ending in /) "
        "is a folder of Parquet shards, scored on Lightning's distributed engine and resumed by rerunning",
        required=True,
        type=Path,
    )
    add_overwrite(parser)
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--id-column", default=None, help="kept in the output (default: `id` if present)")
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="also write 0/1 <tag>_pred columns: a number, or 'tuned' (the thresholds saved by "
        "`toxicity evaluate --save-thresholds`)",
    )
    add_batch_size(parser)
    parser.add_argument(
        "--chunk-rows",
        type=positive_int,
        default=DEFAULT_CHUNK_ROWS,
        help="rows read from the input at a time (memory stays flat)",
    )
    add_accelerator(parser)
    add_threads(parser)
    add_shard_options(parser)
    return parser


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    shards = parser.add_argument_group("scoring into a folder of Parquet shards (--output FOLDER)")
    shards.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        help="processes per node (default: torchrun's or SLURM's, else 1)",
    )
    shards.add_argument(
        "--num-nodes",
        type=positive_int,
        default=None,
        help="machines (default: torchrun's or SLURM's, else 1)",
    )
    shards.add_argument(
        "--precision",
        default=None,
        help="Lightning precision (default: bf16-mixed on a GPU that supports it, else 32-true)",
    )
    shards.add_argument(
        "--merge",
        type=Path,
        default=None,
        help="then also write all shards as one file in input order (.csv, .tsv, .parquet or .jsonl)",
    )


def is_shard_folder(output: Path) -> bool:
    """A name without a suffix, or an existing folder; a file format suffix is a file; any other suffix
    is refused (a typo such as scores.json must not silently become a folder)."""
    if output.is_dir() or not output.suffix:
        return True
    if output.suffix.lower() in OUTPUT_FORMATS:
        return False
    raise fail(
        f"--output {output}: {output.suffix} is not a format predict writes; end the name in "
        f"{', '.join(OUTPUT_FORMATS)} for a file, or leave the suffix out for a folder of Parquet shards."
    )


SHARD_OPTIONS = ("devices", "num_nodes", "precision", "merge")


def main(argv: Sequence[str] | None = None) -> ScoringSummary | DistributedSummary | None:
    args = build_parser().parse_args(argv)
    if is_shard_folder(args.output):
        return main_shards(args)
    given = [f"--{name.replace('_', '-')}" for name in SHARD_OPTIONS if getattr(args, name) is not None]
    if given:
        raise fail(
            f"{' '.join(given)}: only for scoring into a folder of Parquet shards; "
            f"give --output a folder name (not {args.output.name})."
        )
    if args.int8 and args.onnx is None:
        raise fail("--int8 goes with --onnx (the int8 ONNX model); leave it out with --ckpt.")

    def work() -> ScoringSummary:
        from toxicity.data.tables import check_columns
        from toxicity.inference.files import score_file

        # the cheap checks first, before the model loads
        refuse_to_overwrite(args.output, args.data, overwrite=args.overwrite)
        check_columns(args.data, args.text_column, args.id_column)
        use_threads(args.threads)
        return score_file(
            load_scorer(args),
            args.data,
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


def load_scorer(args: argparse.Namespace):
    """The model --onnx or --ckpt names, on the --accelerator's device."""
    if args.onnx is not None:
        from toxicity.inference.onnx import OnnxToxicityClassifier

        return OnnxToxicityClassifier.from_folder(args.onnx, args.int8, args.batch_size, args.threads)
    from toxicity.inference.scorer import ToxicityClassifier

    return ToxicityClassifier.from_checkpoint(args.ckpt, torch_device(args.accelerator), args.batch_size)


def main_shards(args: argparse.Namespace) -> DistributedSummary | None:
    """Scores into a folder of Parquet shards on every rank; only global rank 0 prints (and merges)."""
    from toxicity.inference.sharded import ShardOptions, score_to_shards

    options = ShardOptions(**{option.name: getattr(args, option.name) for option in fields(ShardOptions)})
    use_threads(args.threads)
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
