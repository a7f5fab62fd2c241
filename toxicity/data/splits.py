"""Train / validation split, checks on the splits, and balancing (train only)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from toxicity.core.errors import DataError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- splitting and balancing
def split_train_val(
    frame: pd.DataFrame, label_columns: Sequence[str], val_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split, stratified on each row's rarest tag, that never puts one text on both sides.

    Rows with the same text form one group; each group is assigned by its rarest tag (or `clean`), and
    every stratum with two or more groups sends at least one to each side, so rare tags reach both.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    labels = frame[list(label_columns)].fillna(0).to_numpy()  # an unknown tag (NaN) stratifies as clean
    group_ids = pd.factorize(frame["text"])[0]
    group_labels = pd.DataFrame(labels).groupby(group_ids).max().to_numpy()
    rarity_order = np.argsort(labels.sum(axis=0), kind="stable")  # rarest tag first
    strata = np.full(len(group_labels), -1)
    for tag in rarity_order[::-1]:  # the rarest tag a group has is written last and wins
        strata[group_labels[:, tag] == 1] = tag
    rng = np.random.default_rng(seed)
    val_groups = []
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        n_val = round(val_fraction * len(members))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val_groups.append(members[:n_val])
    in_val = np.isin(group_ids, np.concatenate(val_groups))
    return frame[~in_val].reset_index(drop=True), frame[in_val].reset_index(drop=True)


def check_split_sizes(
    train: pd.DataFrame, val: pd.DataFrame, frame: pd.DataFrame, source: object, val_fraction: float
) -> None:
    """Raises when a split is empty, which a tiny or all-duplicate table gives (one text stays on one side).

    Without this, the run fails much later in Lightning, with early stopping missing its `val_loss`.
    """
    for name, split, fix in (("validation", val, "a larger"), ("training", train, "a smaller")):
        if split.empty:
            raise DataError(
                f"{source}: the {name} split is empty: the table has {len(frame)} usable row(s) with "
                f"{frame['text'].nunique()} distinct text(s), and rows with the same text stay on one "
                f"side of the split. Give more rows with distinct texts, or {fix} --data.val_fraction "
                f"(now {val_fraction})."
            )


def warn_overlapping_texts(
    train: pd.DataFrame, others: dict[str, pd.DataFrame | None], source: object
) -> None:
    """Warns when texts of a given validation or test table are also training texts.

    A warning, not a refusal: the official TweetEval files overlap a little (hate: 3 of 1,000 val and 233
    of 2,970 test texts are training texts), and reposted comments are common. The count says whether
    the scores on that split measure memory more than generalisation.
    """
    seen = set(train["text"])
    for name, frame in others.items():
        if frame is None:
            continue
        shared = frame["text"].isin(seen)
        if shared.any():
            log.warning(
                "%s: %d of %d %s rows (%.0f%%) have a text that is also in the training rows, so %s scores "
                "are optimistic; give a %s table without the training texts.",
                source,
                int(shared.sum()),
                len(frame),
                name,
                100 * shared.mean(),
                name,
                name,
            )


def warn_one_class_tags(
    splits: dict[str, pd.DataFrame], label_columns: Sequence[str], source: object
) -> None:
    """Warns for each tag with no positive (or no negative) row in a split: it cannot be learned or scored
    there."""
    for name, frame in splits.items():
        for tag in label_columns:
            positives = int(frame[tag].sum())
            if positives in (0, len(frame)):
                log.warning(
                    "%s: tag '%s' has %s in the %s split (%d rows); it cannot be %s there (AUROC n/a). "
                    "Check label_columns, label_from and binarise_at, or give more rows.",
                    source,
                    tag,
                    "no positive row" if positives == 0 else "no negative row",
                    name,
                    len(frame),
                    "learned" if name == "training" else "scored",
                )


def balance_clean_rows(
    frame: pd.DataFrame, label_columns: Sequence[str], n_clean: int, seed: int
) -> pd.DataFrame:
    """Keeps every row with a tag plus a seeded sample of `n_clean` rows with none (the reference recipe)."""
    is_toxic = frame[list(label_columns)].fillna(0).to_numpy().any(axis=1)  # unknown (NaN) is not a tag
    clean = frame[~is_toxic]
    sample = clean.sample(n=min(n_clean, len(clean)), random_state=seed)
    log.info(
        "Balanced training rows: %d tagged + %d of %d clean.", int(is_toxic.sum()), len(sample), len(clean)
    )
    return pd.concat([frame[is_toxic], sample]).sort_index().reset_index(drop=True)
