"""Inference throughput on CPU: the reference loop vs ToxicityClassifier vs ONNX fp32 vs ONNX int8.

    python -m benchmarks.inference_throughput [--ckpt checkpoints/best-checkpoint.ckpt] [--n 1000]

Scores real comments, the Jigsaw test comments of ../shared/data/jigsaw_sample (a seeded sample of
--n) and the TweetEval offensive test tweets (up to --n), with
  (a) reference: one comment at a time, padded to 512 tokens (the reference notebook's loop), on the
      first --n-single texts only, since it is slow;
  (b) ToxicityClassifier, PyTorch fp32: length-sorted batches padded per batch, max_length 128;
  (c) OnnxToxicityClassifier, ONNX fp32, same batching;
  (d) OnnxToxicityClassifier, ONNX int8 (dynamically quantized), same batching;
  (e) with --text2text-ckpt: ToxicityClassifier on a text-to-text checkpoint (greedy generation plus the
      per-tag probabilities from the decoder), same batching: the second model family beside (b).
Each setting runs in a fresh process (so its peak RSS is its own): one warm-up pass, then --repeats
timed passes; the median is reported. The model is --ckpt, or without it the shipped pretrained MiniLM
with an untrained head (as fast; the scores mean nothing). With --ckpt, the AUROC of ONNX fp32 and int8
on the scored Jigsaw test rows is compared too. Writes
benchmarks/results/inference_throughput-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, table

SETTINGS = {
    "a": "(a) one at a time, padded to 512",
    "b": "(b) ToxicityClassifier, torch fp32",
    "c": "(c) ONNX fp32",
    "d": "(d) ONNX int8",
    "e": "(e) text-to-text ToxicityClassifier, torch fp32",
}
REFERENCE_LENGTH = 512
MAX_LENGTH = 128  # of (b), (c), (d): the untrained checkpoint's, and the CPU recipe's


# ------------------------------------------------------------------------------------------ the inputs
def load_texts(data: Path, n: int, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, int]]:
    """A seeded sample of `n` Jigsaw test comments, the first `n` TweetEval test tweets, and the totals."""
    import gzip

    import pandas as pd

    jigsaw = pd.read_csv(data / "jigsaw_sample" / "test.csv.gz", keep_default_na=False)["comment_text"]
    with gzip.open(data / "tweeteval_offensive" / "test_text.txt.gz", "rt", encoding="utf-8") as lines:
        tweets = [line.rstrip("\n") for line in lines]
    texts = {
        "jigsaw_test": jigsaw.sample(n=min(n, len(jigsaw)), random_state=seed).tolist(),
        "tweeteval_offensive_test": tweets[:n],
    }
    return texts, {"jigsaw_test": len(jigsaw), "tweeteval_offensive_test": len(tweets)}


def untrained_checkpoint(path: Path) -> Path:
    """The shipped MiniLM with a seeded random head, saved as a toxicity checkpoint."""
    import pytorch_lightning as pl
    import torch

    from toxicity.models.encoder import ToxicCommentTagger

    torch.manual_seed(0)
    model = ToxicCommentTagger(max_length=MAX_LENGTH)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": pl.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # the tokenizer and the model family, as a trained one carries them
    torch.save(checkpoint, path)
    return path


def mean_tokens(tokenizer_folder: Path, texts: dict[str, list[str]]) -> dict[str, float]:
    """Tokens per text (special tokens included, truncated at MAX_LENGTH), per data set."""
    from transformers import AutoTokenizer

    from toxicity.data.tokenize import tokenize_texts

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    return {
        name: sum(map(len, tokenize_texts(tokenizer, rows, MAX_LENGTH))) / len(rows)
        for name, rows in texts.items()
    }


# ----------------------------------------------------------------------------------- one setting (child)
def reference_scorer(checkpoint: str):
    """The reference notebook's loop: each comment alone, padded to 512 tokens."""
    import numpy as np
    import torch

    from toxicity.inference.scorer import ToxicityClassifier

    classifier = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")

    def score(texts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for text in texts:
                encoded = classifier.tokenizer(
                    text,
                    max_length=REFERENCE_LENGTH,
                    padding="max_length",
                    truncation=True,
                    return_tensors="pt",
                )
                logits = classifier.model(encoded["input_ids"], encoded["attention_mask"])
                rows.append(torch.sigmoid(logits)[0].numpy())
        return np.stack(rows)

    return score


def make_scorer(setting: str, checkpoint: str, onnx_folder: str, batch_size: int):
    import torch

    from toxicity.inference.onnx import OnnxToxicityClassifier
    from toxicity.inference.scorer import ToxicityClassifier

    if setting == "a":
        return reference_scorer(checkpoint)
    if setting in "be":  # (e) is the same scorer over a text-to-text checkpoint
        return ToxicityClassifier.from_checkpoint(checkpoint, "cpu", batch_size).predict_proba
    threads = torch.get_num_threads()  # the same cores as PyTorch
    return OnnxToxicityClassifier.from_folder(
        onnx_folder, int8=setting == "d", batch_size=batch_size, threads=threads
    ).predict_proba


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child started by
    a parent holding a model would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    setting: str,
    checkpoint: str,
    onnx_folder: str,
    texts_file: str,
    n_single: int,
    batch_size: int,
    repeats: int,
) -> dict:
    """Runs in a child process: comments/s (median of `repeats` passes after a warm-up) per data set."""
    import torch

    score = make_scorer(setting, checkpoint, onnx_folder, batch_size)
    results = {
        "setting": SETTINGS[setting],
        "threads": torch.get_num_threads(),
        "datasets": {},
        "load_average_1min": [os.getloadavg()[0]],
    }
    for name, texts in json.loads(Path(texts_file).read_text()).items():
        texts = texts[:n_single] if setting == "a" else texts
        score(texts[:8])  # warm-up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            score(texts)
            seconds.append(time.perf_counter() - started)
        results["datasets"][name] = {
            "comments": len(texts),
            "seconds": seconds,
            "comments_per_s": len(texts) / statistics.median(seconds),
        }
    results["load_average_1min"].append(os.getloadavg()[0])  # the machine is shared: note other work
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def int8_auroc_change(onnx_folder: str, data: Path) -> dict:
    """Runs in a child process: per-tag AUROC of ONNX fp32 and int8 on the scored Jigsaw test rows."""
    import numpy as np

    from toxicity.data.sources import find_kaggle_files, load_kaggle_test
    from toxicity.evaluation.metrics import has_both_classes, roc_auc_or_none
    from toxicity.inference.onnx import OnnxToxicityClassifier

    fp32 = OnnxToxicityClassifier.from_folder(onnx_folder)
    int8 = OnnxToxicityClassifier.from_folder(onnx_folder, int8=True)
    test = load_kaggle_test(find_kaggle_files(data / "jigsaw_sample"), "comment_text", fp32.tags)
    texts, truth = test["text"].tolist(), test[fp32.tags].to_numpy()
    probs = {"fp32": fp32.predict_proba(texts), "int8": int8.predict_proba(texts)}
    per_tag = {}
    for k, tag in enumerate(fp32.tags):
        if has_both_classes(truth[:, k]):
            aurocs = {kind: roc_auc_or_none(truth[:, k], p[:, k]) for kind, p in probs.items()}
            per_tag[tag] = {
                **aurocs,
                "change": aurocs["int8"] - aurocs["fp32"],
                "positives": int(truth[:, k].sum()),
            }
    means = {kind: float(np.mean([row[kind] for row in per_tag.values()])) for kind in ("fp32", "int8")}
    return {
        "rows": len(texts),
        "per_tag": per_tag,
        "mean_fp32": means["fp32"],
        "mean_int8": means["int8"],
        "mean_change": means["int8"] - means["fp32"],
        "max_abs_prob_diff": float(np.abs(probs["int8"] - probs["fp32"]).max()),
    }


# ------------------------------------------------------------------------------------------ the parent
def run_child(*args: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.inference_throughput", "--child", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def rate(setting: dict, name: str) -> float:
    return setting["datasets"][name]["comments_per_s"]


def speedup(row: dict, base: dict | None, names: list[str]) -> str:
    if base is None:
        return "n/a"
    return " / ".join(f"{rate(row, name) / rate(base, name):.1f}x" for name in names)


def markdown(results: dict) -> str:
    names = list(results["texts"])
    rows = {row["key"]: row for row in results["settings"]}
    header = ["setting", *(f"{name} comments/s" for name in names), "speed-up vs (a)", "speed-up vs (b)"]
    cells = [
        [
            row["setting"],
            *(f"{rate(row, name):.1f}" for name in names),
            speedup(row, rows.get("a"), names),
            speedup(row, rows.get("b"), names),
            f"{row['peak_rss_mb']:.0f} MB",
        ]
        for row in rows.values()
    ]
    lines = [f"# Scoring speed ({results['checkpoint']})", ""]
    for name, counts in results["texts"].items():
        lines.append(
            f"{name}: {counts['scored_b_c_d']} of {counts['available']} texts for (b), (c), (d), "
            f"the first {counts['scored_a']} of those for (a); {counts['mean_tokens']:.1f} tokens on "
            f"average (at most {MAX_LENGTH}), so (a) runs {REFERENCE_LENGTH / counts['mean_tokens']:.1f}x "
            "as many tokens."
        )
    loads = [load for row in results["settings"] for load in row["load_average_1min"]]
    lines += [
        "",
        (
            f"1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} "
            f"on {os.cpu_count()} CPUs (about 2 is this benchmark alone)."
        ),
        "",
        *table([*header, "peak RSS"], cells),
        "",
    ]
    auroc = results["int8_auroc_change"]
    if isinstance(auroc, dict):
        lines.append(
            f"ONNX int8 vs fp32, mean AUROC on {auroc['rows']} scored Jigsaw test rows: "
            f"{auroc['mean_fp32']:.4f} → {auroc['mean_int8']:.4f} ({auroc['mean_change']:+.4f})"
        )
    else:
        lines.append("int8 AUROC change: skipped (pass a trained checkpoint with --ckpt).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = arguments("inference_throughput", __doc__)
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint (default: untrained MiniLM head)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--n", type=int, default=1000, help="texts per data set for (b), (c), (d)")
    parser.add_argument("--n-single", type=int, default=64, help="texts per data set for (a)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="for (b), (c), (d); 16-32 was fastest on 2 cores, 64 about 8%% slower",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--text2text-ckpt",
        default=None,
        help="a trained text-to-text checkpoint, for setting (e) (an untrained one would "
        "generate to the length limit, so none is made up)",
    )
    parser.add_argument("--settings", default=None, help="default: abcd, and e with --text2text-ckpt")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = (
            int8_auroc_change(rest[0], Path(rest[1]))
            if kind == "auroc"
            else measure(kind, rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), int(rest[5]))
        )
        print(json.dumps(result))
        return

    from toxicity.exporters.onnx import export_onnx

    run = Run.start("inference_throughput", argv=argv)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        texts, available = load_texts(args.data, args.n)
        (work / "texts.json").write_text(json.dumps(texts))
        checkpoint = args.ckpt or str(untrained_checkpoint(work / "untrained.ckpt"))
        export_check = export_onnx(checkpoint, work / "onnx", int8=True)
        tokens = mean_tokens(work / "onnx", texts)
        settings = []
        for key in args.settings or ("abcde" if args.text2text_ckpt else "abcd"):
            if key == "e" and not args.text2text_ckpt:
                raise SystemExit("error: setting e needs --text2text-ckpt")
            print(f"measuring {SETTINGS[key]} ...", flush=True)
            row = run_child(
                key,
                args.text2text_ckpt if key == "e" else checkpoint,
                str(work / "onnx"),
                str(work / "texts.json"),
                str(args.n_single),
                str(args.batch_size),
                str(args.repeats),
            )
            settings.append({"key": key, **row})
        auroc = run_child("auroc", str(work / "onnx"), str(args.data)) if args.ckpt else None
    results = {
        "checkpoint": args.ckpt or "the shipped MiniLM (all-MiniLM-L6-v2) with an untrained head",
        "text2text_checkpoint": args.text2text_ckpt,
        "max_length": MAX_LENGTH,
        "reference_length": REFERENCE_LENGTH,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "statistic": "median of the timed passes, after one warm-up pass",
        "texts": {
            name: {
                "available": available[name],
                "scored_b_c_d": len(rows),
                "scored_a": min(len(rows), args.n_single),
                "mean_tokens": tokens[name],
            }
            for name, rows in texts.items()
        },
        "onnx_parity_on_sample_texts": export_check,
        "settings": settings,
        "int8_auroc_change": auroc or "skipped: pass a trained checkpoint with --ckpt",
    }
    print(markdown(results))
    print(f"Wrote {run.write(results, markdown(results), out=args.output)} and .md")


if __name__ == "__main__":
    main()
