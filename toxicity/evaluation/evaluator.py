"""One evaluation of a checkpoint on labelled rows: score, tune or apply thresholds, compute the typed
results, draw the figures, write report.md, metrics.json and the plots (`python -m toxicity.evaluate`).

Thresholds: --split val tunes one threshold per tag on the validation rows (rule --threshold-rule) and
writes them next to the checkpoint (toxicity.checkpoint.thresholds_path), where ToxicityClassifier finds
them. The tuned column of a validation report is cross-fitted (each fold decided with thresholds tuned
on the other folds), so it is not scored on the rows it was tuned on. --split test applies the saved
thresholds (tuning them on the run's validation split first if there are none yet).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from toxicity.checkpoint import (
    DataSettings,
    TrainedCheckpoint,
    read_thresholds,
    save_thresholds,
    thresholds_path,
)
from toxicity.core.errors import DataError
from toxicity.core.files import refuse_to_overwrite, write_text_atomically
from toxicity.evaluation import plots
from toxicity.evaluation.bias import bias_report
from toxicity.evaluation.eval_sets import EvalRequest, EvalSet, checkpoint_val_split, load_eval_set
from toxicity.evaluation.metrics import calibration_report, decision_report, kaggle_score, ranking_report
from toxicity.evaluation.report import render
from toxicity.evaluation.results import EvalResults, KaggleScore, TunedScores, TunedThresholds
from toxicity.evaluation.runlog import read_scalars, write_to_run
from toxicity.evaluation.thresholds import (
    DEFAULT_RULE,
    DEFAULT_THRESHOLD,
    ThresholdRule,
    apply_thresholds,
    cross_fitted_decisions,
    tune_thresholds,
)
from toxicity.inference.scorer import ToxicityClassifier, default_device

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    ckpt_path: str
    request: EvalRequest = field(default_factory=EvalRequest)
    output: str | None = None  # default: reports/<data>-<split>
    overwrite: bool = False
    rule: ThresholdRule = DEFAULT_RULE
    folds: int = 5
    calibration_bins: int = 10
    bias_tag: str = "toxic"
    log_dir: str | None = None  # also write the figures and scalars into this TensorBoard run folder
    batch_size: int = 64
    device: str | None = None
    save_thresholds: bool = (
        False  # write the tuned thresholds beside the checkpoint (predict and serve read them)
    )
    explain_errors: int = 0  # N > 0: errors.html, each tag's N most confident errors with their words


@dataclass
class Scored:
    """An evaluation set with the model's probabilities for its tags."""

    data: EvalSet
    probs: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return self.data.labels


def score(classifier: ToxicityClassifier, data: EvalSet) -> Scored:
    columns = [classifier.tags.index(tag) for tag in data.tags]
    log.info("Scoring %d texts of %s", len(data.frame), data.name)
    return Scored(data, classifier.predict_proba(data.texts)[:, columns])


# ------------------------------------------------------------------------------------------- thresholds
NOT_SAVED = (
    "Thresholds not saved: pass --save-thresholds to write them beside the checkpoint, where "
    "`toxicity predict --threshold tuned` and the server read them."
)


def tuned_on_validation(scored: Scored, options: EvalOptions, seed: int, notes: list[str]) -> TunedThresholds:
    """Thresholds tuned on all validation rows (saved when asked and it is the run's own split);
    cross-fitted decisions."""
    tags = scored.data.tags
    thresholds = tune_thresholds(scored.labels, scored.probs, tags, options.rule)
    if not options.save_thresholds:
        notes.append(NOT_SAVED)
    elif scored.data.checkpoint_val:
        save_thresholds(thresholds_path(options.ckpt_path), thresholds)
        notes.append(f"Tuned thresholds written to {thresholds_path(options.ckpt_path)}.")
    else:
        notes.append(
            "Thresholds not saved: this is not the checkpoint's own validation split with all its tags."
        )
    decisions = cross_fitted_decisions(scored.labels, scored.probs, options.rule, options.folds, seed)
    description = (
        f"rule `{options.rule}`; the thresholds shown are tuned on all {len(scored.probs)} validation "
        f"rows; the scores are cross-fitted: up to {options.folds} folds stratified per tag, each decided "
        "with thresholds tuned on the other folds (a tag with fewer than 2 positives or negatives at "
        f"{DEFAULT_THRESHOLD}), so no row is scored with a threshold tuned on it."
    )
    return TunedThresholds("cross-fitted", str(options.rule), thresholds, description, decisions)


def tuned_from_validation(
    scored: Scored, classifier: ToxicityClassifier, options: EvalOptions, run: DataSettings, notes: list[str]
) -> TunedThresholds | None:
    """The thresholds saved for the checkpoint, tuned first on the run's validation split if there are
    none (and saved then only when asked)."""
    path = thresholds_path(options.ckpt_path)
    saved = read_thresholds(options.ckpt_path) or {}
    rule, description = (
        None,
        f"read from `{path}`, tuned on the validation split by an earlier --split val run.",
    )
    if not all(tag in saved for tag in scored.data.tags):
        try:
            validation = score(classifier, checkpoint_val_split(run))
        except DataError as error:
            notes.append(
                f"No tuned thresholds: {path} is absent and the run's validation split cannot be "
                f"rebuilt ({error}). Run --split val with the training data first."
            )
            return None
        saved = tune_thresholds(validation.labels, validation.probs, validation.data.tags, options.rule)
        rule = str(options.rule)
        description = f"rule `{rule}`, tuned now on the run's validation split"
        if options.save_thresholds:
            save_thresholds(path, saved)
            description += f" and saved to `{path}`"
            notes.append(
                f"Thresholds tuned on the run's validation split (rule {rule}) and written to {path}."
            )
        else:
            notes.append(NOT_SAVED)
        description += "."
    thresholds = {tag: saved[tag] for tag in scored.data.tags}
    return TunedThresholds.applied("tuned on validation", rule, thresholds, description, scored.probs)


# ---------------------------------------------------------------------------------------------- results
def compute_results(
    scored: Scored, tuned: TunedThresholds | None, options: EvalOptions, model_tags: list[str]
) -> EvalResults:
    data, labels, probs = scored.data, scored.labels, scored.probs
    at_default = apply_thresholds(probs, [DEFAULT_THRESHOLD] * len(data.tags))
    return EvalResults(
        name=data.name,
        checkpoint=str(options.ckpt_path),
        data=data.source,
        split=data.split,
        rows=len(labels),
        tags=data.tags,
        tags_left_out=[t for t in model_tags if t not in data.tags],
        ranking=ranking_report(labels, probs, data.tags),
        calibration=calibration_report(labels, probs, data.tags, options.calibration_bins),
        default_threshold=DEFAULT_THRESHOLD,
        default=decision_report(labels, at_default, data.tags),
        tuned=TunedScores(tuned, decision_report(labels, tuned.decisions, data.tags)) if tuned else None,
        kaggle=KaggleScore(kaggle_score(labels, probs), len(labels), len(data.tags)) if data.kaggle else None,
        bias=bias_results(scored, options.bias_tag),
    )


def bias_results(scored: Scored, bias_tag: str) -> dict | None:
    """The Jigsaw 2019 bias metrics on `bias_tag`, when the data has identity columns and the tag."""
    data = scored.data
    if not data.identity_columns:
        return None
    if bias_tag not in data.tags:
        log.warning(
            "No bias metrics: the data has identity columns but not the tag %r (--bias-tag).", bias_tag
        )
        return None
    k = data.tags.index(bias_tag)
    identities = {c: data.frame[c].to_numpy() for c in data.identity_columns}
    return {"tag": bias_tag, **bias_report(scored.labels[:, k], scored.probs[:, k], identities)}


def headline_scalars(results: EvalResults) -> dict[str, float]:
    scalars = {"roc_auc_macro": results.ranking.roc_auc_macro, "f1_macro_at_0.5": results.default.macro_f1}
    if results.tuned:
        scalars["f1_macro_tuned"] = results.tuned.report.macro_f1
    if results.kaggle:
        scalars["kaggle_score"] = results.kaggle.score
    if results.bias:
        scalars["bias_final_score"] = results.bias["final_score"]
    for tag, row in results.ranking.per_tag.items():
        scalars[f"roc_auc/{tag}"] = row.roc_auc
    return {name: value for name, value in scalars.items() if value is not None}


# ---------------------------------------------------------------------------------------------- figures
def token_lengths(tokenizer, texts: list[str]) -> np.ndarray:
    ids = tokenizer(texts, truncation=False, verbose=False)["input_ids"]
    return np.array([len(row) for row in ids], dtype=np.int64)


def make_figures(
    scored: Scored,
    results: EvalResults,
    classifier: ToxicityClassifier,
    log_dir: Path | None,
    notes: list[str],
) -> dict[str, Figure]:
    labels, probs, tags = scored.labels, scored.probs, scored.data.tags
    figures = {
        "roc_curves": plots.roc_curves(labels, probs, tags),
        "precision_recall_curves": plots.precision_recall_curves(labels, probs, tags),
        "tag_frequencies": plots.tag_frequencies(labels, tags),
        "clean_vs_toxic": plots.clean_vs_toxic(labels),
        "token_lengths": plots.token_lengths(
            token_lengths(classifier.tokenizer, scored.data.texts), classifier.max_length
        ),
        "reliability_diagram": plots.reliability_diagram(
            labels, probs, tags, results.calibration.ece, results.calibration.bins
        ),
    }
    schedule = read_scalars(log_dir) if log_dir else {}
    if schedule:
        figures["learning_rate"] = plots.learning_rate_schedule(schedule)
    else:
        notes.append(
            "No learning-rate plot: "
            + (f"no 'lr-' scalars in {log_dir}." if log_dir else "no TensorBoard run folder to read it from.")
        )
    return figures


def find_run_folder(recorded: str | None, given: str | None, notes: list[str]) -> Path | None:
    """The training run's TensorBoard folder, read for the learning-rate plot (written only when given)."""
    log_dir = given or recorded
    if log_dir is None:
        notes.append("The checkpoint records no run folder (log_dir); pass --log-dir for the learning rate.")
        return None
    if not Path(log_dir).is_dir():
        notes.append(f"The run folder {log_dir} does not exist here; pass --log-dir for the learning rate.")
        return None
    return Path(log_dir)


# ------------------------------------------------------------------------------------------------- run
def evaluate(options: EvalOptions) -> tuple[EvalResults, Path]:
    """Scores, writes report.md, metrics.json and the plots, and returns (results, output folder)."""
    device = default_device(options.device)
    checkpoint = TrainedCheckpoint.read(options.ckpt_path, map_location=device)
    run, model_tags = checkpoint.data, checkpoint.tags
    data = load_eval_set(options.request, run, model_tags)
    out = Path(options.output or Path("reports") / data.name)
    refuse_to_overwrite(out / "report.md", options.ckpt_path, overwrite=options.overwrite)
    notes: list[str] = []
    run_folder = find_run_folder(checkpoint.log_dir, options.log_dir, notes)
    step = checkpoint.global_step
    classifier = ToxicityClassifier.from_trained(checkpoint, device, options.batch_size)
    del checkpoint  # the model holds the weights now; do not keep a second copy
    scored = score(classifier, data)
    if data.split == "val":
        tuned = tuned_on_validation(scored, options, run.seed, notes)
    else:
        tuned = tuned_from_validation(scored, classifier, options, run, notes)
    results = compute_results(scored, tuned, options, model_tags)
    figures = make_figures(scored, results, classifier, run_folder, notes)
    results.plots, results.notes = list(figures), notes
    if options.explain_errors:
        from toxicity.evaluation.explained_errors import explain_errors

        results.explained_errors = explain_errors(out, classifier, scored, results, options.explain_errors)

    for name, figure in figures.items():
        plots.save_png(figure, out / f"{name}.png")
    # TensorBoard: under the output (tensorboard --logdir reports), and into the run folder only when asked
    for log_dir in [out / "tensorboard"] + ([Path(options.log_dir)] if options.log_dir else []):
        write_to_run(log_dir, f"evaluate/{data.name}", figures, headline_scalars(results), step)
    write_text_atomically(out / "metrics.json", json.dumps(results.to_json(), indent=2) + "\n")
    write_text_atomically(
        out / "report.md", render(results)
    )  # last: its presence means the report is complete
    return results, out
