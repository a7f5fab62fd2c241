"""The tokenizer a checkpoint carries: saved as one zip, read back only when it holds tokenizer files and
nothing that runs code."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import zipfile
from pathlib import Path

from toxicity.core.errors import CheckpointError

log = logging.getLogger(__name__)


# The files a tokenizer's save_pretrained writes; nothing else (no code) is taken from a checkpoint.
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "sentencepiece.model",
        "tokenizer.model",
        "spm.model",
        "bpe.codes",
        "chat_template.jinja",
        "chat_template.json",
    }
)


MAX_TOKENIZER_BYTES = (
    50 * 1024 * 1024
)  # uncompressed, all files together (the largest hub tokenizers: ~20 MB)


def tokenizer_to_bytes(tokenizer) -> bytes:
    """The tokenizer's saved files as one zip, so a checkpoint carries its own tokenizer."""
    buffer = io.BytesIO()
    with (
        tempfile.TemporaryDirectory() as folder,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        tokenizer.save_pretrained(folder)
        for file in Path(folder).iterdir():
            if file.name in TOKENIZER_FILES:
                archive.write(file, file.name)
            else:
                log.warning(
                    "Not saving %s with the tokenizer: a checkpoint carries only %s.",
                    file.name,
                    ", ".join(sorted(TOKENIZER_FILES)),
                )
    return buffer.getvalue()


def tokenizer_from_bytes(data: bytes, source: str = "the checkpoint"):
    """The tokenizer a checkpoint carries, checked before anything is written or loaded (`source` names the
    checkpoint in errors): known file names only, bounded sizes, no custom code."""
    from transformers import AutoTokenizer

    files = checked_tokenizer_files(data, source)
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)


def checked_tokenizer_files(data: bytes, source: str) -> dict[str, bytes]:
    """{file name: content} of the tokenizer zip; CheckpointError for anything a tokenizer never holds."""

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(
            f"{source}: refused: its embedded tokenizer {problem}. A toxicity checkpoint "
            "never does; load checkpoints only from people you trust."
        )

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, TypeError, ValueError) as error:
        raise refuse(f"is not a readable zip ({error})") from None
    for entry in entries:
        if entry.filename not in TOKENIZER_FILES:
            raise refuse(
                f"holds {entry.filename!r}, which is not a tokenizer file "
                f"(allowed: {', '.join(sorted(TOKENIZER_FILES))})"
            )
    if len({entry.filename for entry in entries}) != len(entries):
        raise refuse("holds a file name twice")
    if sum(entry.file_size for entry in entries) > MAX_TOKENIZER_BYTES:
        raise refuse(f"unpacks to more than {MAX_TOKENIZER_BYTES // 2**20} MB")
    files = {}
    budget = MAX_TOKENIZER_BYTES
    for entry in entries:
        with archive.open(entry) as member:
            files[entry.filename] = member.read(budget + 1)  # bounded even if a size field lies
        budget -= len(files[entry.filename])
        if budget < 0:
            raise refuse(f"unpacks to more than {MAX_TOKENIZER_BYTES // 2**20} MB")
    if "auto_map" in tokenizer_settings(files, refuse):
        raise refuse("names custom code (auto_map in tokenizer_config.json)")
    return files


def tokenizer_settings(files: dict[str, bytes], refuse) -> dict:
    try:
        settings = json.loads(files.get("tokenizer_config.json", b"{}"))
    except ValueError as error:
        raise refuse(f"has an unreadable tokenizer_config.json ({error})") from None
    if not isinstance(settings, dict):
        raise refuse("has a tokenizer_config.json that is not a JSON object")
    return settings
