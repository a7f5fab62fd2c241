"""Training throughput: padding to max_length vs per-batch padding with length grouping.

    python -m benchmarks.train_throughput [--data ../shared/data/jigsaw_sample] [--steps 12]

Trains the shipped MiniLM (ToxicCommentTagger defaults) on the real jigsaw_sample comments with the
Lightning Trainer for a few steps per setting, each in a fresh process (so peak RSS is its own), and
prints examples/s side by side, the speed-up, and peak RSS. Writes
benchmarks/results/train_throughput-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, table


def measure(data: str, max_length: int, padded: bool, batch_size: int, steps: int) -> dict:
    """Runs in a child process: `steps` optimizer steps after one warm-up step; times each batch."""
    import pytorch_lightning as pl
    import torch

    from toxicity.data.datamodule import ToxicCommentsDataModule
    from toxicity.models.encoder import ToxicCommentTagger

    class BatchTimer(pl.Callback):
        def __init__(self):
            self.seconds, self.widths = [], []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.start = time.perf_counter()
            self.widths.append(batch["input_ids"].shape[1])

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.seconds.append(time.perf_counter() - self.start)

    torch.manual_seed(0)
    datamodule = ToxicCommentsDataModule(
        data,
        max_length=max_length,
        batch_size=batch_size,
        pad_to_max_length=padded,
        length_grouping=not padded,
    )
    timer = BatchTimer()
    trainer = pl.Trainer(
        max_steps=steps + 1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(ToxicCommentTagger(), datamodule=datamodule)
    per_example = [s / batch_size for s in timer.seconds[1:]]  # first step is warm-up
    datamodule.setup()
    lengths = datamodule.dataset("train").lengths
    return {
        "max_length": max_length,
        "padding": "max_length" if padded else "per-batch + length-grouped",
        "batch_size": batch_size,
        "steps": len(per_example),
        "examples_per_s": batch_size * len(per_example) / sum(timer.seconds[1:]),
        "median_examples_per_s": 1 / statistics.median(per_example),
        "mean_padded_width": statistics.mean(timer.widths[1:]),
        "mean_tokens_per_comment": float(lengths.mean()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(args, max_length: int, padded: bool) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.train_throughput",
        "--child",
        "--data",
        args.data,
        "--max-length",
        str(max_length),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
    ] + (["--padded"] if padded else [])
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown(rows: list[dict], data: str, batch_size: int, steps: int) -> str:
    header = [
        "max_length",
        "padding",
        "examples/s",
        "median ex/s",
        "mean batch width",
        "speed-up",
        "peak RSS (MB)",
    ]
    cells = [
        [
            row["max_length"],
            row["padding"],
            f"{row['examples_per_s']:.1f}",
            f"{row['median_examples_per_s']:.1f}",
            f"{row['mean_padded_width']:.0f}",
            f"{row['speedup_vs_padded']:.2f}x" if "speedup_vs_padded" in row else "1.00x",
            f"{row['peak_rss_mb']:.0f}",
        ]
        for row in rows
    ]
    title = f"# Training throughput: MiniLM-L6 on {data}, batch {batch_size}, {steps} timed steps per row"
    return "\n".join([title, "", *table(header, cells)]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = arguments("train_throughput", __doc__)
    parser.add_argument("--data", default=str(SHARED_DATA / "jigsaw_sample"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--padded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.data, args.max_length, args.padded, args.batch_size, args.steps)))
        return
    if not Path(args.data).exists():
        sys.exit(f"{args.data} is absent: pass --data with the jigsaw_sample folder (see docs/data.md).")
    run = Run.start("train_throughput", argv=argv)
    rows = []
    for max_length in args.lengths:
        padded, grouped = run_child(args, max_length, True), run_child(args, max_length, False)
        rows += [padded, grouped]
        grouped["speedup_vs_padded"] = grouped["examples_per_s"] / padded["examples_per_s"]
    report = markdown(rows, args.data, args.batch_size, args.steps)
    print(report)
    print(f"Wrote {run.write({'rows': rows}, report, out=args.output)} and .md")


if __name__ == "__main__":
    main()
