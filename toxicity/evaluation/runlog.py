"""The training run's TensorBoard folder: read its learning-rate curves, add evaluation results to it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

LR_PREFIX = "lr-"  # what LearningRateMonitor names its scalars, e.g. lr-AdamW/pg1


def read_scalars(log_dir: str | Path, prefix: str = LR_PREFIX) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps, values)} for every scalar tag starting with `prefix` in the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()  # 0: keep every point
    series = {}
    for tag in sorted(events.Tags()["scalars"]):
        if tag.startswith(prefix):
            points = events.Scalars(tag)
            series[tag] = (np.array([p.step for p in points]), np.array([p.value for p in points]))
    return series


def write_to_run(
    log_dir: str | Path, prefix: str, figures: Mapping[str, Figure], scalars: Mapping[str, float], step: int
) -> None:
    """Adds figures and scalars under `prefix/` to the run, as new event files beside the training ones."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for name, figure in figures.items():
            writer.add_figure(f"{prefix}/{name}", figure, global_step=step, close=False)
        for name, value in scalars.items():
            writer.add_scalar(f"{prefix}/{name}", value, global_step=step)
    log.info(
        "Added %d figures and %d scalars under '%s/' to the TensorBoard run %s",
        len(figures),
        len(scalars),
        prefix,
        log_dir,
    )
