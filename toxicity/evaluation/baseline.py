"""The classical baseline (TF-IDF + one logistic regression per tag) and the peer, alt-profanity-check.

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

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from toxicity.core.files import refuse_to_overwrite, write_text_atomically
from toxicity.core.tags import LABELS
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.evaluation import plots
from toxicity.evaluation.eval_sets import EvalRequest, EvalSet
from toxicity.evaluation.evaluator import EvalOptions, Scored, compute_results, tuned_on_validation
from toxicity.evaluation.report import render
from toxicity.evaluation.results import EvalResults, TunedThresholds
from toxicity.evaluation.thresholds import tune_thresholds


class TfidfTagger:
    """TF-IDF (word 1-2 + char 2-5 grams) and one logistic regression per tag; `predict_proba` like the
    neural scorers. A tag with one class only in training gets that class's constant score."""

    def __init__(self, tags: Sequence[str], max_features: int = 200_000, c: float = 4.0, seed: int = 42):
        self.tags, self.thresholds = list(tags), None
        self.features = FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                        min_df=1,
                        max_features=max_features,
                        strip_accents="unicode",
                    ),
                ),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(2, 5),
                        sublinear_tf=True,
                        min_df=1,
                        max_features=max_features,
                        strip_accents="unicode",
                    ),
                ),
            ]
        )
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
            model = LogisticRegression(
                C=self.c, class_weight="balanced", max_iter=2000, random_state=self.seed
            )
            self.models.append(model.fit(matrix, column))
        return self

    def predict_proba(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        matrix = self.features.transform(list(texts))
        columns = [
            np.full(matrix.shape[0], model) if isinstance(model, float) else model.predict_proba(matrix)[:, 1]
            for model in self.models
        ]
        return np.stack(columns, axis=1).astype(np.float32)


class PeerTagger:
    """alt-profanity-check's probability of a comment being offensive, as the score of every tag."""

    def __init__(self, tags: Sequence[str]):
        try:
            from profanity_check import predict_prob
        except ImportError as error:
            raise ValueError('The peer scorer needs alt-profanity-check: pip install -e ".[peer]"') from error
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
    return EvalSet(
        f"{name}-{split}",
        f"{datamodule.hparams.data_path} ({split} split)",
        split,
        frame,
        tags,
        kaggle=kaggle,
    )


def run_baseline(
    datamodule: ToxicCommentsDataModule, split: str, out: Path, overwrite: bool = False, model: str = "tfidf"
) -> EvalResults:
    """Trains on the data module's train split, tunes thresholds on val, writes the report for `split`."""
    refuse_to_overwrite(out / "report.md", overwrite=overwrite)
    datamodule.setup("fit")
    if split not in datamodule.frames:
        raise ValueError(
            f"{datamodule.hparams.data_path}: no {split} split (a test split needs Kaggle's test "
            "files, a TweetEval test file, or --test-path)."
        )
    tags = list(datamodule.hparams.label_columns)
    train = datamodule.frames["train"]
    started = time.perf_counter()
    tagger = MODELS[model](tags).fit(train["text"].tolist(), train[tags].to_numpy())
    train_seconds = time.perf_counter() - started
    name = f"{model}-{Path(datamodule.hparams.data_path).name.split('.')[0]}"
    started = time.perf_counter()
    validation = score(tagger, evaluation_set(datamodule, "val", name))
    score_seconds = time.perf_counter() - started
    described = {
        "tfidf": f"TF-IDF + logistic regression (trained on {len(train)} rows; no checkpoint)",
        "peer": "alt-profanity-check (the peer; not trained here)",
    }[model]
    options = EvalOptions(ckpt_path=described, request=EvalRequest(split=split))
    notes = [
        f"Trained in {train_seconds:.1f} s on {len(train)} rows of {datamodule.hparams.data_path}."
        if model == "tfidf"
        else "The peer's one score is given to every tag."
    ]
    if split == "val":
        scored, tuned = validation, tuned_on_validation(validation, options, datamodule.hparams.seed, notes)
    else:
        thresholds = tune_thresholds(validation.labels, validation.probs, tags, options.rule)
        started = time.perf_counter()
        scored = score(tagger, evaluation_set(datamodule, split, name))
        score_seconds = time.perf_counter() - started
        tuned = TunedThresholds.applied(
            "tuned on validation",
            str(options.rule),
            thresholds,
            f"rule `{options.rule}`, tuned on the {len(validation.probs)} validation rows.",
            scored.probs,
        )
    results = compute_results(scored, tuned, options, tags)
    results.speed = {
        "train_examples_per_s": len(train) / train_seconds if model == "tfidf" else None,
        "score_comments_per_s": len(scored.data.texts) / score_seconds,
    }
    figures = {
        "roc_curves": plots.roc_curves(scored.labels, scored.probs, tags),
        "precision_recall_curves": plots.precision_recall_curves(scored.labels, scored.probs, tags),
    }
    for figure_name, figure in figures.items():
        plots.save_png(figure, out / f"{figure_name}.png")
    results.plots, results.notes = list(figures), notes
    write_text_atomically(out / "metrics.json", json.dumps(results.to_json(), indent=2) + "\n")
    write_text_atomically(out / "report.md", render(results))
    return results


def score(tagger: TfidfTagger, data: EvalSet) -> Scored:
    return Scored(data, tagger.predict_proba(data.texts))
