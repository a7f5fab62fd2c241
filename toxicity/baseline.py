"""The classical baseline (TF-IDF + one logistic regression per tag) and the peer, alt-profanity-check.

    python -m toxicity.baseline --data ../shared/data/jigsaw_sample                       # Kaggle test rows
    python -m toxicity.baseline --data ../shared/data/jigsaw_sample --model peer          # the peer, same rows
    python -m toxicity.baseline --data ../shared/data/tweeteval_offensive --split test
    python -m toxicity.baseline --data davidson.csv.gz --text-column tweet --label-columns hate offensive \\
        --label-from 'class:0=hate+offensive,1=offensive'

Features: word 1-2 grams and character 2-5 grams (within word boundaries), sublinear TF, each capped
at --max-features. One L2-regularised logistic regression per tag, class-balanced (rare tags such as
`threat` have a handful of positives). It is trained on the training split that `python -m
toxicity.fit` would make with the same data settings (the data module builds it, same seed), its
thresholds are tuned on that validation split, and it is scored by the same report as a checkpoint,
so neural and classical models are compared on identical rows. Nothing is saved but the report: it
retrains in seconds, and a pickled model would be a file that runs code when loaded.

`--model peer` scores with alt-profanity-check (`pip install -e ".[peer]"`), a linear model trained by
its authors on far more data: one offensiveness probability per comment, given to every tag; no
training of ours, thresholds tuned on the same validation split. It is there for the comparison only.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from toxicity import plots
from toxicity.cli import run_tool
from toxicity.data import TEXT_COLUMN, ToxicCommentsDataModule
from toxicity.eval_data import EvalRequest, EvalSet
from toxicity.evaluate import EvalOptions, Scored, compute_results, tuned_on_validation
from toxicity.files import refuse_to_overwrite, write_text_atomically
from toxicity.labels import LABELS
from toxicity.report import render
from toxicity.thresholds import apply_thresholds, tune_thresholds

log = logging.getLogger(__name__)


class TfidfTagger:
    """TF-IDF (word 1-2 + char 2-5 grams) and one logistic regression per tag; `predict_proba` like the
    neural scorers. A tag with one class only in training gets that class's constant score."""

    def __init__(self, tags: Sequence[str], max_features: int = 200_000, c: float = 4.0, seed: int = 42):
        self.tags, self.thresholds = list(tags), None
        self.features = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=max_features,
                                      strip_accents="unicode")),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1,
                                      max_features=max_features, strip_accents="unicode")),
        ])
        self.c, self.seed = c, seed
        self.models: list[LogisticRegression | float] = []

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> TfidfTagger:
        matrix = self.features.fit_transform(list(texts))
        self.models = []
        for k in range(len(self.tags)):
            column = labels[:, k]
            if column.min() == column.max():
                self.models.append(float(column[0]))
                continue
            model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000, random_state=self.seed)
            self.models.append(model.fit(matrix, column))
        return self

    def predict_proba(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        matrix = self.features.transform(list(texts))
        columns = [np.full(matrix.shape[0], model) if isinstance(model, float) else model.predict_proba(matrix)[:, 1]
                   for model in self.models]
        return np.stack(columns, axis=1).astype(np.float32)


class PeerTagger:
    """alt-profanity-check's probability of a comment being offensive, as the score of every tag."""

    def __init__(self, tags: Sequence[str]):
        try:
            from profanity_check import predict_prob
        except ImportError as error:
            raise ValueError("The peer scorer needs alt-profanity-check: pip install -e \".[peer]\"") from error
        self.tags, self.thresholds, self._predict_prob = list(tags), None, predict_prob

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> PeerTagger:
        return self  # trained by its authors; nothing of ours

    def predict_proba(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        scores = np.asarray(self._predict_prob(list(texts)), dtype=np.float32)
        return np.repeat(scores[:, None], len(self.tags), axis=1)


MODELS = {"tfidf": TfidfTagger, "peer": PeerTagger}


def evaluation_set(datamodule: ToxicCommentsDataModule, split: str, name: str) -> EvalSet:
    tags = list(datamodule.hparams.label_columns)
    frame = datamodule.frames[split]
    kaggle = split == "test" and sorted(tags) == sorted(LABELS)
    return EvalSet(f"{name}-{split}", f"{datamodule.hparams.data_path} ({split} split)", split, frame, tags,
                   kaggle=kaggle)


def run_baseline(datamodule: ToxicCommentsDataModule, split: str, out: Path, overwrite: bool = False,
                 model: str = "tfidf") -> dict:
    """Trains on the data module's train split, tunes thresholds on val, writes the report for `split`."""
    refuse_to_overwrite(out / "report.md", overwrite=overwrite)
    datamodule.setup("fit")
    if split not in datamodule.frames:
        raise ValueError(f"{datamodule.hparams.data_path}: no {split} split (a test split needs Kaggle's test "
                         "files, a TweetEval test file, or --test-path).")
    tags = list(datamodule.hparams.label_columns)
    train = datamodule.frames["train"]
    started = time.perf_counter()
    tagger = MODELS[model](tags).fit(train["text"].tolist(), train[tags].to_numpy())
    train_seconds = time.perf_counter() - started
    name = f"{model}-{Path(datamodule.hparams.data_path).name.split('.')[0]}"
    started = time.perf_counter()
    validation = score(tagger, evaluation_set(datamodule, "val", name))
    score_seconds = time.perf_counter() - started
    described = {"tfidf": f"TF-IDF + logistic regression (trained on {len(train)} rows; no checkpoint)",
                 "peer": "alt-profanity-check (the peer; not trained here)"}[model]
    options = EvalOptions(ckpt_path=described, request=EvalRequest(split=split))
    notes = [f"Trained in {train_seconds:.1f} s on {len(train)} rows of {datamodule.hparams.data_path}."
             if model == "tfidf" else "The peer's one score is given to every tag."]
    if split == "val":
        scored, tuned = validation, tuned_on_validation(validation, options, datamodule.hparams.seed, notes)
    else:
        thresholds = tune_thresholds(validation.labels, validation.probs, tags, options.rule)
        started = time.perf_counter()
        scored = score(tagger, evaluation_set(datamodule, split, name))
        score_seconds = time.perf_counter() - started
        tuned = {"label": "tuned on validation", "rule": str(options.rule), "thresholds": thresholds,
                 "description": f"rule `{options.rule}`, tuned on the {len(validation.probs)} validation rows.",
                 "decisions": apply_thresholds(scored.probs, [thresholds[tag] for tag in tags])}
    results = compute_results(scored, tuned, options, tags)
    results["speed"] = {"train_examples_per_s": len(train) / train_seconds if model == "tfidf" else None,
                        "score_comments_per_s": len(scored.data.texts) / score_seconds}
    figures = {"roc_curves": plots.roc_curves(scored.labels, scored.probs, tags),
               "precision_recall_curves": plots.precision_recall_curves(scored.labels, scored.probs, tags)}
    for figure_name, figure in figures.items():
        plots.save_png(figure, out / f"{figure_name}.png")
    results["plots"], results["notes"] = list(figures), notes
    write_text_atomically(out / "metrics.json", json.dumps(results, indent=2) + "\n")
    write_text_atomically(out / "report.md", render(results))
    return results


def score(tagger: TfidfTagger, data: EvalSet) -> Scored:
    return Scored(data, tagger.predict_proba(data.texts))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m toxicity.baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="as fit's --data.data_path")
    parser.add_argument("--model", choices=sorted(MODELS), default="tfidf", help="tfidf, or the peer")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--label-columns", nargs="+", default=None, help="default: the Jigsaw tags "
                        "(a TweetEval folder: its task)")
    parser.add_argument("--label-from", default=None, help="as fit's --data.label_from")
    parser.add_argument("--binarise-at", type=float, default=None)
    parser.add_argument("--separator", default=None)
    parser.add_argument("--val-path", default=None)
    parser.add_argument("--test-path", default=None)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42, help="the data split's seed (as fit's --data.seed)")
    parser.add_argument("--out", default=None, help="default: reports/tfidf-<data>-<split>")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    from toxicity.tables import tweeteval_task

    args = build_parser().parse_args(argv)
    tags = args.label_columns or ([tweeteval_task(args.data)] if tweeteval_task(args.data) else list(LABELS))
    datamodule = ToxicCommentsDataModule(args.data, text_column=args.text_column, label_columns=tags,
                                         label_from=args.label_from, binarise_at=args.binarise_at,
                                         separator=args.separator, val_path=args.val_path,
                                         test_path=args.test_path, val_fraction=args.val_fraction, seed=args.seed)
    out = Path(args.out or f"reports/{args.model}-{Path(args.data).name.split('.')[0]}-{args.split}")
    results = run_tool(lambda: run_baseline(datamodule, args.split, out, args.overwrite, args.model),
                       level=logging.INFO)
    print((out / "report.md").read_text())
    print(f"Report and metrics.json in {out}/")
    return results


if __name__ == "__main__":
    main()
