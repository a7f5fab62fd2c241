"""Recipe sweep: one change at a time against the default recipe, over several seeds, on the same rows.

    python -m benchmarks.sweep --data-root ../shared/data                     # every variant, 3 seeds
    python -m benchmarks.sweep --variants base pooler --seeds 1 2 --parallel 1 --datasets tweeteval_offensive

Each (dataset, variant, seed) trains `experiments/cpu_minilm.yaml` through `toxicity.fit` with the
variant's extra arguments and is scored by benchmarks.run's figures (TweetEval: test macro-F1 over both
classes at 0.5 and val-tuned; jigsaw_sample: mean AUROC, the Kaggle metric). The training seed (model
init, dropout, batch order) changes; the rows do not. Jobs run in `--parallel` processes (on a GPU they
share it; on 2 CPU cores use 1). Writes sweep[-<label>]-<YYYY-MM-DD>-<machine>.json (every job) and .md
(mean and spread per variant, difference to `base`) into --out as jobs finish (benchmarks.common).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, SHARED_DATA, Run, arguments, table
from benchmarks.run import Split3, datasets, figures, fit_arguments, score_both, subset

EMA = [
    "--trainer.callbacks+=pytorch_lightning.callbacks.EMAWeightAveraging",
    "--trainer.callbacks.decay",
    "0.998",
]
VARIANTS: dict[str, list[str]] = {  # one change each against the default recipe (cpu_minilm.yaml, 3 epochs)
    "base": [],
    "pooler": ["--model.pooling", "pooler"],
    "cls": ["--model.pooling", "cls"],
    "lr_1e-4": ["--model.learning_rate", "1e-4"],
    "lr_1e-4+llrd_0.8": ["--model.learning_rate", "1e-4", "--model.layer_decay", "0.8"],
    "epochs_5": ["--trainer.max_epochs", "5"],
    "ema_0.998": EMA,  # scored from last.ckpt: a weights-only best checkpoint does not hold the average
    "class_weights": [],  # pos_weight = negatives / positives of each tag in the training rows
    "head_tail": ["--data.truncation", "head_tail"],  # long texts only: jigsaw_sample
    "max_length_256": ["--data.max_length", "256"],
    "obfuscate_1.0": ["--data.obfuscate_share", "1.0"],  # a misspelled copy of every tagged row
    "obfuscate_0.25": ["--data.obfuscate_share", "0.25"],  # ... of a quarter of them
}
VARIANTS["pooler+lr_1e-4+llrd_0.8"] = (
    VARIANTS["pooler"] + VARIANTS["lr_1e-4+llrd_0.8"]
)  # the two that helped most
VARIANTS["pooler+class_weights"] = VARIANTS["pooler"]
# issue 19: meaning and spelling. `hybrid` trains the joint model (experiments/hybrid.yaml on top of the
# recipe; measured as `hybrid_warm`); `late_fusion` trains the recipe, then stacks it with TF-IDF per tag
# on validation predictions
# (its job also records the recipe alone and TF-IDF alone, scored on the same rows: `parts`).
VARIANTS["hybrid"] = ["--config", str(ROOT / "experiments" / "hybrid.yaml")]  # the warm-started hybrid
VARIANTS["hybrid_zero_start"] = VARIANTS["hybrid"] + [  # the first recipe: table from zero, branch dropout
    "--model.init_args.ngram_warm_start",
    "false",
    "--model.init_args.ngram_learning_rate",
    "0.02",
    "--model.init_args.branch_dropout",
    "0.25",
]
VARIANTS["hybrid_both_always"] = VARIANTS["hybrid_zero_start"] + ["--model.init_args.branch_dropout", "0"]
VARIANTS["hybrid_ngram_lr_0.1"] = VARIANTS["hybrid_zero_start"] + [
    "--model.init_args.ngram_learning_rate",
    "0.1",
]
VARIANTS["hybrid_branch_losses"] = VARIANTS["hybrid_both_always"] + ["--model.init_args.branch_loss", "1"]
VARIANTS["hybrid_frozen_table"] = VARIANTS["hybrid"] + [  # the warm table kept as fitted: the encoder
    "--model.init_args.ngram_learning_rate",  # learns what the n-gram regressions leave
    "0",
]
VARIANTS["hybrid_balanced"] = VARIANTS["hybrid"] + ["--model.init_args.ngram_class_weight", "balanced"]
VARIANTS["late_fusion"] = []
LONG_TEXT_ONLY = {"head_tail", "max_length_256"}
LONG_TEXT_DATASETS = {"jigsaw_sample"}


def variant_arguments(variant: str, unit: Split3) -> list[str]:
    if variant.endswith("class_weights"):
        positives = unit.train[unit.tags].to_numpy().sum(axis=0).clip(min=1)
        weights = ((len(unit.train) - positives) / positives).round(2).tolist()
        return VARIANTS[variant] + ["--model.pos_weight", json.dumps(weights)]
    return VARIANTS[variant]


def run_job(
    unit: Split3,
    variant: str,
    seed: int,
    folder: Path,
    epochs: int,
    backbone: str | None,
    precision: str | None,
) -> dict:
    """Trains and scores one (dataset, variant, seed) in this process; returns its figures."""
    from toxicity.fit import last_checkpoint_callback
    from toxicity.fit import main as fit
    from toxicity.inference.scorer import ToxicityClassifier

    arguments = fit_arguments(unit, folder, epochs, seed) + variant_arguments(variant, unit)
    if backbone:
        arguments += ["--model.backbone", backbone]
    if precision:
        arguments += ["--trainer.precision", precision]
    started = time.perf_counter()
    cli = fit(arguments)
    seconds = time.perf_counter() - started
    checkpoint = folder / "best.ckpt"
    if variant.startswith("ema"):
        checkpoint = Path(last_checkpoint_callback(cli.trainer).dirpath) / "last.ckpt"
    classifier = ToxicityClassifier.from_checkpoint(checkpoint)
    parts = {}
    if variant == "late_fusion":
        classifier, parts = late_fusion(classifier, unit)
    scored = score_both(classifier, unit, len(unit.train) * epochs / seconds)
    result = figures(unit, scored)
    if parts:
        result["parts"] = parts
    result.update(
        dataset=unit.name,
        variant=variant,
        seed=seed,
        train_seconds=seconds,
        epochs_run=cli.trainer.current_epoch,
    )
    return result


class LateFusion:
    """Per tag, a logistic regression on the logits of several scorers, fitted on validation rows."""

    MIN_POSITIVES = 3  # fewer positives in validation: the scorers' logits are averaged instead

    def __init__(self, scorers: list, tags: list[str]):
        self.scorers, self.tags, self.stackers = scorers, list(tags), []

    def logits(self, texts: list[str]) -> np.ndarray:
        """(texts, tags, scorers) logits."""
        probs = np.stack([scorer.predict_proba(texts) for scorer in self.scorers], axis=-1)
        probs = np.clip(probs.astype(np.float64), 1e-6, 1 - 1e-6)
        return np.log(probs / (1 - probs))

    def fit(self, texts: list[str], labels: np.ndarray) -> LateFusion:
        from sklearn.linear_model import LogisticRegression

        features = self.logits(texts)
        self.stackers = [
            LogisticRegression(C=1.0).fit(features[:, k], labels[:, k])
            if min(labels[:, k].sum(), len(labels) - labels[:, k].sum()) >= self.MIN_POSITIVES
            else None
            for k in range(len(self.tags))
        ]
        return self

    def predict_proba(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        features = self.logits(list(texts))
        columns = [
            stacker.predict_proba(features[:, k])[:, 1]
            if stacker is not None
            else 1 / (1 + np.exp(-features[:, k].mean(axis=1)))
            for k, stacker in enumerate(self.stackers)
        ]
        return np.stack(columns, axis=1).astype(np.float32)


def late_fusion(encoder, unit: Split3) -> tuple[LateFusion, dict]:
    """The encoder stacked with TF-IDF (fitted on the unit's training rows) on the unit's validation rows;
    and the figures of each part alone, on the same rows."""
    from toxicity.evaluation.baseline import TfidfTagger

    started = time.perf_counter()
    tfidf = TfidfTagger(unit.tags).fit(unit.train["text"].tolist(), unit.train[unit.tags].to_numpy())
    tfidf_speed = len(unit.train) / (time.perf_counter() - started)
    fused = LateFusion([encoder, tfidf], unit.tags).fit(
        unit.val["text"].tolist(), unit.val[unit.tags].to_numpy()
    )
    parts = {
        "encoder": figures(unit, score_both(encoder, unit, None)),
        "tfidf": figures(unit, score_both(tfidf, unit, tfidf_speed)),
    }
    return fused, parts


def headline(result: dict) -> dict[str, float]:
    """The figures a variant is judged by."""
    figures_ = {"mean_auroc": result["mean_auroc"]}
    for key in ("macro_f1_both_classes_at_0.5", "macro_f1_both_classes_tuned"):
        if key in result:
            figures_[key] = result[key]
    if result.get("checklist"):
        figures_["checklist_mean"] = float(np.mean([c["accuracy"] for c in result["checklist"].values()]))
        figures_.update({f"checklist_{name}": c["accuracy"] for name, c in result["checklist"].items()})
    return figures_


def with_parts(results: list[dict]) -> list[dict]:
    """The jobs, and the parts a `late_fusion` job scored alone as jobs of their own: its encoder as
    `base` (the recipe, same seed) and `tfidf`."""
    rows = []
    for result in results:
        rows.append(result)
        for part, figure in result.get("parts", {}).items():
            name = "base" if part == "encoder" else part
            rows.append({**figure, "dataset": result["dataset"], "variant": name, "seed": result["seed"]})
    return rows


def summary(results: list[dict]) -> str:
    results = with_parts(results)
    lines = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        groups.setdefault((result["dataset"], result["variant"]), []).append(headline(result))
    order = list(VARIANTS)  # then variants that are no longer in the sweep (from an older commit's results)
    for (dataset, variant), rows in sorted(
        groups.items(),
        key=lambda item: (
            item[0][0],
            order.index(item[0][1]) if item[0][1] in order else len(order),
            item[0][1],
        ),
    ):
        base = groups.get((dataset, "base"), [])
        cells = []
        for metric in rows[0]:
            values = np.array([row[metric] for row in rows])
            delta = ""
            if base and variant != "base":
                delta = f" ({values.mean() - np.mean([row[metric] for row in base]):+.3f})"
            cells.append(
                f"{metric} {values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}{delta}"
            )
        lines.append([dataset, variant, len(rows), "; ".join(cells)])
    header = ["dataset", "variant", "seeds", "metric: mean ± std (Δ vs base)"]
    return "\n".join(table(header, lines)) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = arguments("sweep", __doc__)
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument(
        "--datasets", nargs="+", default=["tweeteval_offensive", "tweeteval_hate", "jigsaw_sample"]
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--quick-rows", type=int, default=None, help="subsets of this many training rows")
    parser.add_argument("--backbone", default=None, help="a local encoder folder instead of the recipe's")
    parser.add_argument("--precision", default=None, help="e.g. 32-true (a GPU run defaults to bf16-mixed)")
    parser.add_argument(
        "--output", type=Path, required=True, help="the results go here (benchmarks/results to commit them)"
    )
    parser.add_argument("--label", default=None, help="a name part for the results: sweep-<label>-<date>-...")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: <out>/runs)")
    parser.add_argument(
        "--job", default=None, help=argparse.SUPPRESS
    )  # internal: one job, in a child process
    args = parser.parse_args(argv)
    units = {unit.name: unit for unit in datasets(args.data_root, 42)[0] if unit.name in args.datasets}
    if args.quick_rows:
        units = {name: subset(unit, args.quick_rows, 42) for name, unit in units.items()}
    if args.job:
        dataset, variant, seed = json.loads(args.job)
        folder = (args.work or args.output / "runs") / f"{dataset}-{variant}-{seed}"
        result = run_job(units[dataset], variant, seed, folder, args.epochs, args.backbone, args.precision)
        (folder / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return [result]
    jobs = [
        (dataset, variant, seed)
        for seed in args.seeds
        for dataset in units
        for variant in args.variants
        if variant not in LONG_TEXT_ONLY or dataset in LONG_TEXT_DATASETS
    ]
    return run_jobs(jobs, args, argv if argv is not None else sys.argv[1:])


def run_jobs(jobs: list[tuple], args, argv: list[str]) -> list[dict]:
    """Each job in a child process (`--parallel` at a time); the results rewritten as they end."""
    run = Run.start("sweep", args.label, argv)
    results, failures = [], []
    started = time.time()

    def child(job: tuple) -> dict:
        folder = (args.work or args.output / "runs") / "-".join(map(str, job))
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.sweep", *argv, "--job", json.dumps(job)]
        with (folder / "log.txt").open("w") as log:
            subprocess.run(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        result_file = folder / "result.json"
        if not result_file.is_file():
            raise RuntimeError(f"{job} failed:\n" + (folder / "log.txt").read_text()[-2000:])
        return json.loads(result_file.read_text())

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for future in as_completed([pool.submit(child, job) for job in jobs]):
            try:
                results.append(future.result())
                latest = results[-1]
                print(
                    f"{time.time() - started:6.0f}s {latest['dataset']} {latest['variant']} "
                    f"seed {latest['seed']}: {headline(latest)}",
                    flush=True,
                )
            except RuntimeError as error:
                failures.append(str(error))
                print(error, file=sys.stderr, flush=True)
            markdown = f"# Recipe sweep, {run.date}\n\n" + summary(results)
            written = run.write({"jobs": results, "failures": failures}, markdown, out=args.output)
    print(summary(results))
    if jobs:
        print(f"Wrote {written} and .md")
    return results


if __name__ == "__main__":
    main()
