"""Finished training runs side by side, from what they logged to TensorBoard (`python -m toxicity.compare`).

For each run (a TensorBoard run folder written by `python -m toxicity.fit`): per-tag F1 of the model's
own decisions (the encoder at probability 0.5, the text-to-text model's generated tags: the reference
notebook's table) and per-tag ROC AUC, both on the validation split as logged by the final validation
of the best checkpoint; and the training-loss curves of all runs on one plot, with the first step at
which each run's smoothed loss fell below 0.1 and 0.06. Writes compare.md and training_loss.png to
--output (default: reports/compare-<run>-<run>...).

Runs validated on different rows (another data path, split, seed or tags in their config.yaml) are refused
unless `allow_mixed`, and then the report says so above the tables.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from toxicity.core.errors import DataError
from toxicity.core.files import refuse_to_overwrite, write_text_atomically
from toxicity.evaluation import plots
from toxicity.evaluation.runlog import read_scalars
from toxicity.models.families import ENCODER, FAMILIES

LOSS_LEVELS = (0.1, 0.06)
# the data options that decide a run's validation rows and tags (the rest shape training only)
VALIDATION_KEYS = (
    "data_path",
    "sources",
    "text_column",
    "label_columns",
    "label_from",
    "binarise_at",
    "separator",
    "val_path",
    "val_fraction",
    "seed",
)


@dataclass
class RunSummary:
    name: str
    folder: Path
    tags: list[str]
    f1: dict[str, float]
    auroc: dict[str, float]
    loss_steps: np.ndarray
    loss: np.ndarray
    smoothed: np.ndarray
    first_below: dict[float, int | None]
    validation: dict  # the VALIDATION_KEYS of its config.yaml ({} when it has none)


def run_config(folder: Path) -> dict:
    config_file = folder / "config.yaml"
    return (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}


def validation_settings(config: dict) -> dict:
    data = config.get("data") or {}
    data = data.get("init_args", data)
    return {key: data[key] for key in VALIDATION_KEYS if data.get(key) is not None}


def differences(runs: Sequence[RunSummary]) -> list[str]:
    """One line per data option on which the runs differ, e.g. `data_path: run 0 a.csv, run 1 b.csv`."""
    keys = dict.fromkeys(key for run in runs for key in run.validation)
    return [
        f"{key}: " + ", ".join(f"run {k} {run.validation.get(key)}" for k, run in enumerate(runs))
        for key in keys
        if len({repr(run.validation.get(key)) for run in runs}) > 1
    ]


def default_output(folders: Sequence[str | Path]) -> Path:
    """reports/compare-<experiment>-<version>-... named after the runs, so a second comparison has its own."""
    names = [f"{Path(folder).parent.name}-{Path(folder).name}".strip("-") for folder in folders]
    return Path("reports") / ("compare-" + "-".join(names))[:200]


def describe(folder: Path) -> str:
    """A short name from the run's config.yaml: family, backbone, pretrained weights or random ones."""
    if not (folder / "config.yaml").is_file():
        return folder.name
    config = run_config(folder)
    model = config.get("model") or {}
    init = model.get("init_args", model)
    class_name = str(model.get("class_path", "")).rsplit(".", 1)[-1]
    family = next((name for name, tagger in FAMILIES.items() if tagger.__name__ == class_name), ENCODER)
    shape = init.get("architecture") or init.get("pooling") or ""
    pretrained = "pretrained" if starts_pretrained(init) else "from scratch"
    backbone = str(init.get("backbone", "")).rsplit("/", 1)[-1]
    return f"{folder.name}: {family} {shape} {backbone}, {pretrained}".replace("  ", " ")


def starts_pretrained(init: dict) -> bool:
    """Whether the model started from pretrained weights, as toxicity.models.encoder /
    toxicity.models.text2text build it.

    `pretrained` alone does not say: the `t5` architecture and a model given by its config (`encoder_config`,
    `model_config`: the tiny test models) always start from random weights, whatever `pretrained` says.
    """
    random_shape = init.get("architecture") == "t5" or init.get("encoder_config") or init.get("model_config")
    return bool(init.get("pretrained", True)) and not random_shape


def check_smoothing(weight: float) -> float:
    """A smoothing weight in [0, 1): at 1 the average never leaves the first point; outside, it diverges."""
    if not 0 <= weight < 1:  # NaN fails too
        raise ValueError(
            f"--smoothing {weight}: give a weight from 0 (no smoothing) up to but not including 1 "
            "(TensorBoard's default is 0.6)."
        )
    return weight


def check_events_files(folder: Path) -> None:
    """Raises when an events file of the run is truncated or damaged.

    TensorBoard's reader stops quietly at a broken record, and the final validation (what the tables show)
    is written last, so a cut-off file would give earlier epochs' metrics as the run's own.
    """
    for path in sorted(folder.glob("events.out.tfevents.*")):
        problem = events_file_problem(path.read_bytes())
        if problem:
            raise DataError(
                f"{path}: this TensorBoard events file is {problem}; the run was cut off while "
                "writing, or the file was copied in part. Copy the run folder again (or move the "
                "damaged file out of it, losing what it holds)."
            )


def events_file_problem(data: bytes) -> str | None:
    """None for whole records to the end (TFRecord framing: length, its CRC, data, data CRC), else what is
    wrong."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            return f"truncated (a partial record header at byte {offset})"
        header = data[offset : offset + 8]
        (length,), (header_crc,) = (
            struct.unpack("<Q", header),
            struct.unpack("<I", data[offset + 8 : offset + 12]),
        )
        if masked_crc32c(header) != header_crc:
            return f"damaged (a bad record header at byte {offset})"
        end = offset + 12 + length + 4
        if end > len(data):
            return (
                f"truncated (the record at byte {offset} needs {end - offset} bytes; "
                f"{len(data) - offset} are left)"
            )
        offset = end
    return None


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    out, average = np.empty(len(values)), 0.0
    for k, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[k] = average / (1 - weight ** (k + 1))
    return out


def first_step_below(steps: np.ndarray, smoothed: np.ndarray, level: float) -> int | None:
    below = np.flatnonzero(smoothed < level)
    return int(steps[below[0]]) if len(below) else None


def summarise(folder: Path, smoothing: float) -> RunSummary:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such run folder; give lightning_logs/<name>/version_N folders.")
    check_events_files(folder)
    scalars = read_scalars(folder, prefix="")
    if "train_loss" not in scalars:
        raise DataError(
            f"{folder}: no train_loss in its TensorBoard events. A run of fewer steps than "
            "--trainer.log_every_n_steps (default 50) logs none: retrain it with a smaller "
            "--trainer.log_every_n_steps; or the folder is not a `toxicity fit` run."
        )
    last = {tag: float(values[-1]) for tag, (_, values) in scalars.items()}
    tags = sorted(
        {tag.removeprefix("val_auroc_") for tag in last if tag.startswith("val_auroc_")} - {"mean"},
        key=lambda tag: list(last).index(f"val_auroc_{tag}"),
    )
    steps, loss = scalars["train_loss"]
    smoothed = smooth(loss, smoothing)
    return RunSummary(
        describe(folder),
        folder,
        tags,
        {tag: last[f"val_f1_{tag}"] for tag in tags if f"val_f1_{tag}" in last},
        {tag: last[f"val_auroc_{tag}"] for tag in tags},
        steps,
        loss,
        smoothed,
        {level: first_step_below(steps, smoothed, level) for level in LOSS_LEVELS},
        validation_settings(run_config(folder)),
    )


def _cell(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def render(runs: Sequence[RunSummary], smoothing: float) -> str:
    tags = list(dict.fromkeys(tag for run in runs for tag in run.tags))
    header = "| tag | " + " | ".join(f"run {k}" for k in range(len(runs))) + " |"
    rule = "|---|" + "---|" * len(runs)
    lines = [
        "# Runs compared",
        "",
        *[f"- run {k}: {run.name} (`{run.folder}`)" for k, run in enumerate(runs)],
        "",
    ]
    mixed = differences(runs)
    if mixed:
        lines += [
            (
                "**Not comparable: these runs were validated on different rows or tags** (compared with "
                "--allow-mixed-data); their figures measure different things:"
            ),
            "",
            *[f"- {line}" for line in mixed],
            "",
        ]
    for title, field in (
        ("F1 of the model's own decisions (validation)", "f1"),
        ("ROC AUC (validation)", "auroc"),
    ):
        lines += [f"## {title}", "", header, rule]
        for tag in [*tags, "mean"]:
            values = []
            for run in runs:
                table = getattr(run, field)
                present = [v for v in table.values() if not math.isnan(v)]
                values.append(np.mean(present) if tag == "mean" and present else table.get(tag))
            lines.append(f"| {tag} | " + " | ".join(_cell(v) for v in values) + " |")
        lines.append("")
    lines += [
        f"## Training loss (smoothing {smoothing})",
        "",
        "| | " + " | ".join(f"run {k}" for k in range(len(runs))) + " |",
        rule,
    ]
    for level in LOSS_LEVELS:
        steps = [run.first_below[level] for run in runs]
        lines.append(
            f"| first step below {level} | "
            + " | ".join("not reached" if s is None else str(s) for s in steps)
            + " |"
        )
    lines.append("| final smoothed loss | " + " | ".join(f"{run.smoothed[-1]:.4f}" for run in runs) + " |")
    lines += ["", "![training loss](training_loss.png)", ""]
    return "\n".join(lines)


def loss_figure(runs: Sequence[RunSummary]) -> Figure:
    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    for k, run in enumerate(runs):
        (line,) = axes.plot(run.loss_steps, run.smoothed, label=f"run {k}: {run.name.split(': ', 1)[-1]}")
        axes.plot(run.loss_steps, run.loss, color=line.get_color(), alpha=0.2)
    for level in LOSS_LEVELS:
        axes.axhline(level, color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="step", ylabel="train_loss (smoothed; raw faint)", yscale="log", title="Training loss")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def compare(
    folders: Sequence[str | Path],
    output: str | Path | None = None,
    smoothing: float = 0.6,
    overwrite: bool = False,
    allow_mixed: bool = False,
) -> tuple[list[RunSummary], str, Path]:
    """Writes compare.md and training_loss.png to `output` (default: named after the runs); returns the runs,
    the markdown and the folder."""
    check_smoothing(smoothing)
    out = Path(output) if output is not None else default_output(folders)
    refuse_to_overwrite(out / "compare.md", overwrite=overwrite)
    runs = [summarise(Path(folder), smoothing) for folder in folders]
    mixed = differences(runs)
    if mixed and not allow_mixed:
        raise DataError(
            "these runs were validated on different rows or tags, so their figures are not comparable ("
            + "; ".join(mixed)
            + "). Compare runs trained on the same data, or pass --allow-mixed-data to lay them side by "
            "side marked as such."
        )
    plots.save_png(loss_figure(runs), out / "training_loss.png")
    markdown = render(runs, smoothing)
    write_text_atomically(out / "compare.md", markdown)
    return runs, markdown, out
