"""The cross-dataset matrix (issue 29): trained on A, scored on B's test rows, on the tags they share.

    python -m benchmarks.cross_dataset --quick           # a few minutes on 2 CPU cores: small caps, one seed
    python -m benchmarks.cross_dataset                   # the fuller budget (see --help for each cap)

Models, each trained through `python -m toxicity.fit --data.sources` (the default recipe, MiniLM-L6, or
--family hybrid) with every dataset's default label mapping (toxicity.data.multisource.PRESETS):
  - one per dataset (train on A alone);
  - all five together, with the default mix (mix_exponent 0.5) and proportional to size (1.0);
  - leave-one-dataset-out: all but B, scored on B (the generalisation figure; one seed).
Test rows: TweetEval's official test files, jigsaw_sample's 1,027 scored Kaggle test rows, and a seeded
holdout of Davidson (10%) and ETHOS (20%) that no model trains on; each capped at --test-rows (seeded).
A cell is the mean AUROC over the tags both the training sources and B's test rows label with both classes
(B's mapping: e.g. TweetEval hate is scored on identity_hate, TweetEval offensive on toxic); `-` where they
share none. Every model draws --rows-per-epoch rows an epoch, whatever its sources' size: the cap is the
budget, and the same for every cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, SHARED_DATA, Run, arguments, table

DATASETS = ("jigsaw_sample", "davidson_hate_offensive", "tweeteval_hate", "tweeteval_offensive", "ethos")
SHORT = {
    "jigsaw_sample": "jigsaw",
    "davidson_hate_offensive": "davidson",
    "tweeteval_hate": "tw_hate",
    "tweeteval_offensive": "tw_off",
    "ethos": "ethos",
}
HOLDOUT = {"davidson_hate_offensive": 0.1, "ethos": 0.2}  # no official test split: a seeded holdout
BUDGETS = {  # rows drawn per epoch, epochs, validation batches (of eval_batch_size), test rows per dataset
    "quick": {"rows_per_epoch": 384, "epochs": 1, "val_batches": 1, "test_rows": 200, "max_length": 64},
    # sized for ~45 minutes on 2 shared CPU cores (12 models); a lent GPU should rerun it with more rows
    "full": {"rows_per_epoch": 2000, "epochs": 1, "val_batches": 4, "test_rows": 500, "max_length": 96},
}


# ------------------------------------------------------------------------------------------ the data
def prepare(root: Path, folder: Path, seed: int, test_rows: int) -> tuple[dict[str, dict], dict]:
    """Each dataset's training source (a `data.sources` entry) and its test rows (text + the six tags,
    NaN where unknown); Davidson's and ETHOS's holdouts are written to `folder` (never into the project)."""
    from toxicity.core.tags import LABELS
    from toxicity.data.multisource import map_labels, read_raw_splits, read_sources

    sources, tests = {}, {}
    for name in DATASETS:
        (source,) = read_sources([{"path": str(root / name)}], LABELS)
        raw = read_raw_splits(source)
        entry = {"name": SHORT[name], "path": str(root / name)}
        if name in HOLDOUT:
            frame = raw["train"]
            order = np.random.default_rng(seed).permutation(len(frame))
            cut = round(HOLDOUT[name] * len(frame))
            train, test = frame.iloc[order[cut:]], frame.iloc[order[:cut]]
            path = folder / f"{name}-train.csv"
            train.rename(columns={"text": source.text_column}).to_csv(path, index=False)
            entry = {**entry, "path": str(path), "preset": name, "separator": ","}
            raw = {"test": test.reset_index(drop=True)}
        mapped = map_labels(raw["test"], source, LABELS, "test")
        if len(mapped) > test_rows:
            mapped = mapped.sample(n=test_rows, random_state=seed).reset_index(drop=True)
        sources[name], tests[name] = entry, mapped
    return sources, tests


def trained_tags(root: Path, names: list[str]) -> set[str]:
    """The tags the named datasets' training rows label with both classes (what a model learns)."""
    from toxicity.core.tags import LABELS
    from toxicity.data.multisource import map_labels, read_raw_splits, read_sources

    tags = set()
    for name in names:
        (source,) = read_sources([{"path": str(root / name)}], LABELS)
        frame = map_labels(read_raw_splits(source)["train"], source, LABELS, "train")
        tags |= {tag for tag in LABELS if frame[tag].nunique(dropna=True) == 2}
    return tags


# ------------------------------------------------------------------------------------------ training
def train(name: str, entries: list[dict], folder: Path, budget: dict, args) -> tuple[Path, float]:
    """`python -m toxicity.fit` on `entries`; the best checkpoint and the seconds the fit took."""
    run = folder / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "sources.yaml").write_text(json.dumps(entries))
    command = [
        sys.executable,
        "-m",
        "toxicity.fit",
        "--config",
        str(ROOT / "experiments" / "cpu_minilm.yaml"),
        *(["--config", str(ROOT / "experiments" / "hybrid.yaml")] if args.family == "hybrid" else []),
        "--data.sources",
        str(run / "sources.yaml"),
        "--data.n_clean_train",
        "null",
        "--data.mix_exponent",
        str(args.mix_exponent if not name.endswith("proportional") else 1.0),
        "--data.rows_per_epoch",
        str(budget["rows_per_epoch"]),
        "--data.max_length",
        str(budget["max_length"]),
        "--trainer.max_epochs",
        str(budget["epochs"]),
        "--trainer.limit_val_batches",
        str(budget["val_batches"]),
        "--trainer.enable_progress_bar",
        "false",
        "--seed_everything",
        str(args.seed),
        "--data.seed",
        str(args.seed),
        "--best_link",
        str(run / "best.ckpt"),
        "--trainer.logger.init_args.save_dir",
        str(run / "logs"),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"fit failed for {name}:\n{result.stderr[-3000:]}")
    return run / "best.ckpt", time.perf_counter() - started


def score(
    checkpoint: Path, tests: dict[str, pd.DataFrame], learned: set[str], behaviour: bool = False
) -> dict[str, dict]:
    """Per test set: AUROC of each tag both sides know, and their mean; with `behaviour`, the behaviour
    suite's accuracy per capability too (under "behaviour")."""
    from toxicity.evaluation.metrics import roc_auc_or_none
    from toxicity.inference.scorer import ToxicityClassifier

    classifier = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")
    out = {}
    for name, frame in tests.items():
        probs = classifier.predict_proba(frame["text"].tolist(), progress=False)
        per_tag = {}
        for k, tag in enumerate(classifier.tags):
            known = frame[tag].notna().to_numpy()
            labels = frame[tag].to_numpy()[known]
            auroc = roc_auc_or_none(labels, probs[known, k]) if tag in learned else None
            if auroc is not None:
                per_tag[tag] = round(auroc, 4)
        out[name] = {
            "tags": per_tag,
            "mean": round(float(np.mean(list(per_tag.values()))), 4) if per_tag else None,
        }
    if behaviour:
        from toxicity.evaluation.checklist import capability_accuracy

        suite = capability_accuracy(lambda texts: classifier.predict_proba(texts, progress=False))
        out["behaviour"] = {capability: round(result["accuracy"], 3) for capability, result in suite.items()}
    return out


# ------------------------------------------------------------------------------------------ report
def markdown(figures: dict, title: str) -> str:
    rows = []
    for model, result in figures["models"].items():
        cells = [result["scores"][name]["mean"] for name in DATASETS]
        rows.append(
            [model, *("-" if c is None else f"{c:.3f}" for c in cells), f"{result['fit_seconds']:.0f}"]
        )
    lines = [
        f"# {title}",
        "",
        "Mean AUROC over the tags the training sources and the test set both label (per-tag figures in the "
        "JSON). Rows: the training sources (`all-but-X`: leave-one-dataset-out, scored on X). Columns: each "
        "dataset's test rows. Settings: " + json.dumps(figures["settings"]) + ".",
        "",
        *table(["trained on", *(SHORT[n] for n in DATASETS), "fit s"], rows, "l" + "r" * (len(DATASETS) + 1)),
        "",
        "Leave-one-out against the best single-dataset transfer to the same dataset:",
        "",
    ]
    loo = []
    for name in DATASETS:
        held = figures["models"].get(f"all-but-{SHORT[name]}", {}).get("scores", {}).get(name, {}).get("mean")
        transfers = [
            (figures["models"][SHORT[other]]["scores"][name]["mean"], SHORT[other])
            for other in DATASETS
            if other != name
            and SHORT[other] in figures["models"]
            and figures["models"][SHORT[other]]["scores"][name]["mean"] is not None
        ]
        best = max(transfers) if transfers else (None, "-")
        loo.append(
            [
                SHORT[name],
                "-" if held is None else f"{held:.3f}",
                "-" if best[0] is None else f"{best[0]:.3f} ({best[1]})",
            ]
        )
    lines += table(["test set", "all but it", "best single transfer"], loo, "lrr")
    suites = {m: r["scores"]["behaviour"] for m, r in figures["models"].items() if "behaviour" in r["scores"]}
    if suites:
        capabilities = sorted(next(iter(suites.values())))
        rows = [[model, *(f"{suite[c]:.2f}" for c in capabilities)] for model, suite in suites.items()]
        lines += ["", "Behaviour suite (accuracy at 0.5), the all-sources models:", ""]
        lines += table(["model", *capabilities], rows, "l" + "r" * len(capabilities))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("cross_dataset", __doc__)
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument("--quick", action="store_true", help=f"the quick budget: {BUDGETS['quick']}")
    parser.add_argument("--family", choices=("encoder", "hybrid"), default="encoder")
    parser.add_argument("--mix-exponent", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--only",
        nargs="*",
        help="train only these models (jigsaw, all, all_proportional, "
        "all-but-ethos, ...); default: every one",
    )
    parser.add_argument("--output", type=Path, default=None, help="the results folder")
    args = parser.parse_args(argv)
    missing = [name for name in DATASETS if not (args.data_root / name).is_dir()]
    if missing:
        parser.error(f"the datasets {missing} are absent under {args.data_root} (give --data-root)")
    variant = "_".join(
        filter(None, ["quick" if args.quick else None, "hybrid" if args.family == "hybrid" else None])
    )
    run = Run.start("cross_dataset", variant or None, argv)
    budget = BUDGETS["quick" if args.quick else "full"]
    figures = {
        "settings": {**budget, "family": args.family, "seed": args.seed, "mix_exponent": args.mix_exponent},
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="cross_dataset-") as scratch:
        folder = Path(scratch)
        sources, tests = prepare(args.data_root, folder, args.seed, budget["test_rows"])
        figures["test_rows"] = {name: len(frame) for name, frame in tests.items()}
        plan = {SHORT[name]: [name] for name in DATASETS}
        plan["all"] = list(DATASETS)
        plan["all_proportional"] = list(DATASETS)
        plan |= {f"all-but-{SHORT[name]}": [n for n in DATASETS if n != name] for name in DATASETS}
        for model, names in plan.items():
            if args.only and model not in args.only:
                continue
            checkpoint, seconds = train(model, [sources[n] for n in names], folder, budget, args)
            figures["models"][model] = {
                "sources": names,
                "fit_seconds": round(seconds, 1),
                "scores": score(
                    checkpoint, tests, trained_tags(args.data_root, names), behaviour=model.startswith("all")
                ),
            }
            run.write(figures, None, args.output)  # a record so far, in case the run is cut short
            print(
                f"{model}: fit {seconds:.0f} s",
                {n: s.get("mean", s) for n, s in figures["models"][model]["scores"].items()},
                flush=True,
            )
    title = f"Cross-dataset matrix ({'quick' if args.quick else 'full'} budget, {args.family})"
    path = run.write(figures, markdown(figures, title), args.output)
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
