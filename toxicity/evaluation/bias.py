"""Unintended-bias metrics of the Jigsaw 2019 competition, for one tag and a set of identity columns.

For each identity subgroup (rows that mention the identity):
  subgroup AUC — ROC AUC on the subgroup's rows only;
  BPSN AUC     — background positive, subgroup negative: toxic rows outside the subgroup against
                 non-toxic rows inside it (low when the model scores mere mentions as toxic);
  BNSP AUC     — background negative, subgroup positive: the other way round.
Final score = 0.25 × overall AUC + 0.25 × M(subgroup AUCs) + 0.25 × M(BPSN AUCs) + 0.25 × M(BNSP AUCs),
with M the generalized power mean (mean of x^p)^(1/p), p = −5. Labels and identity values are
binarised at ≥ 0.5. An AUC that is undefined (one class among the rows compared) is None and is left
out of the power mean.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from toxicity.evaluation.metrics import roc_auc_or_none

POWER = -5.0
OVERALL_WEIGHT = 0.25
BINARY_CUTOFF = 0.5

IDENTITY_COLUMNS = (  # the identities annotated in Jigsaw Unintended Bias in Toxicity Classification (2019)
    "male",
    "female",
    "transgender",
    "other_gender",
    "heterosexual",
    "homosexual_gay_or_lesbian",
    "bisexual",
    "other_sexual_orientation",
    "christian",
    "jewish",
    "muslim",
    "hindu",
    "buddhist",
    "atheist",
    "other_religion",
    "black",
    "white",
    "asian",
    "latino",
    "other_race_or_ethnicity",
    "physical_disability",
    "intellectual_or_learning_disability",
    "psychiatric_or_mental_illness",
    "other_disability",
)


def binarise(values) -> np.ndarray:
    """≥ 0.5 is True; a missing value (no identity annotation) is False."""
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0) >= BINARY_CUTOFF


def subgroup_auc(label: np.ndarray, score: np.ndarray, in_group: np.ndarray) -> float | None:
    return roc_auc_or_none(label[in_group], score[in_group])


def bpsn_auc(label: np.ndarray, score: np.ndarray, in_group: np.ndarray) -> float | None:
    rows = (in_group & ~label) | (~in_group & label)
    return roc_auc_or_none(label[rows], score[rows])


def bnsp_auc(label: np.ndarray, score: np.ndarray, in_group: np.ndarray) -> float | None:
    rows = (in_group & label) | (~in_group & ~label)
    return roc_auc_or_none(label[rows], score[rows])


def power_mean(values, p: float = POWER) -> float | None:
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return float(np.mean(values**p) ** (1.0 / p)) if len(values) else None


def bias_report(labels, scores, identities: Mapping[str, np.ndarray]) -> dict:
    """Per-identity AUCs, their power means and the Jigsaw 2019 final score, for one tag.

    `labels` and each identity column are binarised at ≥ 0.5; identities with no rows are skipped.
    """
    label, score = binarise(labels), np.asarray(scores, dtype=np.float64)
    per_identity = {}
    for name, values in identities.items():
        in_group = binarise(values)
        if not in_group.any():
            continue
        per_identity[name] = {
            "rows": int(in_group.sum()),
            "positives": int((in_group & label).sum()),
            "subgroup_auc": subgroup_auc(label, score, in_group),
            "bpsn_auc": bpsn_auc(label, score, in_group),
            "bnsp_auc": bnsp_auc(label, score, in_group),
        }
    overall = roc_auc_or_none(label, score)
    means = {
        kind: power_mean(row[kind] for row in per_identity.values())
        for kind in ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    }
    defined = overall is not None and all(m is not None for m in means.values())
    final = (
        OVERALL_WEIGHT * overall + (1 - OVERALL_WEIGHT) * float(np.mean(list(means.values())))
        if defined
        else None
    )
    return {
        "overall_auc": overall,
        "power": POWER,
        "power_means": means,
        "final_score": final,
        "per_identity": per_identity,
    }
