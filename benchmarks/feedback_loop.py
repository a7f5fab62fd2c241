"""The feedback loop closed and measured: correct a model's behaviour-suite failures on half of the suite's
templates through `comments:suggestscore`, retrain with the exported feedback, and score the other half.

    python -m benchmarks.feedback_loop                  # trains the demo model first
    python -m benchmarks.feedback_loop --ckpt base.ckpt --work /tmp/loop

1. The demo data (toxicity/data/demo/demo_comments.csv) is split once, seeded, into train and validation
   rows; the base model is trained on the train rows with experiments/demo.yaml (or --ckpt is used).
2. The behaviour suite (toxicity/evaluation/checklist.py) is scored; within each capability its templates
   alternate between half A (the first, third, ... template) and half B.
3. A server (`python -m toxicity.serve --feedback-db`) gets, for each failure of half A, the correct
   scores for all six attributes (a sentence the suite calls abuse: TOXICITY and INSULT 1, the rest 0; a
   sentence it calls fine: all 0), as a moderation tool would report them.
4. `python -m toxicity.feedback export` writes them as a table; the model is retrained, same recipe and
   seed, on the train rows plus that table (concatenated here: fit reads one training table).
5. Before and after: the suite on half B (never corrected), on half A, and the validation AUROC on the demo
   validation rows and on jigsaw_sample's scored test rows (when ../shared/data is there), so that a loss
   elsewhere shows.

Writes benchmarks/results/feedback_loop[-all_decisions]-<YYYY-MM-DD>-<machine>.json and .md (the variant
with --send all; benchmarks.common).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, free_port, table
from toxicity.core.tags import LABELS
from toxicity.data.demo import DEMO_CSV
from toxicity.data.splits import split_train_val
from toxicity.evaluation.checklist import capability_accuracy, suite_by_template
from toxicity.evaluation.metrics import mean_of_defined, roc_auc_or_none
from toxicity.serving.perspective.analyze import ATTRIBUTES

ABUSE_TAGS = {"toxic", "insult"}  # the suite's abusive sentences are insults


# ---------------------------------------------------------------------------------------------- data
def demo_split(folder: Path, seed: int) -> tuple[Path, Path]:
    demo = pd.read_csv(DEMO_CSV).rename(columns={"comment_text": "text"})
    train, val = split_train_val(demo, LABELS, 0.1, seed)
    paths = folder / "demo_train.csv", folder / "demo_val.csv"
    for frame, path in zip((train, val), paths):
        frame.rename(columns={"text": "comment_text"}).to_csv(path, index=False)
    return paths


def halves() -> tuple[dict, dict]:
    """Each capability's templates alternate between half A and half B."""
    half_a, half_b = {}, {}
    for capability, templates in suite_by_template().items():
        cases = list(templates.values())
        half_a[capability] = [case for group in cases[0::2] for case in group]
        half_b[capability] = [case for group in cases[1::2] for case in group]
    return half_a, half_b


# ------------------------------------------------------------------------------------ training, scoring
def fit(train: Path, val: Path, folder: Path, name: str, seed: int, epochs: int | None) -> tuple[Path, float]:
    best = folder / f"{name}.ckpt"
    command = [
        sys.executable,
        "-m",
        "toxicity.fit",
        "--config",
        str(ROOT / "experiments" / "demo.yaml"),
        "--data.data_path",
        str(train),
        "--data.val_path",
        str(val),
        "--seed_everything",
        str(seed),
        "--trainer.enable_progress_bar",
        "false",
        "--best_link",
        str(best),
        "--trainer.logger.init_args.save_dir",
        str(folder / f"logs-{name}"),
    ]
    if epochs:
        command += ["--trainer.max_epochs", str(epochs)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"fit of {name} failed:\n{result.stderr[-3000:]}")
    return best, time.perf_counter() - started


def mean_auroc(probabilities: np.ndarray, labels: pd.DataFrame) -> dict:
    """AUROC of each tag with both classes in the rows, and their mean."""
    aurocs = {
        tag: roc_auc_or_none(labels[tag].to_numpy(), probabilities[:, k]) for k, tag in enumerate(LABELS)
    }
    per_tag = {tag: auroc for tag, auroc in aurocs.items() if auroc is not None}
    return {"mean": mean_of_defined(list(per_tag.values())), "per_tag": per_tag, "rows": len(labels)}


def jigsaw_sample_test() -> pd.DataFrame | None:
    from toxicity.data.sources import find_kaggle_files, load_kaggle_test

    folder = SHARED_DATA / "jigsaw_sample"
    if not folder.is_dir():
        return None
    return load_kaggle_test(find_kaggle_files(folder), "comment_text", LABELS)


def measure(checkpoint: Path, half_a: dict, half_b: dict, val: Path, jigsaw: pd.DataFrame | None) -> dict:
    from toxicity.inference.scorer import ToxicityClassifier

    classifier = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")
    validation = pd.read_csv(val)
    figures = {
        "half_b": suite_figures(classifier.predict_proba, half_b),
        "half_a": suite_figures(classifier.predict_proba, half_a),
        "demo_val_auroc": mean_auroc(
            classifier.predict_proba(validation["comment_text"].tolist()), validation
        ),
    }
    if jigsaw is not None:
        figures["jigsaw_sample_test_auroc"] = mean_auroc(
            classifier.predict_proba(jigsaw["text"].tolist()), jigsaw
        )
    return figures


def suite_figures(predict_proba, cases: dict) -> dict:
    per_capability = capability_accuracy(predict_proba, cases=cases)
    right = sum(round(figure["accuracy"] * figure["cases"]) for figure in per_capability.values())
    total = sum(figure["cases"] for figure in per_capability.values())
    return {"accuracy": right / total, "cases": total, "per_capability": per_capability}


def decisions(predict_proba, cases: dict, send: str) -> list[tuple[str, int]]:
    """The correct labels to send: for the model's failures only, or (`send` "all") for every sentence, as a
    moderation tool reporting every moderator decision would."""
    rows = [case for group in cases.values() for case in group]
    if send == "all":
        return rows
    decided = predict_proba([text for text, _ in rows]).max(axis=1) >= 0.5
    return [(text, label) for (text, label), abusive in zip(rows, decided) if int(abusive) != label]


# ------------------------------------------------------------------------------------ the server round
def suggestion(text: str, label: int, position: int) -> dict:
    scores = {
        ATTRIBUTES[tag]: {"summaryScore": {"value": float(label and tag in ABUSE_TAGS)}} for tag in LABELS
    }
    return {
        "comment": {"text": text},
        "attributeScores": scores,
        "communityId": "benchmarks/feedback_loop",
        "clientToken": f"failure-{position}",
    }


def send_feedback(checkpoint: Path, database: Path, corrections: list[tuple[str, int]]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "toxicity.serve", "--ckpt", str(checkpoint), "--port", str(port)]
        + ["--feedback-db", str(database)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server)
        for position, (text, label) in enumerate(corrections):
            answer = post(f"{url}/v1alpha1/comments:suggestscore", suggestion(text, label, position))
            if answer.get("clientToken") != f"failure-{position}":
                raise RuntimeError(f"suggestscore answered {answer}")
    finally:
        server.terminate()
        server.wait(30)


def wait_until_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server stopped while starting")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not start in 180 s")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def export(database: Path, out: Path) -> pd.DataFrame:
    command = [
        sys.executable,
        "-m",
        "toxicity.feedback",
        "export",
        "--feedback-db",
        str(database),
        "--output",
        str(out),
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return pd.read_csv(out)


# ------------------------------------------------------------------------------------------- the run
def run(work: Path, ckpt: Path | None, seed: int, epochs: int | None, send: str = "failures") -> dict:
    train, val = demo_split(work, seed)
    half_a, half_b = halves()
    jigsaw = jigsaw_sample_test()
    timings = {}
    if ckpt is None:
        ckpt, timings["fit_base_s"] = fit(train, val, work, "base", seed, epochs)
    from toxicity.inference.scorer import ToxicityClassifier

    base = ToxicityClassifier.from_checkpoint(ckpt, device="cpu")
    corrections = decisions(base.predict_proba, half_a, send)
    database = work / "feedback.sqlite"
    send_feedback(ckpt, database, corrections)
    feedback = export(database, work / "feedback.csv")
    combined = work / "demo_train_plus_feedback.csv"
    pd.concat([pd.read_csv(train), feedback], ignore_index=True).to_csv(combined, index=False)
    retrained, timings["fit_retrained_s"] = fit(combined, val, work, "retrained", seed, epochs)
    return {
        "base": str(ckpt),
        "seed": seed,
        "max_epochs": epochs or "the recipe's (experiments/demo.yaml: 10)",
        "sent": send,
        "feedback_sent": len(corrections),
        "feedback_exported": len(feedback),
        "feedback_labels": {"abusive": int(sum(label for _, label in corrections))},
        "train_rows": len(pd.read_csv(train)),
        "before": measure(ckpt, half_a, half_b, val, jigsaw),
        "after": measure(retrained, half_a, half_b, val, jigsaw),
        "timings": timings,
    }


def markdown(results: dict, date: str) -> str:
    before, after = results["before"], results["after"]
    what = "failures" if results["sent"] == "failures" else "sentences (failures or not)"
    intro = (
        f"`python -m benchmarks.feedback_loop --send {results['sent']}`: the correct labels of the "
        f"behaviour-suite {what} of half A of the suite's templates sent "
        "through comments:suggestscore, exported with `python -m toxicity.feedback export`, added to the "
        f"demo training rows ({results['train_rows']} rows + {results['feedback_exported']} feedback rows), "
        f"retrained with the same recipe (experiments/demo.yaml, max epochs: {results['max_epochs']}) and "
        "seed. Half B was never corrected."
    )
    rows = [
        ("suite, half B (not corrected), accuracy", "half_b", "accuracy", 3),
        ("suite, half A (corrected), accuracy", "half_a", "accuracy", 3),
        ("demo validation, mean AUROC", "demo_val_auroc", "mean", 4),
    ]
    if "jigsaw_sample_test_auroc" in before:
        rows.append(
            (
                f"jigsaw_sample test ({before['jigsaw_sample_test_auroc']['rows']} rows), mean AUROC",
                "jigsaw_sample_test_auroc",
                "mean",
                4,
            )
        )
    cells = [
        [name, f"{before[key][field]:.{digits}f}", f"{after[key][field]:.{digits}f}"]
        for name, key, field, digits in rows
    ]
    lines = [f"# Feedback loop, {date}", "", intro, "", *table(["figure", "before", "after"], cells)]
    lines += ["", "Half B per capability (accuracy, before -> after):", ""]
    for capability, figure in before["half_b"]["per_capability"].items():
        later = after["half_b"]["per_capability"][capability]
        lines.append(
            f"- {capability} ({figure['cases']} cases): {figure['accuracy']:.3f} -> {later['accuracy']:.3f}"
        )
    lines += [
        "",
        f"Feedback: {results['feedback_sent']} suggestions sent ({results['feedback_labels']['abusive']} "
        f"abusive), {results['feedback_exported']} rows exported. Trainings: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["timings"].items())
        + " (the load they ran beside is in the environment below).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("feedback_loop", __doc__)
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="the base model (default: train the demo one)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="where the runs go (default: a temporary folder)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--send",
        choices=("failures", "all"),
        default="failures",
        help="the correct labels of half A's failures only, or of all its sentences (every decision)",
    )
    parser.add_argument("--max-epochs", type=int, default=None, help="both trainings (default: the recipe's)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="feedback-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    record = Run.start("feedback_loop", "all_decisions" if args.send == "all" else None, argv)
    results = run(work, args.ckpt, args.seed, args.max_epochs, args.send)
    print(markdown(results, record.date))
    print(f"Wrote {record.write(results, markdown(results, record.date), out=args.output)} and .md")
    return results


if __name__ == "__main__":
    main()
