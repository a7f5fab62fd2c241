"""Quality benchmark: every public dataset present, every model, trained and scored in one run.

    python -m benchmarks.run --data-root ../shared/data            # the whole run (about an hour on 2 cores)
    python -m benchmarks.run --data-root ../shared/data --quick    # subsets, 1 epoch: minutes (CI runs this)

Datasets (those present under --data-root; a missing folder is skipped and said so):
  tweeteval_offensive, tweeteval_hate  official train / val / test; macro-F1 over both classes at 0.5
                                       (the leaderboard's rule) and at the threshold tuned on val, AUROC;
                                       printed beside the published leaderboard figures.
  jigsaw_sample                        the Kaggle metric (mean column-wise AUROC) on the scored test rows.
  davidson_hate_offensive              tags hate and offensive from `class`; seeded 80/10/10 split.
  ethos                                8 multi-label tags binarised at 0.5; seeded 5-fold (1 fold --quick).
Models: the default recipe (experiments/cpu_minilm.yaml through `python -m toxicity.fit`), TF-IDF +
logistic regression (toxicity.baseline), and the peer alt-profanity-check when it is installed. Every
model sees the same rows: each dataset's splits are written once to a temporary folder and given to all.
Speed, side by side in the same run: training examples/s and scoring comments/s of each model.

Writes benchmarks/results/run[-quick]-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common: with the
machine, package versions and load), the JSON as datasets finish too. Exits 1 when a figure is missing or
NaN (never because of a speed figure).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, table
from toxicity.evaluation.metrics import decision_report, mean_of_defined, roc_auc_or_none

LEADERBOARD = {  # TweetEval test macro-F1 (github.com/cardiffnlp/tweeteval, leaderboard table)
    "tweeteval_offensive": {
        "TimeLMs-2021": 82.2,
        "RoBERTa-Retrained": 80.5,
        "BERTweet": 79.5,
        "RoBERTa-Base": 79.5,
        "FastText": 73.4,
    },
    "tweeteval_hate": {
        "BERTweet": 56.4,
        "TimeLMs-2021": 55.1,
        "RoBERTa-Retrained": 52.3,
        "RoBERTa-Base": 46.6,
        "FastText": 50.6,
    },
}
CHECKLIST_DATASETS = (
    "jigsaw_sample",
    "tweeteval_offensive",
)  # models of general abuse: the behaviour suite applies
ETHOS_TAGS = [
    "violence",
    "directed_vs_generalized",
    "gender",
    "race",
    "national_origin",
    "disability",
    "religion",
    "sexual_orientation",
]


@dataclass
class Split3:
    """One evaluation unit: train / val / test frames (`text` + 0/1 tag columns) every model gets."""

    name: str
    tags: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


# ------------------------------------------------------------------------------------------- datasets
def frames_of(**settings) -> dict[str, pd.DataFrame]:
    from toxicity.data.datamodule import ToxicCommentsDataModule

    datamodule = ToxicCommentsDataModule(**settings)
    datamodule.setup("fit")
    return datamodule.frames


def seeded_holdout(
    frame: pd.DataFrame, tags: list[str], fraction: float, seed: int
) -> tuple[pd.DataFrame, ...]:
    from toxicity.data.splits import split_train_val

    return split_train_val(frame, tags, fraction, seed)


def datasets(root: Path, seed: int) -> tuple[list[Split3], list[str]]:
    """The evaluation units of the datasets present, and a note for each one skipped."""
    units, skipped = [], []
    for task in ("offensive", "hate"):
        folder = root / f"tweeteval_{task}"
        if folder.is_dir():
            frames = frames_of(data_path=str(folder), label_columns=[task])
            units.append(Split3(folder.name, [task], frames["train"], frames["val"], frames["test"]))
        else:
            skipped.append(f"{folder}: absent")
    jigsaw = root / "jigsaw_sample"
    if jigsaw.is_dir():
        frames = frames_of(data_path=str(jigsaw), seed=seed)
        units.append(
            Split3(
                "jigsaw_sample",
                list(frames["train"].columns[-6:]),
                frames["train"],
                frames["val"],
                frames["test"],
            )
        )
    else:
        skipped.append(f"{jigsaw}: absent")
    davidson = root / "davidson_hate_offensive" / "labeled_data.csv.gz"
    if davidson.is_file():
        tags = ["hate", "offensive"]
        frames = frames_of(
            data_path=str(davidson),
            text_column="tweet",
            label_columns=tags,
            label_from="class:0=hate+offensive,1=offensive",
            val_fraction=0.1,
            seed=seed,
        )
        rest, test = frames["train"], frames["val"]  # 10% test, then 10% of the whole for validation
        train, val = seeded_holdout(rest, tags, 1 / 9, seed)
        units.append(Split3("davidson_hate_offensive", tags, train, val, test))
    else:
        skipped.append(f"{davidson}: absent")
    ethos = root / "ethos" / "Ethos_Dataset_Multi_Label.csv.gz"
    if ethos.is_file():
        units += ethos_folds(ethos, seed)
    else:
        skipped.append(f"{ethos}: absent")
    return units, skipped


def ethos_folds(path: Path, seed: int, folds: int = 5) -> list[Split3]:
    from toxicity.data.tables import TableSource, read_table
    from toxicity.data.validation import binarise_tags, validate_comments

    source = TableSource(path, separator=";")
    frame = validate_comments(
        binarise_tags(read_table(source), source, ETHOS_TAGS, 0.5), source, "comment", ETHOS_TAGS
    )
    order = np.random.default_rng(seed).permutation(len(frame))
    units = []
    for fold in range(folds):
        in_test = np.isin(np.arange(len(frame)), order[fold::folds])
        train, val = seeded_holdout(frame[~in_test].reset_index(drop=True), ETHOS_TAGS, 0.1, seed)
        units.append(
            Split3(f"ethos-fold{fold}", ETHOS_TAGS, train, val, frame[in_test].reset_index(drop=True))
        )
    return units


def subset(unit: Split3, rows: int, seed: int) -> Split3:
    """--quick: at most `rows` training rows and `rows` // 2 val and test rows, seeded."""

    def take(frame, n):
        return frame.sample(n=min(n, len(frame)), random_state=seed).reset_index(drop=True)

    return Split3(
        unit.name, unit.tags, take(unit.train, rows), take(unit.val, rows // 2), take(unit.test, rows // 2)
    )


# --------------------------------------------------------------------------------------------- models
def write_splits(unit: Split3, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {split: folder / f"{split}.csv" for split in ("train", "val", "test")}
    for split, path in paths.items():
        getattr(unit, split)[["text", *unit.tags]].to_csv(path, index=False)
    return paths


def fit_arguments(unit: Split3, folder: Path, epochs: int, seed: int) -> list[str]:
    """`python -m toxicity.fit` arguments for the default recipe on the unit's rows, writing under
    `folder`."""
    paths = write_splits(unit, folder / "data")
    return [
        "--config",
        str(ROOT / "experiments" / "cpu_minilm.yaml"),
        "--data.data_path",
        str(paths["train"]),
        "--data.val_path",
        str(paths["val"]),
        "--data.test_path",
        str(paths["test"]),
        "--data.text_column",
        "text",
        "--data.label_columns",
        json.dumps(unit.tags),
        "--data.n_clean_train",
        "null",
        "--trainer.max_epochs",
        str(epochs),
        "--seed_everything",
        str(seed),
        "--data.seed",
        str(seed),
        "--trainer.enable_progress_bar",
        "false",
        "--best_link",
        str(folder / "best.ckpt"),
        "--trainer.logger.init_args.save_dir",
        str(folder / "logs"),
    ]


def neural(unit: Split3, folder: Path, epochs: int, seed: int) -> dict:
    """The default recipe through `python -m toxicity.fit` on the unit's rows; its probabilities on
    val/test."""
    from toxicity.inference.scorer import ToxicityClassifier

    command = [sys.executable, "-m", "toxicity.fit", *fit_arguments(unit, folder, epochs, seed)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"fit failed on {unit.name}:\n{result.stderr[-3000:]}")
    classifier = ToxicityClassifier.from_checkpoint(folder / "best.ckpt", device="cpu")
    return score_both(classifier, unit, len(unit.train) * epochs / seconds)


def classical(unit: Split3, model: str) -> dict:
    from toxicity.evaluation.baseline import MODELS

    started = time.perf_counter()
    tagger = MODELS[model](unit.tags).fit(unit.train["text"].tolist(), unit.train[unit.tags].to_numpy())
    return score_both(
        tagger, unit, len(unit.train) / (time.perf_counter() - started) if model == "tfidf" else None
    )


def score_both(scorer, unit: Split3, train_examples_per_s: float | None) -> dict:
    from toxicity.evaluation.checklist import capability_accuracy

    val = scorer.predict_proba(unit.val["text"].tolist())
    started = time.perf_counter()
    test = scorer.predict_proba(unit.test["text"].tolist())
    speed = {
        "train_examples_per_s": train_examples_per_s,
        "score_comments_per_s": len(unit.test) / (time.perf_counter() - started),
    }
    behaviour = capability_accuracy(scorer.predict_proba) if unit.name in CHECKLIST_DATASETS else None
    return {"val": val, "test": test, "speed": speed, "checklist": behaviour}


# -------------------------------------------------------------------------------------------- figures
def positive_f1(y_true: np.ndarray, decided: np.ndarray) -> float:
    """F1 of the positive class of one tag's 0/1 decisions (0 where it is undefined)."""
    return decision_report(y_true[:, None], decided[:, None].astype(int), ["tag"]).per_tag["tag"].f1


def macro_f1_both_classes(y_true: np.ndarray, decided: np.ndarray) -> float:
    """The TweetEval leaderboard's macro-F1: the mean of the F1 of the positive and of the negative class."""
    both = np.stack([y_true, 1 - y_true], axis=1)
    return decision_report(both, np.stack([decided, ~decided], axis=1).astype(int), ["1", "0"]).macro_f1


def figures(unit: Split3, scored: dict) -> dict:
    """Per tag: AUROC, F1 at 0.5 and at the val-tuned threshold; single-tag data: macro-F1 of both classes."""
    from toxicity.evaluation.thresholds import DEFAULT_RULE, ThresholdRule, tune_threshold

    out = {"per_tag": {}}
    for k, tag in enumerate(unit.tags):
        y_val, y_test = unit.val[tag].to_numpy(), unit.test[tag].to_numpy()
        p_val, p_test = scored["val"][:, k], scored["test"][:, k]
        # one tag: tuned for the leaderboard's macro-F1 over both classes; several: each tag's own F1
        cut = tune_threshold(y_val, p_val, ThresholdRule("macro_f1") if len(unit.tags) == 1 else DEFAULT_RULE)
        out["per_tag"][tag] = {
            "test_positives": int(y_test.sum()),
            "threshold_tuned_on_val": cut,
            "auroc": roc_auc_or_none(y_test, p_test),
            "f1_at_0.5": positive_f1(y_test, p_test >= 0.5),
            "f1_tuned": positive_f1(y_test, p_test >= cut),
        }
        if len(unit.tags) == 1:  # the leaderboard's rule: macro-F1 over both classes, in percent
            out["macro_f1_both_classes_at_0.5"] = 100 * macro_f1_both_classes(y_test, p_test >= 0.5)
            out["macro_f1_both_classes_tuned"] = 100 * macro_f1_both_classes(y_test, p_test >= cut)
    out["mean_auroc"] = mean_of_defined([row["auroc"] for row in out["per_tag"].values()])
    out["speed"] = scored["speed"]
    if scored["checklist"]:
        out["checklist"] = scored["checklist"]
    return out


def missing_figures(results: dict) -> list[str]:
    """Paths of figures that are absent or NaN (speed figures are not checked)."""
    bad = []
    for name, models in results["datasets"].items():
        for model, figure in models.items():
            if "error" in figure:
                bad.append(f"{name}/{model}: {figure['error'][:200]}")
                continue
            values = {"mean_auroc": figure.get("mean_auroc")}
            values.update({f"{tag}.f1_tuned": row["f1_tuned"] for tag, row in figure["per_tag"].items()})
            bad += [
                f"{name}/{model}/{key}"
                for key, value in values.items()
                if value is None or (isinstance(value, float) and math.isnan(value))
            ]
    return bad


# ------------------------------------------------------------------------------------------ reporting
def markdown(results: dict, date: str) -> str:
    """The tables of `results` (the run's figures)."""
    rows = []
    for name, models in results["datasets"].items():
        for model, figure in models.items():
            if "error" in figure:
                rows.append([name, model, f"error: {figure['error'][:80]}", "", "", "", ""])
                continue
            macro = (
                f"{figure['macro_f1_both_classes_at_0.5']:.1f} / {figure['macro_f1_both_classes_tuned']:.1f}"
                if "macro_f1_both_classes_at_0.5" in figure
                else ""
            )
            per_tag = ", ".join(f"{tag} {row['f1_tuned']:.2f}" for tag, row in figure["per_tag"].items())
            speed = figure["speed"]
            train = f"{speed['train_examples_per_s']:.0f}" if speed["train_examples_per_s"] else "n/a"
            scoring = f"{speed['score_comments_per_s']:.0f}"
            rows.append([name, model, f"{figure['mean_auroc']:.3f}", macro, per_tag, train, scoring])
    header = [
        "dataset",
        "model",
        "mean AUROC",
        "macro-F1 both classes @0.5 / tuned",
        "per-tag F1 tuned",
        "train ex/s",
        "score comments/s",
    ]
    lines = [
        f"# Quality benchmark{' (--quick)' if results['quick'] else ''}, {date}",
        "",
        *table(header, rows),
    ]
    lines += checklist_table(results)
    for name, board in LEADERBOARD.items():
        if name in results["datasets"]:
            lines.append(
                f"\nPublished {name} test macro-F1 (TweetEval leaderboard): "
                + ", ".join(f"{model} {score}" for model, score in board.items())
                + "."
            )
    return "\n".join(lines) + "\n"


def checklist_table(results: dict) -> list[str]:
    rows = [
        (name, model, figure["checklist"])
        for name, models in results["datasets"].items()
        for model, figure in models.items()
        if figure.get("checklist")
    ]
    if not rows:
        return []
    capabilities = list(rows[0][2])
    cells = [
        [name, model, *(f"{behaviour[c]['accuracy']:.2f} ({behaviour[c]['cases']})" for c in capabilities)]
        for name, model, behaviour in rows
    ]
    return [
        "",
        "Behaviour (toxicity/checklist.py; accuracy at 0.5, a sentence is abusive when any tag reaches it):",
        "",
        *table(["trained on", "model", *capabilities], cells),
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("run", __doc__)
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument("--quick", action="store_true", help="subsets and 1 epoch")
    parser.add_argument("--epochs", type=int, default=None, help="default recipe epochs (3; 1 with --quick)")
    parser.add_argument("--quick-rows", type=int, default=400, help="training rows per dataset with --quick")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="only these (tweeteval_offensive, tweeteval_hate, jigsaw_sample, davidson_hate_offensive, "
        "ethos); default: every one present",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 3)
    units, skipped = datasets(args.data_root, args.seed)
    if args.datasets:
        units = [unit for unit in units if unit.name.split("-fold")[0] in args.datasets]
    if args.quick:
        units = [
            subset(unit, args.quick_rows, args.seed)
            for unit in units
            if not unit.name.startswith("ethos-fold") or unit.name == "ethos-fold0"
        ]
    models = ["default recipe", "tfidf"]
    try:
        import profanity_check  # noqa: F401

        models.append("peer")
    except ImportError:
        skipped.append("peer: alt-profanity-check is not installed (pip install -e '.[peer]')")
    run = Run.start("run", "quick" if args.quick else None, argv)
    results = {
        "quick": args.quick,
        "epochs": epochs,
        "skipped": skipped,
        "datasets": {},
        "leaderboard": LEADERBOARD,
    }
    with tempfile.TemporaryDirectory() as work:
        for unit in units:
            results["datasets"][unit.name] = {}
            for model in models:
                print(
                    f"{unit.name}: {model} ({len(unit.train)} train / {len(unit.val)} val / "
                    f"{len(unit.test)} test)",
                    flush=True,
                )
                try:
                    scored = (
                        neural(unit, Path(work) / unit.name, epochs, args.seed)
                        if model == "default recipe"
                        else classical(unit, model)
                    )
                    results["datasets"][unit.name][model] = figures(unit, scored)
                except Exception as error:  # noqa: BLE001 - recorded, and fails the run below
                    results["datasets"][unit.name][model] = {"error": f"{type(error).__name__}: {error}"}
                run.write(results, out=args.output)  # the JSON so far, if stopped
    written = run.write(results, markdown(results, run.date), out=args.output)
    print(markdown(results, run.date))
    record = json.loads(written.read_text())
    print(f"{record['seconds'] / 60:.1f} minutes. Wrote {written} and .md; skipped: {skipped or 'nothing'}")
    bad = missing_figures(results)
    if bad:
        print("Missing or NaN figures:\n  " + "\n  ".join(bad), file=sys.stderr)
        raise SystemExit(1)
    return record


if __name__ == "__main__":
    main()
