"""The shipped MiniLM is checked against the official SHA-256 before it is used; no backbone runs code."""

import json
import shutil

import pytest

from toxicity.core import backbone
from toxicity.core.backbone import SHIPPED_SHA256, load_pretrained_encoder, load_tokenizer, shipped_folder
from toxicity.core.errors import BackboneError


def test_the_shipped_weights_are_the_official_ones():
    backbone.verify_shipped_weights.cache_clear()
    backbone.verify_shipped_weights(str(shipped_folder()))  # raises on a mismatch


def test_replaced_shipped_weights_are_refused_before_loading(tmp_path, monkeypatch):
    folder = tmp_path / "minilm"
    folder.mkdir()
    for item in shipped_folder().iterdir():  # the real folder, but with other weights
        (folder / item.name).symlink_to(item)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(b"not the published weights")
    monkeypatch.setattr(backbone, "shipped_folder", lambda: folder)
    backbone.verify_shipped_weights.cache_clear()
    with pytest.raises(
        BackboneError, match=f"is not the official all-MiniLM-L6-v2 weights \\({SHIPPED_SHA256}\\)"
    ):
        load_pretrained_encoder("sentence-transformers/all-MiniLM-L6-v2")
    backbone.verify_shipped_weights.cache_clear()


def test_a_backbone_tokenizer_naming_custom_code_never_runs_it(tmp_path, monkeypatch):
    """Even when someone answers "y" to transformers' question: trust_remote_code=False never asks."""
    folder, marker = tmp_path / "tokenizer", tmp_path / "code-ran"
    shutil.copytree(shipped_folder(), folder, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    settings.pop("tokenizer_class", None)  # no built-in class named (nor config.json): transformers would ask
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import BertTokenizerFast as EvilTokenizer\n"
    )
    monkeypatch.setattr("builtins.input", lambda *args: "y")
    try:
        load_tokenizer(str(folder))
    except (BackboneError, ValueError):
        pass  # refusing is fine too; running the file is not
    assert not marker.exists()
