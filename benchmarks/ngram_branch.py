"""Where the hybrid's spelling goes: its n-gram branch alone, weighted four ways, and a trained hybrid's two
halves re-weighted on validation rows.

    python -m benchmarks.ngram_branch --run RUN_FOLDER [--run RUN_FOLDER ...]

RUN_FOLDER is a jigsaw_sample hybrid job of benchmarks.sweep (`<out>/runs/jigsaw_sample-hybrid-<seed>`):
its data/ holds the rows every model of the sweep saw, its best.ckpt the trained hybrid.

Part 1, on the first run's training and test rows: one logistic regression per tag (C=4, as
`ngram_warm_start` fits it) on the hybrid's hashed n-grams (toxicity.data.ngrams.NgramHasher) weighted as
shipped (log counts, L2 rows), with idf (fitted on the training rows), class-balanced, and both; and the
TF-IDF baseline (toxicity.evaluation.baseline). Each is scored by the Kaggle metric on the test rows and by
the behaviour suite (accuracy at 0.5, toxicity.evaluation.checklist).
Part 2, for each run: the hybrid as trained (encoder logits + n-gram logits) and with one weight per half
and tag fitted on the run's validation rows (a logistic regression on the two logits; tags with fewer than
3 validation positives keep 1, 1): does the validation data ask for more spelling than training gave?
Writes benchmarks/results/ngram_branch-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from benchmarks.common import RESULTS, Run, arguments, table
from toxicity.data.ngrams import NgramHasher
from toxicity.evaluation.baseline import TfidfTagger
from toxicity.evaluation.checklist import capability_accuracy
from toxicity.evaluation.metrics import kaggle_score
from toxicity.inference.scorer import ToxicityClassifier

TAGS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def suite(predict_proba) -> dict[str, float]:
    return {name: round(cell["accuracy"], 3) for name, cell in capability_accuracy(predict_proba).items()}


class NgramRegressions:
    """Per-tag logistic regressions on the hybrid's hashed n-grams, optionally idf-weighted."""

    def __init__(self, use_idf: bool, balanced: bool):
        self.hasher, self.use_idf, self.balanced = NgramHasher(), use_idf, balanced

    def counts(self, texts: list[str]):
        """log(1 + count) of each hashed n-gram, as NgramHasher.matrix has them before its L2 step."""
        words, chars = self.hasher._vectorizers
        counts = (words.transform(texts) + chars.transform(texts)).tocsr()
        np.log1p(counts.data, out=counts.data)
        return counts

    def features(self, texts: list[str]):
        if not self.use_idf:
            return self.hasher.matrix(texts)
        return normalize(self.counts(texts).multiply(self.idf).tocsr(), norm="l2")

    def fit(self, texts: list[str], labels: np.ndarray) -> NgramRegressions:
        if self.use_idf:  # fitted on the training rows only
            self.idf = TfidfTransformer(norm=None).fit(self.counts(texts)).idf_
        features = self.features(texts)
        weights = "balanced" if self.balanced else None
        self.models = [
            LogisticRegression(C=4.0, max_iter=1000, class_weight=weights).fit(features, labels[:, k])
            for k in range(labels.shape[1])
        ]
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        features = self.features(list(texts))
        return np.stack([model.predict_proba(features)[:, 1] for model in self.models], axis=1)


def branch_weightings(run: Path) -> list[dict]:
    train, test = (pd.read_csv(run / "data" / f"{split}.csv") for split in ("train", "test"))
    texts, labels = train["text"].tolist(), train[TAGS].to_numpy()
    rows = []
    for name, use_idf, balanced in [
        ("n-grams as shipped", False, False),
        ("n-grams + idf", True, False),
        ("n-grams, class-balanced", False, True),
        ("n-grams + idf, class-balanced", True, True),
    ]:
        model = NgramRegressions(use_idf, balanced).fit(texts, labels)
        rows.append(row(name, model.predict_proba, test))
    rows.append(row("TF-IDF baseline", TfidfTagger(TAGS).fit(texts, labels).predict_proba, test))
    return rows


def row(name: str, predict_proba, test: pd.DataFrame) -> dict:
    probs = predict_proba(test["text"].tolist())
    return {"model": name, "auroc": kaggle_score(test[TAGS].to_numpy(), probs), "suite": suite(predict_proba)}


class Halves:
    """A trained hybrid's encoder and n-gram logits, each (texts, tags)."""

    def __init__(self, ckpt: Path):
        self.classifier = ToxicityClassifier.from_checkpoint(ckpt, device="cpu")

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        classifier, tags = self.classifier, self.classifier.tags

        def both(input_ids, attention_mask, **ngrams):
            with torch.no_grad():
                meaning, spelling = classifier.model.branches(
                    input_ids,
                    attention_mask,
                    ngrams["ngram_ids"],
                    ngrams["ngram_offsets"],
                    ngrams["ngram_weights"],
                )
            return torch.cat([meaning, spelling], dim=1).numpy()

        classifier._probabilities, classifier.tags = both, tags * 2  # the scorer's batching, both halves out
        try:
            logits = classifier.predict_proba(list(texts))
        finally:
            del classifier._probabilities
            classifier.tags = tags
        return logits[:, : len(tags)], logits[:, len(tags) :]


def reweighted(run: Path) -> list[dict]:
    halves = Halves(run / "best.ckpt")
    val, test = (pd.read_csv(run / "data" / f"{split}.csv") for split in ("val", "test"))
    meaning, spelling = halves(val["text"].tolist())
    weights = []
    for k in range(len(TAGS)):
        column = val[TAGS[k]].to_numpy()
        if column.sum() < 3:
            weights.append((1.0, 1.0, 0.0))
            continue
        fit = LogisticRegression(C=1.0).fit(np.stack([meaning[:, k], spelling[:, k]], axis=1), column)
        weights.append((float(fit.coef_[0][0]), float(fit.coef_[0][1]), float(fit.intercept_[0])))
    w = np.array(weights)

    def as_trained(texts):
        return 1 / (1 + np.exp(-sum(halves(texts))))

    def refitted(texts):
        meaning, spelling = halves(texts)
        return 1 / (1 + np.exp(-(w[:, 0] * meaning + w[:, 1] * spelling + w[:, 2])))

    out = [
        row(f"{run.name}: as trained", as_trained, test),
        row(f"{run.name}: halves re-weighted", refitted, test),
    ]
    out[1]["weights_encoder_ngram_bias"] = dict(zip(TAGS, weights))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = arguments("ngram_branch", __doc__)
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    record = Run.start("ngram_branch", argv=argv)
    torch.set_num_threads(2)
    results = {
        "runs": [str(run) for run in args.run],
        "branch_alone": branch_weightings(args.run[0]),
        "hybrid_reweighted": [cell for run in args.run for cell in reweighted(run)],
    }
    print(markdown(results, record.date))
    print(f"Wrote {record.write(results, markdown(results, record.date), out=args.output)} and .md")


def markdown(results: dict, date: str) -> str:
    capabilities = list(results["branch_alone"][0]["suite"])
    cells = [
        [cell["model"], f"{cell['auroc']:.4f}", *(f"{cell['suite'][name]:.2f}" for name in capabilities)]
        for cell in results["branch_alone"] + results["hybrid_reweighted"]
    ]
    lines = [
        f"# The hybrid's n-gram branch and its weight ({date})",
        "",
        (
            f"`python -m benchmarks.ngram_branch --run ...` on {', '.join(results['runs'])} (jigsaw_sample "
            "rows of benchmarks.sweep). Kaggle mean AUROC on the scored test rows; behaviour suite at 0.5."
        ),
        "",
        *table(["model", "AUROC", *capabilities], cells),
    ]
    lines += ["", "Weights fitted on validation rows (encoder, n-grams, bias) per tag:", ""]
    for cell in results["hybrid_reweighted"]:
        if "weights_encoder_ngram_bias" in cell:
            fitted = ", ".join(
                f"{tag} ({a:.2f}, {b:.2f}, {c:.2f})"
                for tag, (a, b, c) in cell["weights_encoder_ngram_bias"].items()
            )
            lines.append(f"- {cell['model']}: {fitted}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
