"""How faithful are the word attributions, and what do they cost? (issue 30)

ERASER's figures (DeYoung et al., 2020) for each method's top-k words, on real test comments the model
flags: comprehensiveness, the drop in the tag's probability when those k words are cut out of the
comment (higher: the words mattered), and sufficiency, the drop when only those words are kept (lower:
they carry the score). The same figures for k words drawn at random (the floor any method must beat), and
the aggregate over k = 1, 3, 5 (ERASER's AOPC over bins, with word counts for bins). Methods:
integrated gradients (Captum, 16 Gauss-Legendre steps), gradient x input (Captum) and leave-one-word-out
occlusion. Time per comment is measured for all tags at once, as ToxicityClassifier.explain gives them,
and again on real comments of about 60 tokens (the budget: under 1 s on 2 CPU cores).

    python -m benchmarks.explain_faithfulness --ckpt CKPT [--comments 30] [--data-root ../shared/data]

The comments: jigsaw_sample's scored test rows labelled toxic, and TweetEval offensive's test tweets
labelled offensive: the `--comments` of each with the highest `--tag` probability (the scores a moderator
would be asked about), of at most 128 tokens.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import SHARED_DATA, Run, arguments, table

METHODS = ("integrated_gradients", "gradient_x_input", "occlusion")
KS = (1, 3, 5)


def jigsaw_toxic(root: Path) -> list[str]:
    folder = root / "jigsaw_sample"
    texts = pd.read_csv(folder / "test.csv.gz")
    labels = pd.read_csv(folder / "test_labels.csv.gz")
    rows = texts.merge(labels, on="id")
    return rows.loc[rows["toxic"] == 1, "comment_text"].tolist()


def tweeteval_offensive(root: Path) -> list[str]:
    folder = root / "tweeteval_offensive"
    texts = pd.read_csv(folder / "test_text.txt.gz", header=None, sep="\t", quoting=3)[0].astype(str)
    labels = pd.read_csv(folder / "test_labels.txt.gz", header=None)[0]
    return texts[labels.to_numpy() == 1].tolist()


def flagged(classifier, texts: list[str], tag: str, count: int) -> list[str]:
    """The `count` texts of at most 128 tokens with the highest `tag` probability (in file order)."""
    short = [t for t in texts if len(classifier.tokenizer(t)["input_ids"]) <= 128]
    probs = classifier.predict(short, progress=False)[tag].to_numpy()
    chosen = sorted(np.argsort(-probs, kind="stable")[:count])
    return [short[i] for i in chosen]


def probability(classifier, texts: list[str], column: int) -> np.ndarray:
    from toxicity.models.attribution import text_logits

    logits = text_logits(classifier.model, texts, classifier.max_length, classifier.truncation)
    return 1.0 / (1.0 + np.exp(-logits[:, column]))


def eraser(
    classifier, explanation, order: np.ndarray, column: int, full: float
) -> dict[int, tuple[float, float]]:
    """k -> (comprehensiveness, sufficiency) of the words in `order` (most important first)."""
    from toxicity.models.attribution import only_words, without_words

    text, words = explanation.text, explanation.words
    ks = [k for k in KS if k <= len(words)]
    variants = [without_words(text, words, order[:k]) for k in ks] + [
        only_words(text, words, order[:k]) for k in ks
    ]
    probs = probability(classifier, variants, column)
    return {k: (full - probs[i], full - probs[len(ks) + i]) for i, k in enumerate(ks)}


def measure(classifier, texts: list[str], tag: str, seed: int) -> dict:
    column = classifier.tags.index(tag)
    rng = np.random.default_rng(seed)
    scores: dict[str, dict[int, list]] = {m: {k: [] for k in KS} for m in (*METHODS, "random")}
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    for text in texts:
        explanations = {}
        for method in METHODS:
            start = time.perf_counter()
            (explanations[method],) = classifier.explain(text, method=method)  # all tags, as a user gets them
            seconds[method].append(time.perf_counter() - start)
        full = explanations["occlusion"].scores[tag]
        n_words = len(explanations["occlusion"].words)
        for method, explanation in explanations.items():
            order = np.argsort(-explanation.attributions[tag], kind="stable")
            for k, pair in eraser(classifier, explanation, order, column, full).items():
                scores[method][k].append(pair)
        draws = [rng.permutation(n_words) for _ in range(3)]
        pairs = [eraser(classifier, explanations["occlusion"], order, column, full) for order in draws]
        for k in pairs[0]:
            scores["random"][k].append(tuple(np.mean([p[k] for p in pairs], axis=0)))
    summary = {}
    for method, by_k in scores.items():
        figures = {}
        for k, pairs in by_k.items():
            values = np.array(pairs)
            figures[f"comprehensiveness@{k}"] = round(float(values[:, 0].mean()), 4)
            figures[f"sufficiency@{k}"] = round(float(values[:, 1].mean()), 4)
        figures["comprehensiveness_aopc"] = round(np.mean([figures[f"comprehensiveness@{k}"] for k in KS]), 4)
        figures["sufficiency_aopc"] = round(np.mean([figures[f"sufficiency@{k}"] for k in KS]), 4)
        if method in seconds:
            figures["seconds_per_comment_median"] = round(float(np.median(seconds[method])), 3)
            figures["seconds_per_comment_mean"] = round(float(np.mean(seconds[method])), 3)
        summary[method] = figures
    summary["comments"] = len(texts)
    summary["mean_words"] = round(float(np.mean([len(t.split()) for t in texts])), 1)
    return summary


def budget(classifier, texts: list[str], repeats: int = 3, methods: tuple[str, ...] = METHODS) -> dict:
    """Seconds to explain real comments of 55 to 65 tokens, all tags at once: the median of `repeats`."""
    sized = [t for t in texts if 55 <= len(classifier.tokenizer(t)["input_ids"]) <= 65][:5]
    out = {"comments": len(sized), "tokens": [len(classifier.tokenizer(t)["input_ids"]) for t in sized]}
    for method in methods:
        times, cpu = [], []
        for text in sized:
            runs, cpu_runs = [], []
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                classifier.explain(text, method=method)
                runs.append(time.perf_counter() - start)
                cpu_runs.append(time.process_time() - start_cpu)
            times.append(float(np.median(runs)))
            cpu.append(float(np.median(cpu_runs)))
        out[method] = {
            "median_s": round(float(np.median(times)), 3),
            "max_s": round(float(np.max(times)), 3),
            "cpu_median_s": round(float(np.median(cpu)), 3),  # this process's CPU time, over its threads
        }
    return out


def markdown(figures: dict) -> str:
    lines = [
        "# Word attributions: faithfulness (ERASER) and time per comment",
        "",
        (
            f"Checkpoint `{figures['settings']['ckpt']}`, tag `{figures['settings']['tag']}`, "
            f"{figures['settings']['threads']} torch threads. Comprehensiveness: probability drop when the "
            "top-k words are cut out (higher is better). Sufficiency: drop when only they are kept (lower is "
            "better). AOPC: the mean over k = 1, 3, 5. Random: 3 draws of k words per comment."
        ),
    ]
    for dataset in ("jigsaw_sample", "tweeteval_offensive"):
        if dataset not in figures:
            continue
        result = figures[dataset]
        lines += [
            "",
            f"## {dataset} ({result['comments']} comments, {result['mean_words']} words on average)",
            "",
        ]
        header = [
            "method",
            "compr. @1",
            "@3",
            "@5",
            "AOPC",
            "suff. @1",
            "@3",
            "@5",
            "AOPC",
            "s / comment (median)",
        ]
        rows = []
        for method in (*METHODS, "random"):
            f = result[method]
            rows.append(
                [method]
                + [f"{f[f'comprehensiveness@{k}']:.3f}" for k in KS]
                + [f"**{f['comprehensiveness_aopc']:.3f}**"]
                + [f"{f[f'sufficiency@{k}']:.3f}" for k in KS]
                + [f"**{f['sufficiency_aopc']:.3f}**", f"{f.get('seconds_per_comment_median', '—')}"]
            )
        lines += table(header, rows)
    b = figures["budget_60_tokens"]
    lines += [
        "",
        f"## The budget: 55-65 tokens, all tags at once ({b['comments']} comments, tokens {b['tokens']})",
        "",
    ]
    lines += [
        (
            "Wall time depends on what else runs on the cores; this process's CPU time (all its threads) "
            "does not: on 2 idle cores the wall time lies between half of it (two threads fully used) and "
            "all of it."
        ),
        "",
    ]
    lines += table(
        ["method", "median s", "max s", "CPU s (median)"],
        [[m, b[m]["median_s"], b[m]["max_s"], b[m].get("cpu_median_s", "—")] for m in METHODS if m in b],
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = arguments("explain_faithfulness", __doc__)
    parser.add_argument(
        "--ckpt", type=Path, required=True, help="a trained checkpoint (e.g. the cpu_minilm recipe)"
    )
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument("--comments", type=int, default=30, help="comments per dataset")
    parser.add_argument("--tag", default="toxic")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--budget-only",
        nargs="+",
        choices=METHODS,
        metavar="METHOD",
        help="measure only the 60-token budget, for these methods (the result's variant: budget)",
    )
    args = parser.parse_args(argv)
    import torch

    from toxicity import ToxicityClassifier

    logging.basicConfig(level=logging.WARNING)
    threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    run = Run.start("explain_faithfulness", variant="budget" if args.budget_only else None, argv=argv)
    classifier = ToxicityClassifier.from_checkpoint(args.ckpt, device="cpu")
    figures: dict = {
        "settings": {"ckpt": str(args.ckpt), "tag": args.tag, "threads": threads, "seed": args.seed}
    }
    pool = jigsaw_toxic(args.data_root) + tweeteval_offensive(args.data_root)
    if args.budget_only:
        figures["budget_60_tokens"] = budget(classifier, pool, methods=tuple(args.budget_only))
        path = run.write(figures, markdown(figures))
        print(path)
        return path
    for name, load in (("jigsaw_sample", jigsaw_toxic), ("tweeteval_offensive", tweeteval_offensive)):
        texts = flagged(classifier, load(args.data_root), args.tag, args.comments)
        figures[name] = measure(classifier, texts, args.tag, args.seed)
        print(name, figures[name], flush=True)
    figures["budget_60_tokens"] = budget(classifier, pool)
    path = run.write(figures, markdown(figures))
    print(path)
    return path


if __name__ == "__main__":
    main()
