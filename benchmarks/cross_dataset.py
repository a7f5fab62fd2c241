"""The cross-dataset matrix (issue 29): trained on A, scored on B's test rows, one fixed tag per test set.

    python -m benchmarks.cross_dataset --quick                     # minutes: 3 small models, the pipeline
    python -m benchmarks.cross_dataset --family hybrid encoder     # the matrix (about an hour on 2 cores)
    python -m benchmarks.cross_dataset --budget recipe             # experiments/all_sources.yaml, its size

Models, each trained through `python -m toxicity.fit --data.sources` (the default recipe, MiniLM-L6, or the
hybrid) with every dataset's default label mapping (toxicity.data.multisource.PRESETS):
  - one per dataset (train on A alone);
  - all five together, with the default mix (mix_exponent 0.5; --all-seeds seeds) and proportional to size;
  - leave-one-dataset-out: all but B, scored on B (the generalisation figure; one seed).
Test rows: TweetEval's official test files, jigsaw_sample's 1,027 scored Kaggle test rows, and a seeded
holdout of Davidson (10%) and ETHOS (20%) that no model trains on; each capped at the budget's test_rows.
A cell is the AUROC of the test set's own tag (HEADLINE: what its annotators were asked), so the cells of a
column are one figure; `-` where the model's sources never label that tag with both classes. The JSON also
holds every shared tag's AUROC. Every model draws the budget's rows_per_epoch rows an epoch, whatever its
sources' size: the cap is the budget, the same for every cell. The report ends with the issue's goals, each
met or missed by how much.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, table

DATASETS = ("jigsaw_sample", "davidson_hate_offensive", "tweeteval_hate", "tweeteval_offensive", "ethos")
SHORT = {
    "jigsaw_sample": "jigsaw",
    "davidson_hate_offensive": "davidson",
    "tweeteval_hate": "tw_hate",
    "tweeteval_offensive": "tw_off",
    "ethos": "ethos",
}
HEADLINE = {  # the tag each test set is scored on: its annotators' question (docs/data.md has the mappings)
    "jigsaw_sample": "toxic",
    "davidson_hate_offensive": "identity_hate",  # hate speech, the class Davidson et al. set out to find
    "tweeteval_hate": "identity_hate",
    "tweeteval_offensive": "toxic",
    "ethos": "identity_hate",
}
HYBRID = ["--config", str(ROOT / "experiments" / "hybrid.yaml")]
BALANCED = ["--model.init_args.ngram_class_weight", "balanced"]
SOURCE_BIAS = ["--model.init_args.source_bias", "true"]
FAMILIES = {  # fit's arguments on top of experiments/cpu_minilm.yaml (the default recipe, the encoder)
    "encoder": [],
    "hybrid": HYBRID,
    # the n-gram warm start fitted with each tag's rare class weighted up (benchmarks.sweep's hybrid_balanced)
    "hybrid_balanced": [*HYBRID, *BALANCED],
    # an offset per source and tag holds each source's base rates (the model's `source_bias`)
    "hybrid_source_bias": [*HYBRID, *SOURCE_BIAS],
    "hybrid_balanced_source_bias": [*HYBRID, *BALANCED, *SOURCE_BIAS],
}
RECIPE = "hybrid_balanced_source_bias"  # experiments/all_sources.yaml's model
HOLDOUT = {"davidson_hate_offensive": 0.1, "ethos": 0.2}  # no official test split: a seeded holdout
BUDGETS = {  # rows drawn an epoch, epochs, validation batches (of 128), test rows a dataset, seeds of "all"
    "quick": {
        "rows_per_epoch": 384,
        "epochs": 1,
        "val_batches": 1,
        "test_rows": 200,
        "max_length": 64,
        "all_seeds": 1,
        "models": ["jigsaw", "all", "all-but-jigsaw"],
    },
    # ~2.5 minutes a model on 2 CPU cores; a lent GPU should rerun it with the sources' size and 3 epochs
    "full": {
        "rows_per_epoch": 2000,
        "epochs": 1,
        "val_batches": 4,
        "test_rows": 1000,
        "max_length": 96,
        "all_seeds": 3,
        "models": None,
    },
    # experiments/all_sources.yaml's own size (its rows an epoch, epochs, length, whole validation), every
    # test row: comparable with the full-size single-dataset runs of benchmarks.sweep on the same rows
    "recipe": {
        "rows_per_epoch": 12000,
        "epochs": 3,
        "val_batches": 1.0,
        "test_rows": 3000,
        "max_length": 128,
        "all_seeds": 1,
        "models": ["all"],
    },
}
BEHAVIOUR_GOALS = {
    "spelling": 0.90,
    "spelling_unseen": 0.80,
    "counter_speech": 0.85,
    "identity_neutral": 0.95,
}


# ------------------------------------------------------------------------------------------ the data
def prepare(root: Path, folder: Path, seed: int, test_rows: int) -> tuple[dict, dict, dict]:
    """Per dataset: its training source (a `data.sources` entry), its test rows (text + the six tags, NaN
    where unknown) and the tags its training rows label with both classes (what a model learns from it).
    Davidson's and ETHOS's holdouts are a seeded permutation's first rows (0 and 0 texts also in training,
    3 of Davidson's 2,478 case-folded); their training rows are written to `folder`, never the project."""
    from toxicity.core.tags import LABELS
    from toxicity.data.multisource import map_labels, read_raw_splits, read_sources
    from toxicity.evaluation.metrics import has_both_classes

    sources, tests, learned = {}, {}, {}
    for name in DATASETS:
        (source,) = read_sources([{"path": str(root / name)}], LABELS)
        raw = read_raw_splits(source)
        entry = {"name": SHORT[name], "path": str(root / name)}
        if name in HOLDOUT:
            frame = raw["train"]
            order = np.random.default_rng(seed).permutation(len(frame))
            cut = round(HOLDOUT[name] * len(frame))
            path = folder / f"{name}-train.csv"
            frame.iloc[order[cut:]].rename(columns={"text": source.text_column}).to_csv(path, index=False)
            entry = {**entry, "path": str(path), "preset": name, "separator": ","}
            raw = {"train": frame.iloc[order[cut:]], "test": frame.iloc[order[:cut]].reset_index(drop=True)}
        mapped = map_labels(raw["test"], source, LABELS, "test")
        if len(mapped) > test_rows:
            mapped = mapped.sample(n=test_rows, random_state=seed).reset_index(drop=True)
        train = map_labels(raw["train"], source, LABELS, "train")
        learned[name] = {tag for tag in LABELS if has_both_classes(train[tag].dropna().to_numpy())}
        sources[name], tests[name] = entry, mapped
    return sources, tests, learned


# ------------------------------------------------------------------------------------------ training
def train(run: Path, entries: list[dict], family: str, seed: int, mix: float, budget: dict) -> dict:
    """`python -m toxicity.fit` on `entries` in `run`: the best checkpoint, the seconds the fit took and the
    fit process's peak resident memory."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "sources.yaml").write_text(json.dumps(entries))
    command = [
        sys.executable,
        "-m",
        "toxicity.fit",
        "--config",
        str(ROOT / "experiments" / "cpu_minilm.yaml"),
        *FAMILIES[family],
        "--data.sources",
        str(run / "sources.yaml"),
        "--data.n_clean_train",
        "null",
        "--data.mix_exponent",
        str(mix),
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
        str(seed),
        "--data.seed",
        str(seed),
        "--best_link",
        str(run / "best.ckpt"),
        "--trainer.logger.init_args.save_dir",
        str(run / "logs"),
    ]
    started = time.perf_counter()
    with open(run / "fit.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory, not the largest's
        except BaseException:  # interrupted: no fit left running behind
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"fit failed in {run}:\n{(run / 'fit.log').read_text()[-3000:]}")
    return {
        "checkpoint": run / "best.ckpt",
        "fit_seconds": round(seconds, 1),
        "fit_peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux: kilobytes
    }


def score(checkpoint: Path, tests: dict[str, pd.DataFrame], learned: set[str]) -> dict[str, dict]:
    """Per test set: the AUROC of its HEADLINE tag (None where the model never learnt it) and of every tag
    both sides label; and the behaviour suite's accuracy per capability (under "behaviour")."""
    from toxicity.evaluation.checklist import capability_accuracy
    from toxicity.evaluation.metrics import roc_auc_or_none
    from toxicity.inference.scorer import ToxicityClassifier

    classifier = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")
    out = {}
    for name, frame in tests.items():
        probs = classifier.predict_proba(frame["text"].tolist(), progress=False)
        per_tag = {}
        for k, tag in enumerate(classifier.tags):
            known = frame[tag].notna().to_numpy()
            auroc = roc_auc_or_none(frame[tag].to_numpy()[known], probs[known, k]) if tag in learned else None
            if auroc is not None:
                per_tag[tag] = round(auroc, 4)
        out[name] = {"headline": per_tag.get(HEADLINE[name]), "tags": per_tag}
    suite = capability_accuracy(lambda texts: classifier.predict_proba(texts, progress=False))
    out["behaviour"] = {capability: round(result["accuracy"], 3) for capability, result in suite.items()}
    return out


def plan(families: list[str], seed: int, seeds: int, mix: float, only: list[str] | None) -> list[dict]:
    """The models to train, in order: per family, one per dataset, all five (with `seeds` seeds and
    proportional), leave-one-out. `only` keeps the named ones (`all`, `all-but-ethos`, or `hybrid/all`)."""
    models = []
    for family in families:
        chosen = [(SHORT[name], [name], seed, mix) for name in DATASETS]
        chosen += [
            ("all" if k == 0 else f"all-seed{seed + k}", list(DATASETS), seed + k, mix) for k in range(seeds)
        ]
        chosen += [("all_proportional", list(DATASETS), seed, 1.0)]
        chosen += [
            (f"all-but-{SHORT[name]}", [n for n in DATASETS if n != name], seed, mix) for name in DATASETS
        ]
        for model, names, model_seed, model_mix in chosen:
            if only and not names_of({"family": family, "model": model}) & set(only):
                continue
            models.append(
                {
                    "key": f"{family}/{model}",
                    "family": family,
                    "model": model,
                    "sources": names,
                    "seed": model_seed,
                    "mix_exponent": model_mix,
                }
            )
    return models


def names_of(model: dict) -> set[str]:
    """What `--only` may call a model: `all-seed43`, `all` (every seed), with or without `hybrid/`."""
    base = model["model"].split("-seed")[0]
    return {base, model["model"], f"{model['family']}/{base}", f"{model['family']}/{model['model']}"}


# ------------------------------------------------------------------------------------------ report
def title(settings: dict) -> str:
    budget = settings.get("budget") or next(
        (name for name, b in BUDGETS.items() if b["rows_per_epoch"] == settings["rows_per_epoch"]), "custom"
    )
    return f"Cross-dataset matrix ({budget} budget, {' and '.join(settings['families'])})"


def rewrite_report(path: Path, judged_with: list[str]) -> dict:
    """The .md of an earlier run, rendered again from its JSON (after a change to the report's tables, or
    to judge it with other runs' single-dataset models too), and the JSON noting those runs."""
    from benchmarks.common import environment
    from toxicity.core.files import write_text_atomically

    record = json.loads(path.read_text())
    if judged_with:
        record["figures"]["judged_with"] = judged_with
        write_text_atomically(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    text = markdown(record["figures"], title(record["figures"]["settings"]))
    write_text_atomically(path.with_suffix(".md"), text.rstrip("\n") + "\n" + environment(record))
    print(f"wrote {path.with_suffix('.md')}")
    return record["figures"]


def headline(figures: dict, key: str, name: str) -> float | None:
    return figures["models"].get(key, {}).get("scores", {}).get(name, {}).get("headline")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def all_sources_seeds(figures: dict, family: str) -> list[str]:
    """The keys of `family`'s all-sources models with the default mix, one per seed."""
    return [
        key for key in figures["models"] if key == f"{family}/all" or key.startswith(f"{family}/all-seed")
    ]


def best_single(singles: dict, name: str, own: bool) -> tuple[float | None, str]:
    """The best single-dataset model on `name`'s test rows: trained on `name` itself (`own`), or on any
    other one dataset (the best transfer); any family."""
    found = []
    for key, result in singles.items():
        value = result["scores"].get(name, {}).get("headline")
        if (result["sources"][0] == name) == own and value is not None:
            found.append((value, key))
    return max(found) if found else (None, "-")


def single_dataset_models(figures: dict) -> dict:
    """This run's single-dataset models, and those of the earlier runs it is judged with (`--with`: the same
    seed and test rows), which are read from benchmarks/results."""
    models = {}
    for name in figures.get("judged_with", []):
        earlier = json.loads((RESULTS / name).read_text())["figures"]
        if (
            earlier.get("test_rows") != figures.get("test_rows")
            or earlier["settings"]["seed"] != figures["settings"]["seed"]
        ):
            raise ValueError(f"{name}: other test rows or seed than this run's; it cannot judge these goals")
        models |= earlier["models"]
    models |= figures["models"]
    return {key: result for key, result in models.items() if len(result.get("sources", [])) == 1}


def goals(figures: dict) -> list[str]:
    """The issue's three quality goals, each met or missed by how much, from this run's models (and the
    single-dataset models of the runs it is judged with)."""
    families = sorted({result["family"] for result in figures["models"].values()})
    singles = single_dataset_models(figures)
    judged_with = (
        f" (single-dataset models also from {', '.join(figures['judged_with'])})"
        if figures.get("judged_with")
        else ""
    )
    return [
        "",
        "## Goals" + judged_with,
        "",
        "1. On each dataset's own test rows, the all-sources model (mean over its seeds) within one seed's"
        + " spread (max - min over seeds) of the best single-dataset model, or above it:",
        "",
        *table(
            ["family", "test set", "all five", "spread (seeds)", "best single-dataset", "goal"],
            [row for family in families for row in own_test_set_rows(figures, singles, family)],
            "llrrrl",
        ),
        "",
        "2. Leave-one-dataset-out above the best single-dataset transfer (any family) to that dataset:",
        "",
        *table(
            ["family", "test set", "all but it", "best single transfer", "goal"],
            [row for family in families for row in leave_one_out_rows(figures, singles, family)],
            "llrrl",
        ),
        "",
        "3. Behaviour suite of the all-sources models (accuracy at 0.5), goals "
        + ", ".join(f"{c} >= {goal}" for c, goal in BEHAVIOUR_GOALS.items())
        + " together:",
        "",
        *table(
            ["model", *BEHAVIOUR_GOALS, "goal"],
            [row for family in families for row in behaviour_goal_rows(figures, family)],
            "l" + "r" * len(BEHAVIOUR_GOALS) + "l",
        ),
    ]


def own_test_set_rows(figures: dict, singles: dict, family: str) -> list[list]:
    rows = []
    for name in DATASETS:
        values = [
            v for key in all_sources_seeds(figures, family) if (v := headline(figures, key, name)) is not None
        ]
        best, best_key = best_single(singles, name, own=True)
        if values and best is not None:
            mean, spread = float(np.mean(values)), max(values) - min(values)
            gap = best - spread - mean
            verdict = "met" if gap <= 0 else f"missed by {gap:.3f}"
            rows.append(
                [
                    family,
                    SHORT[name],
                    f"{mean:.3f}",
                    f"{spread:.3f} ({len(values)})",
                    f"{best:.3f} ({best_key})",
                    verdict,
                ]
            )
    return rows


def leave_one_out_rows(figures: dict, singles: dict, family: str) -> list[list]:
    rows = []
    for name in DATASETS:
        held = headline(figures, f"{family}/all-but-{SHORT[name]}", name)
        best, best_key = best_single(singles, name, own=False)
        if held is not None:
            verdict = "-" if best is None else "met" if held > best else f"missed by {best - held:.3f}"
            rows.append([family, SHORT[name], f"{held:.3f}", _figure(best) + f" ({best_key})", verdict])
    return rows


def behaviour_goal_rows(figures: dict, family: str) -> list[list]:
    rows = []
    for key in all_sources_seeds(figures, family):
        suite = figures["models"][key]["scores"].get("behaviour", {})
        short = {
            c: goal - suite.get(c, 0.0) for c, goal in BEHAVIOUR_GOALS.items() if suite.get(c, 0.0) < goal
        }
        verdict = (
            "met" if not short else "missed: " + ", ".join(f"{c} by {gap:.2f}" for c, gap in short.items())
        )
        rows.append([key, *(f"{suite.get(c, float('nan')):.2f}" for c in BEHAVIOUR_GOALS), verdict])
    return rows


def behaviour_table(figures: dict) -> list[str]:
    suites = {
        key: r["scores"]["behaviour"] for key, r in figures["models"].items() if "behaviour" in r["scores"]
    }
    if not suites:
        return []
    capabilities = sorted({capability for suite in suites.values() for capability in suite})
    rows = [
        [key, *(f"{suite.get(c, float('nan')):.2f}" for c in capabilities)] for key, suite in suites.items()
    ]
    return [
        "",
        "Behaviour suite (toxicity.evaluation.checklist), accuracy at 0.5 (abusive when any tag reaches it):",
        "",
        *table(["model", *capabilities], rows, "l" + "r" * len(capabilities)),
    ]


def markdown(figures: dict, title: str) -> str:
    rows = [
        [
            key,
            *(_figure(headline(figures, key, name)) for name in DATASETS),
            f"{result['fit_seconds']:.0f}",
            result.get("fit_peak_rss_mb", "-"),
        ]
        for key, result in figures["models"].items()
    ]
    columns = [f"{SHORT[name]} ({HEADLINE[name]})" for name in DATASETS]
    lines = [
        f"# {title}",
        "",
        "AUROC of each test set's own tag (the column's); `-` where the model's sources never label that tag "
        "with both classes. Rows: `<family>/<training sources>` (`all-but-X`: leave-one-dataset-out; "
        "`all-seedN`: the all-sources model with another seed). Every shared tag's AUROC is in the JSON. "
        "Settings: "
        + json.dumps(figures["settings"])
        + ". Test rows: "
        + json.dumps(figures.get("test_rows", {}))
        + ".",
        "",
        *table(["trained on", *columns, "fit s", "fit peak MB"], rows, "l" + "r" * (len(DATASETS) + 2)),
        *behaviour_table(figures),
        *goals(figures),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("cross_dataset", __doc__)
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full", help="rows, epochs, test rows")
    parser.add_argument("--quick", action="store_true", help="the same as --budget quick")
    parser.add_argument(
        "--family",
        nargs="+",
        choices=sorted(FAMILIES),
        default=[RECIPE],
        help=f"default: {RECIPE}, the recipe's",
    )
    parser.add_argument("--mix-exponent", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--all-seeds", type=int, default=None, help="seeds of the all-sources model (budget's)"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help="train only these (jigsaw, all, all_proportional, all-but-ethos, hybrid/all, ...)",
    )
    parser.add_argument("--output", type=Path, default=None, help="the results folder")
    parser.add_argument(
        "--with",
        dest="judged_with",
        nargs="+",
        default=[],
        help="judge the goals with the single-dataset models of these earlier results too (file names in "
        "benchmarks/results, the same seed and test rows)",
    )
    parser.add_argument(
        "--report", type=Path, help="only rewrite the report (.md) of an earlier run from its JSON, and stop"
    )
    args = parser.parse_args(argv)
    if args.report:
        return rewrite_report(args.report, args.judged_with)
    args.data_root = args.data_root.resolve()  # the sources files live in a scratch folder
    missing = [name for name in DATASETS if not (args.data_root / name).is_dir()]
    if missing:
        parser.error(f"the datasets {missing} are absent under {args.data_root} (give --data-root)")
    budget_name = "quick" if args.quick else args.budget
    budget = BUDGETS[budget_name]
    seeds = args.all_seeds or budget["all_seeds"]
    known = {
        name for m in plan(args.family, args.seed, seeds, args.mix_exponent, None) for name in names_of(m)
    }
    if unknown := sorted(set(args.only or []) - known):
        parser.error(f"--only {unknown}: no such model; the models are {sorted(known)}")
    models = plan(args.family, args.seed, seeds, args.mix_exponent, args.only or budget["models"])
    variant = "_".join(filter(None, [None if budget_name == "full" else budget_name, *sorted(args.family)]))
    run = Run.start("cross_dataset", variant, argv)
    figures = {
        "settings": {"budget": budget_name, **budget, "families": args.family, "seed": args.seed},
        "judged_with": args.judged_with,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="cross_dataset-") as scratch:
        folder = Path(scratch)
        sources, tests, learned = prepare(args.data_root, folder, args.seed, budget["test_rows"])
        figures["test_rows"] = {SHORT[name]: len(frame) for name, frame in tests.items()}
        for model in models:
            names = model["sources"]
            fitted = train(
                folder / model["key"],
                [sources[n] for n in names],
                model["family"],
                model["seed"],
                model["mix_exponent"],
                budget,
            )
            scores = score(fitted.pop("checkpoint"), tests, set().union(*(learned[n] for n in names)))
            figures["models"][model["key"]] = {
                **{k: model[k] for k in ("family", "model", "sources", "seed", "mix_exponent")},
                **fitted,
                "scores": scores,
            }
            run.write(figures, None, args.output)  # a record so far, in case the run is cut short
            print(
                f"{model['key']}: fit {fitted['fit_seconds']:.0f} s, {fitted['fit_peak_rss_mb']} MB",
                {SHORT.get(n, n): s.get("headline", s) for n, s in scores.items()},
                flush=True,
            )
    path = run.write(figures, markdown(figures, title(figures["settings"])), args.output)
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
