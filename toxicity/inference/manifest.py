"""The job a folder of shards belongs to: `_manifest.json` names it (the input's and the model's sha256,
columns, the thresholds as numbers, precision, chunk size). A rerun of the same job resumes; a folder
holding another job's shards is refused, naming what changed. The folder's layout is
toxicity.inference.shards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from toxicity.core.files import file_sha256, write_text_atomically
from toxicity.inference.shards import (
    DONE_FOLDER,
    MANIFEST,
    OUTPUT_FORMAT,
    finished_chunks,
    read_json,
)


def thresholds_by_tag(tags: list[str], cutoffs: np.ndarray | None) -> dict[str, float] | None:
    """The cutoffs the decisions use, as {tag: number}; str() gives a float32's shortest exact form (0.3,
    not 0.30000001192092896), so the manifest stays readable and the comparison exact."""
    return None if cutoffs is None else {tag: float(str(value)) for tag, value in zip(tags, cutoffs)}


@dataclass(frozen=True)
class ScoringJob:
    """What `_manifest.json` records: a rerun with the same job resumes; any other job is refused.

    The input and the model are known by their sha256, not by path, size or time: a file replaced by
    another of the same size (or copied with `cp -p`) is a different job; the same file moved is not.
    """

    input: str
    input_sha256: str
    checkpoint: str  # the ONNX model file with --onnx
    checkpoint_sha256: str
    text_column: str
    id_column: str | None
    tags: list[str]
    thresholds: dict[str, float] | None  # the numbers used, per tag ("tuned" resolved)
    chunk_rows: int
    precision: str
    format: int = OUTPUT_FORMAT

    @classmethod
    def describe(
        cls, input_path: Path, model_file: Path, cutoffs: np.ndarray | None, **settings
    ) -> ScoringJob:
        return cls(
            str(input_path.resolve()),
            file_sha256(input_path),
            str(model_file.resolve()),
            file_sha256(model_file),
            thresholds=thresholds_by_tag(settings["tags"], cutoffs),
            **settings,
        )


SETTING_NAMES = {
    "text_column": "--text-column",
    "id_column": "--id-column",
    "tags": "the model's tags",
    "chunk_rows": "--chunk-rows",
    "precision": "the precision (--precision, --onnx, --int8)",
}


def job_changes(stored: dict, job: ScoringJob) -> list[str]:
    """What differs between the job a manifest records and this one, in words."""
    changes = []
    model = "ONNX model" if job.precision.startswith("onnx") else "checkpoint"
    for key, what in (("input", "input"), ("checkpoint", model)):
        then, now = stored.get(f"{key}_sha256"), getattr(job, f"{key}_sha256")
        then_path, now_path = stored.get(key), getattr(job, key)
        if then == now:
            continue
        if then_path == now_path:
            changes.append(
                f"the {what} {now_path} changed since this job began (sha256 {str(then)[:12]}… then, "
                f"{now[:12]}… now)"
            )
        else:
            changes.append(
                f"the {what} is another file ({then_path}, sha256 {str(then)[:12]}… then; {now_path}, "
                f"sha256 {now[:12]}… now)"
            )
    if stored.get("thresholds") != job.thresholds:
        changes.append(
            f"the thresholds changed ({_thresholds_text(stored.get('thresholds'))} then, "
            f"{_thresholds_text(job.thresholds)} now)"
        )
    for key, name in SETTING_NAMES.items():
        if stored.get(key) != getattr(job, key):
            changes.append(f"{name} was {stored.get(key)!r}, now {getattr(job, key)!r}")
    return changes


def _thresholds_text(thresholds: dict[str, float] | None) -> str:
    if not thresholds:
        return "none"
    if len(set(thresholds.values())) == 1:
        return f"{next(iter(thresholds.values()))} for every tag"
    return ", ".join(f"{tag} {value}" for tag, value in thresholds.items())


def open_output_folder(folder: Path, job: ScoringJob) -> set[int]:
    """Checks that `folder` is new, empty or this job's own; writes the manifest; returns the finished
    chunks.

    Every rank calls it before any rank writes a shard (the process group starts after it), so all see the
    same folder; they write the same manifest, atomically.
    """
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; --output names a folder for the Parquet shards.")
    manifest = folder / MANIFEST
    if manifest.is_file():
        stored = read_json(manifest, "scoring manifest", "Choose another --output.")
        if stored.get("format") != OUTPUT_FORMAT:
            raise FileExistsError(
                f"{manifest}: written by another version of toxicity.predict (output format "
                f"{stored.get('format')!r}; this one writes {OUTPUT_FORMAT}), so this version cannot resume "
                "it. Choose another --output."
            )
        changes = job_changes(stored, job)
        if changes:
            raise FileExistsError(
                f"{folder} holds the shards of another scoring job: {'; '.join(changes)}. Choose another "
                "--output, or restore what changed and rerun that job's exact command to finish it."
            )
    else:
        visible = (
            sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
        )
        if visible:
            raise FileExistsError(
                f"{folder} is not empty ({', '.join(visible[:5])}) and has no {MANIFEST}: it is not a "
                "scoring output folder. Choose a new or empty folder for --output."
            )
        # the manifest first: a rank that looks while another writes sees no folder, or a manifest
        write_text_atomically(manifest, json.dumps(asdict(job), indent=2) + "\n")
    (folder / DONE_FOLDER).mkdir(exist_ok=True)
    return set(finished_chunks(folder))
