"""ONNX int8 candidates against PyTorch fp32: speed, score differences, batch dependence, decision flips.

    python -m benchmarks.int8_parity [--ckpt checkpoints/best-checkpoint.ckpt] [--n 300] [--variant demo]

Candidates: `dynamic` (toxicity.exporters.onnx.quantize_int8: int8 activations, scales picked per run)
scored in batches of 32 (the --int8 before it scored one text per run), the same model scored one text
per run (what --int8 writes and serves: batch-independent by construction), and `static` (int8 MatMul
activations with scales calibrated on the tuning rows; defined here only, for the comparison).
Tuning rows: the first half of the demo comments (toxicity/data/demo); measured rows: the other half plus
a seeded sample of --n Jigsaw test comments when ../shared/data is there. Thresholds (rule f1) are tuned
on the tuning rows for torch and, separately, for each candidate on its own scores.
All settings are timed side by side in one process on the same threads: medians of --repeats passes.
Without --ckpt the model is the shipped MiniLM with a seeded untrained head (real encoder activations,
meaningless scores). Writes benchmarks/results/int8_parity[-<variant>]-<YYYY-MM-DD>-<machine>.json and .md
(benchmarks.common).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, Run, arguments, slug, table
from benchmarks.inference_throughput import untrained_checkpoint
from toxicity.core.files import atomic_output
from toxicity.data.batching import PadToLongest
from toxicity.data.tokenize import tokenize_texts


def load_rows(n: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Labelled tuning rows (demo, first half) and the measured texts (demo second half, Jigsaw sample)."""
    import pandas as pd

    from toxicity.core.tags import LABELS
    from toxicity.data.demo import DEMO_CSV

    demo = pd.read_csv(DEMO_CSV, keep_default_na=False)
    half = len(demo) // 2
    measured = demo["comment_text"][half:].tolist()
    jigsaw = SHARED_DATA / "jigsaw_sample" / "test.csv.gz"
    if jigsaw.is_file():
        comments = pd.read_csv(jigsaw, keep_default_na=False)["comment_text"]
        measured += comments.sample(n=min(n, len(comments)), random_state=0).tolist()
    return demo["comment_text"][:half].tolist(), demo[list(LABELS)][:half].to_numpy(), measured


def timed(score, texts: list[str], repeats: int) -> tuple[np.ndarray, float]:
    probs = score(texts)  # also the warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(texts)
        seconds.append(time.perf_counter() - started)
    return probs, statistics.median(seconds)


def flips(reference: np.ndarray, other: np.ndarray, ref_cut, other_cut) -> int:
    return int(((reference >= ref_cut) != (other >= other_cut)).sum())


def compare(
    name: str, probs: dict, tuned: dict, batch_gap: float, seconds: float, torch_seconds: float
) -> dict:
    torch_probs, candidate = probs["torch"], probs[name]
    difference = np.abs(candidate.astype(np.float64) - torch_probs)
    return {
        "setting": name,
        "speed_vs_torch": torch_seconds / seconds,
        "max_abs_diff": float(difference.max()),
        "share_off_by_1e-2": float((difference > 1e-2).mean()),
        "flips_at_0.5": flips(torch_probs, candidate, 0.5, 0.5),
        "flips_at_torch_thresholds": flips(torch_probs, candidate, tuned["torch"], tuned["torch"]),
        "flips_at_own_thresholds": flips(torch_probs, candidate, tuned["torch"], tuned[name]),
        "batch_vs_alone_max_diff": batch_gap,
    }


def quantize_static_int8(fp32: Path, int8: Path, calibration: CalibrationFeeds) -> None:
    """int8 weights and activations of the MatMuls, activation scales fixed by calibration on real texts."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration is None:
        raise ValueError("static int8 needs calibration texts.")
    with atomic_output(int8) as partial:
        quantize_static(
            str(fp32),
            str(partial),
            calibration,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.99},
        )


class CalibrationFeeds:
    """onnxruntime's CalibrationDataReader over texts: padded batches of input_ids and attention_mask."""

    def __init__(self, scorer, texts: Sequence[str], batch_size: int = 16):
        ids = tokenize_texts(scorer.tokenizer, list(texts), scorer.max_length, scorer.truncation)
        batches = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
        self._feeds = iter([self._feed(scorer, batch) for batch in batches])

    @staticmethod
    def _feed(scorer, rows: list[list[int]]) -> dict[str, np.ndarray]:
        # one width for all: the percentile calibrator stacks every batch's activations into one array
        collate = PadToLongest(scorer.collate.pad_token_id, pad_to=scorer.max_length)
        batch = collate([{"input_ids": row, "index": k} for k, row in enumerate(rows)])
        return {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def measure(checkpoint: str, work: Path, n: int, repeats: int, threads: int) -> dict:
    import torch

    from toxicity.evaluation.thresholds import DEFAULT_RULE, tune_thresholds
    from toxicity.exporters.onnx import export_onnx, quantize_int8
    from toxicity.inference.onnx import OnnxToxicityClassifier
    from toxicity.inference.scorer import ToxicityClassifier

    torch.set_num_threads(threads)
    tuning_texts, tuning_labels, texts = load_rows(n)
    export_onnx(checkpoint, work)
    torch_scorer = ToxicityClassifier.from_checkpoint(checkpoint, "cpu", batch_size=32)
    scorers = {"torch": torch_scorer, "onnx_fp32": OnnxToxicityClassifier.from_folder(work, threads=threads)}
    quantize_int8(work / "model.onnx", work / "dynamic.onnx")
    quantize_static_int8(
        work / "model.onnx", work / "static.onnx", CalibrationFeeds(torch_scorer, tuning_texts)
    )
    for method in ("dynamic", "static"):
        (work / "model.int8.onnx").unlink(missing_ok=True)
        (work / "model.int8.onnx").symlink_to(work / f"{method}.onnx")
        scorers[method] = OnnxToxicityClassifier.from_folder(work, int8=True, threads=threads)
        scorers[method].batch_size = 32  # batched, as before --int8 scored one text per run
        (work / "model.int8.onnx").unlink()
    alone = OnnxToxicityClassifier(
        scorers["dynamic"].session,
        torch_scorer.tokenizer,
        torch_scorer.tags,
        torch_scorer.max_length,
        batch_size=1,
    )
    scorers["dynamic_one_text_per_run"] = alone
    probs, seconds, tuned, gaps = {}, {}, {}, {}
    for name, scorer in scorers.items():  # side by side: each setting's passes one after the other
        probs[name], seconds[name] = timed(scorer.predict_proba, texts, repeats)
        tuned[name] = np.array(
            list(
                tune_thresholds(
                    tuning_labels, scorer.predict_proba(tuning_texts), scorer.tags, DEFAULT_RULE
                ).values()
            )
        )
        one_by_one = np.concatenate([scorer.predict_proba([text]) for text in texts[:64]])
        gaps[name] = float(np.abs(one_by_one - probs[name][:64]).max())
    return {
        "texts_measured": len(texts),
        "tuning_rows": len(tuning_texts),
        "threads": threads,
        "load_average_1min": os.getloadavg()[0],
        "settings": [
            compare(name, probs, tuned, gaps[name], seconds[name], seconds["torch"]) for name in scorers
        ],
    }


def markdown(results: dict) -> str:
    columns = [
        "setting",
        "speed_vs_torch",
        "max_abs_diff",
        "share_off_by_1e-2",
        "flips_at_0.5",
        "flips_at_torch_thresholds",
        "flips_at_own_thresholds",
        "batch_vs_alone_max_diff",
    ]
    summary = (
        f"{results['texts_measured']} texts measured, thresholds tuned "
        f"on {results['tuning_rows']} rows; {results['threads']} threads; 1-min load average "
        f"{results['load_average_1min']:.1f} (other work on the machine shows here: read the ratios, "
        "not absolutes). Flips are counted over texts x 6 tags."
    )
    cells = [
        [
            row["setting"],
            f"{row['speed_vs_torch']:.2f}x",
            f"{row['max_abs_diff']:.2e}",
            f"{100 * row['share_off_by_1e-2']:.1f}%",
            *(row[c] for c in columns[4:7]),
            f"{row['batch_vs_alone_max_diff']:.1e}",
        ]
        for row in results["settings"]
    ]
    lines = [f"# int8 parity ({results['checkpoint']})", "", summary, "", *table(columns, cells)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = arguments("int8_parity", __doc__)
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint (default: untrained MiniLM head)")
    parser.add_argument(
        "--n", type=int, default=300, help="Jigsaw test comments measured besides the demo half"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", default=None, help="a name part for the results, e.g. demo")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run.start("int8_parity", slug(args.variant) if args.variant else None, argv)
    with tempfile.TemporaryDirectory() as work:
        checkpoint = args.ckpt or str(untrained_checkpoint(Path(work) / "untrained.ckpt"))
        results = measure(checkpoint, Path(work) / "onnx", args.n, args.repeats, args.threads)
    results = {"checkpoint": args.ckpt or "shipped MiniLM, untrained seeded head", **results}
    print(markdown(results))
    print(f"Wrote {run.write(results, markdown(results), out=args.output)} and .md")


if __name__ == "__main__":
    main()
