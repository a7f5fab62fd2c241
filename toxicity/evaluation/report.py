"""Evaluation results (toxicity.evaluation.results.EvalResults) as a Markdown report."""

from __future__ import annotations

from toxicity.evaluation.metrics import AVERAGES, DecisionReport
from toxicity.evaluation.results import EvalResults


def fmt(value, digits: int = 4) -> str:
    """A number for a table; an undefined score (None) is "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: EvalResults) -> str:
    parts = [summary(results), ranking_table(results), decision_table(results), averages_table(results)]
    if results.bias:
        parts.append(bias_section(results.bias))
    parts += [plots_section(results), errors_section(results), notes_section(results)]
    return "\n\n".join(part for part in parts if part) + "\n"


def summary(results: EvalResults) -> str:
    ranking = results.ranking
    lines = [
        f"# Evaluation: {results.name}",
        "",
        f"- checkpoint: `{results.checkpoint}`",
        f"- data: {results.data} (split **{results.split}**, {results.rows} rows)",
        f"- tags scored: {', '.join(results.tags)}",
    ]
    if results.tags_left_out:
        lines.append(f"- tags left out (no column in the data): {', '.join(results.tags_left_out)}")
    lines.append(
        f"- mean ROC AUC (macro, over the tags with both classes: {ranking.tags_with_defined_auc}): "
        f"**{fmt(ranking.roc_auc_macro)}**; micro (all row × tag pairs): {fmt(ranking.roc_auc_micro)}"
    )
    if results.kaggle:
        kaggle = results.kaggle
        lines.append(
            f"- Kaggle score (mean column-wise ROC AUC over the {kaggle.tags} tags): **{fmt(kaggle.score)}** "
            f"on {kaggle.scored_rows} scored rows (test_labels rows that are not -1)"
        )
    tuned = results.tuned
    f1_tuned = f"; tuned ({tuned.thresholds.label}): **{fmt(tuned.report.macro_f1)}**" if tuned else ""
    lines.append(f"- macro F1 at 0.5: **{fmt(results.default.macro_f1)}**{f1_tuned}")
    if len(results.tags) == 1:  # one tag: also the two-class figure TweetEval's leaderboard ranks by
        both = f"; tuned: {fmt(both_classes_f1(tuned.report, results.rows))}" if tuned else ""
        lines.append(
            f"- macro F1 of both classes (the tag and its absence; TweetEval's metric) at 0.5: "
            f"{fmt(both_classes_f1(results.default, results.rows))}{both}"
        )
    return "\n".join(lines)


def both_classes_f1(report, rows: int) -> float:
    """The mean of the F1 of the positive and of the negative class of a one-tag report, from its counts."""
    (decisions,) = report.per_tag.values()
    true_pos = decisions.recall * decisions.support
    false_pos = decisions.predicted_positive_rate * rows - true_pos
    false_neg = decisions.support - true_pos
    true_neg = rows - true_pos - false_pos - false_neg
    negative_f1 = (
        2 * true_neg / (2 * true_neg + false_pos + false_neg) if true_neg + false_pos + false_neg else 0.0
    )
    return (decisions.f1 + negative_f1) / 2


def ranking_table(results: EvalResults) -> str:
    ranking, eces = results.ranking.per_tag, results.calibration.ece
    rows = [
        [
            tag,
            fmt(r.positives),
            fmt(r.true_prevalence),
            fmt(r.roc_auc),
            fmt(r.average_precision),
            fmt(eces[tag]),
        ]
        for tag, r in ranking.items()
    ]
    header = [
        "tag",
        "positives (support)",
        "true prevalence",
        "ROC AUC",
        "average precision",
        f"ECE ({results.calibration.bins} bins)",
    ]
    return "## Per tag, threshold-free\n\n" + table(header, rows)


def decision_table(results: EvalResults) -> str:
    default, tuned = results.default, results.tuned
    header = ["tag", "P @0.5", "R @0.5", "F1 @0.5", "predicted-positive rate @0.5"]
    if tuned:
        header += ["tuned threshold", "P tuned", "R tuned", "F1 tuned", "predicted-positive rate tuned"]
    rows = []
    for tag, d in default.per_tag.items():
        row = [tag, fmt(d.precision), fmt(d.recall), fmt(d.f1), fmt(d.predicted_positive_rate)]
        if tuned:
            t = tuned.report.per_tag[tag]
            row += [
                fmt(tuned.thresholds.thresholds[tag]),
                fmt(t.precision),
                fmt(t.recall),
                fmt(t.f1),
                fmt(t.predicted_positive_rate),
            ]
        rows.append(row)
    title = "## Per tag at threshold 0.5" + (
        f" and at tuned thresholds ({tuned.thresholds.label})" if tuned else ""
    )
    intro = f"\n\nTuned thresholds: {tuned.thresholds.description}" if tuned else ""
    return title + intro + "\n\n" + table(header, rows)


def averages_table(results: EvalResults) -> str:
    reports: list[tuple[str, DecisionReport]] = [("@0.5", results.default)]
    if results.tuned:
        reports.append(("tuned", results.tuned.report))
    header = ["average"] + [f"{name} {label}" for label, _ in reports for name in ("P", "R", "F1")]
    rows = []
    for average in AVERAGES:
        row = [average]
        for _, report in reports:
            scores = report.averages[average]
            row += [
                fmt(None if scores is None else getattr(scores, k)) for k in ("precision", "recall", "f1")
            ]
        rows.append(row)
    accuracy_header = ["accuracy"] + [label for label, _ in reports]
    accuracy_rows = [
        ["subset accuracy (all tags right)"] + [fmt(r.subset_accuracy) for _, r in reports],
        ["Hamming accuracy (share of row × tag decisions right)"]
        + [fmt(r.hamming_accuracy) for _, r in reports],
    ]
    return "## Averages\n\n" + table(header, rows) + "\n\n" + table(accuracy_header, accuracy_rows)


def bias_section(bias: dict) -> str:
    rows = [
        [
            name,
            fmt(r["rows"]),
            fmt(r["positives"]),
            fmt(r["subgroup_auc"]),
            fmt(r["bpsn_auc"]),
            fmt(r["bnsp_auc"]),
        ]
        for name, r in bias["per_identity"].items()
    ]
    means = bias["power_means"]
    rows.append(
        [
            f"power mean (p = {bias['power']:g})",
            "",
            "",
            fmt(means["subgroup_auc"]),
            fmt(means["bpsn_auc"]),
            fmt(means["bnsp_auc"]),
        ]
    )
    return (
        f"## Unintended bias (tag `{bias['tag']}`, Jigsaw 2019 metrics)\n\n"
        f"Overall ROC AUC {fmt(bias['overall_auc'])}; final score (0.25 × overall + 0.25 × each power mean): "
        f"**{fmt(bias['final_score'])}**. Labels and identities binarised at >= 0.5.\n\n"
        + table(["identity", "rows", "positives", "subgroup AUC", "BPSN AUC", "BNSP AUC"], rows)
    )


def plots_section(results: EvalResults) -> str:
    return "## Plots\n\n" + "\n".join(f"![{name}]({name}.png)" for name in results.plots)


def errors_section(results: EvalResults) -> str:
    """A link to the page of the most confident errors, with their words highlighted (when written)."""
    if not results.explained_errors:
        return ""
    return (
        "## The most confident errors\n\n"
        f"[{results.explained_errors}]({results.explained_errors}): per tag, the most confident false "
        "positives and false negatives, each comment's words coloured by what they added to the score."
    )


def notes_section(results: EvalResults) -> str:
    notes = [
        (
            "ROC AUC and average precision of a tag with only one class in the rows are undefined: n/a here, "
            "null in metrics.json, and left out of the macro means."
        ),
        (
            "Precision, recall and F1 use scikit-learn with zero_division=0 per tag and for the micro, "
            "macro and weighted averages; the samples average uses zero_division=1, so a clean row "
            "predicted clean counts as right."
        ),
        (
            "true prevalence = share of rows that have the tag; predicted-positive rate = share of rows the "
            "model tags at that threshold."
        ),
        *results.notes,
    ]
    return "## Notes\n\n" + "\n".join(f"- {note}" for note in notes)
