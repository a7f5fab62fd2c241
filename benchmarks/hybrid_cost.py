"""What the hybrid's n-gram branch costs beside the encoder it extends: scoring comments/s, a training
step's time and the checkpoint's size, measured A/B in one process. Times are the process's CPU time
(`time.process_time`, all threads), not wall time: on a machine shared with other work, wall time measures
the neighbours; rounds alternate between the models all the same.

    python -m benchmarks.hybrid_cost --encoder ENCODER.ckpt --hybrid HYBRID.ckpt \
        --texts ../shared/data/jigsaw_sample

Both checkpoints should come from the same recipe (e.g. the sweep's `late_fusion` and `hybrid` runs).
Writes benchmarks/results/hybrid_cost-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, Run, arguments, table


def texts_of(folder: Path, rows: int) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(folder / "test.csv.gz")
    return frame["comment_text"].astype(str).head(rows).tolist()


def scoring_seconds(classifier, texts: list[str]) -> float:
    started = time.process_time()
    classifier.predict_proba(texts, progress=False)
    return time.process_time() - started


def training_step_seconds(model, texts: list[str], steps: int, batch_size: int) -> float:
    """Seconds per AdamW step (forward, backward, update) on batches built as training builds them."""
    from toxicity.data.batching import PadToLongest
    from toxicity.data.tokenize import tokenize_texts

    collate = PadToLongest(model.tokenizer.pad_token_id or 0, features=model.batch_featurizer())
    ids = tokenize_texts(model.tokenizer, texts, model.hparams.max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=model.hparams.learning_rate)
    started = time.process_time()
    for step in range(steps):
        rows = range(step * batch_size, (step + 1) * batch_size)
        items = [{"input_ids": ids[i % len(ids)], "text": texts[i % len(texts)], "index": i} for i in rows]
        batch = collate(items)
        logits = model.logits_of(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return (time.process_time() - started) / steps


def main(argv: list[str] | None = None) -> dict:
    from toxicity.checkpoint import TrainedCheckpoint
    from toxicity.inference.scorer import ToxicityClassifier

    parser = arguments("hybrid_cost", __doc__)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--hybrid", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="a Kaggle folder (its test.csv.gz)")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run.start("hybrid_cost", argv=argv)
    texts = texts_of(args.texts, args.rows)
    classifiers = {
        name: ToxicityClassifier.from_trained(TrainedCheckpoint.read(path), "cpu")
        for name, path in (("encoder", args.encoder), ("hybrid", args.hybrid))
    }
    score, step = {name: [] for name in classifiers}, {name: [] for name in classifiers}
    for _ in range(args.rounds):
        for name, classifier in classifiers.items():
            score[name].append(scoring_seconds(classifier, texts))
            step[name].append(training_step_seconds(classifier.model, texts, args.steps, 32))
    figures = {
        name: {
            "score_comments_per_cpu_s": len(texts) / float(np.median(score[name])),
            "train_step_cpu_seconds": float(np.median(step[name])),
            "checkpoint_mb": os.path.getsize(Path(path).resolve()) / 1e6,
        }
        for name, path in (("encoder", args.encoder), ("hybrid", args.hybrid))
    }
    ratios = {
        "scoring_speed_hybrid_over_encoder": figures["hybrid"]["score_comments_per_cpu_s"]
        / figures["encoder"]["score_comments_per_cpu_s"],
        "train_step_time_hybrid_over_encoder": figures["hybrid"]["train_step_cpu_seconds"]
        / figures["encoder"]["train_step_cpu_seconds"],
        "checkpoint_mb_added": figures["hybrid"]["checkpoint_mb"] - figures["encoder"]["checkpoint_mb"],
    }
    result = {"figures": figures, "ratios": ratios, "rows": len(texts), "rounds": args.rounds}
    header = ["model", "score comments per CPU-second", "train step CPU-seconds", "checkpoint MB"]
    cells = [
        [
            name,
            f"{row['score_comments_per_cpu_s']:.1f}",
            f"{row['train_step_cpu_seconds']:.2f}",
            f"{row['checkpoint_mb']:.1f}",
        ]
        for name, row in figures.items()
    ]
    lines = [
        "# Hybrid cost (A/B in one process, rounds alternating, CPU time)",
        "",
        (
            f"{len(texts)} jigsaw_sample test comments, median of {args.rounds} rounds; training steps of "
            "32 rows (the load it ran beside is in the environment below)."
        ),
        "",
        *table(header, cells),
        "",
        (
            f"Hybrid / encoder: scoring speed {ratios['scoring_speed_hybrid_over_encoder']:.2f}x, training "
            f"step time {ratios['train_step_time_hybrid_over_encoder']:.2f}x, checkpoint "
            f"+{ratios['checkpoint_mb_added']:.1f} MB."
        ),
    ]
    written = run.write(result, "\n".join(lines), out=args.output)
    print("\n".join(lines) + f"\n\nWrote {written} and .md")
    return result


if __name__ == "__main__":
    main()
