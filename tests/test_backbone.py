"""The shipped MiniLM is checked against the official SHA-256 before it is used."""

import pytest

from toxicity import backbone
from toxicity.backbone import SHIPPED_SHA256, BackboneError, load_pretrained_encoder, shipped_folder


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
    with pytest.raises(BackboneError, match=f"is not the official all-MiniLM-L6-v2 weights \\({SHIPPED_SHA256}\\)"):
        load_pretrained_encoder("sentence-transformers/all-MiniLM-L6-v2")
    backbone.verify_shipped_weights.cache_clear()
