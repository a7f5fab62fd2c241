"""`python -m toxicity.export` to ONNX and to a Hugging Face folder, and agreement of every way to score."""

import numpy as np
import pandas as pd
import pytest
from transformers import AutoModelForSequenceClassification

from tests.helpers import fit_args, make_comments
from toxicity.core.errors import CheckpointError
from toxicity.core.tags import LABELS
from toxicity.export import main
from toxicity.exporters.checks import ExportError
from toxicity.exporters.huggingface import export_huggingface, pipeline_probabilities
from toxicity.exporters.onnx import INT8_TOLERANCE, export_onnx
from toxicity.inference.onnx import OnnxToxicityClassifier
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.predict import main as predict_main

TEXTS = [
    "you idiot number 3, stop it stop it",
    "thanks for edit number 7 on the article",
    "",
    "a much longer comment that keeps going " * 40,
    "ok",
    "I will find you",
]


@pytest.fixture(scope="module")
def pooler_checkpoint(tmp_path_factory):
    """A tiny checkpoint with pooling='pooler', the one pooling a stock BertForSequenceClassification has."""
    from toxicity.fit import main as fit

    folder = tmp_path_factory.mktemp("pooler_run")
    data = folder / "comments.csv"
    make_comments(n_clean=40, n_toxic=20).to_csv(data, index=False)
    fit(fit_args(folder, data, "--model.pooling", "pooler", "--trainer.max_epochs", "1"))
    return folder / "checkpoints" / "best-checkpoint.ckpt"


@pytest.fixture(scope="module")
def onnx_folder(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    check = export_onnx(tiny_checkpoint, folder, int8=True)
    assert check["fp32_max_abs_diff"] <= 1e-4
    return folder


def test_onnx_matches_torch_and_int8_stays_close(tiny_checkpoint, onnx_folder):
    written = {p.name for p in onnx_folder.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "toxicity.json", "tokenizer.json"} <= written
    torch_probs = ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu").predict_proba(TEXTS)
    assert torch_probs.std(axis=0).max() > 1e-4  # texts score differently: a mix-up would show
    for batch_size in (1, 4):  # unpadded and padded batches of varying sequence length
        onnx = OnnxToxicityClassifier.from_folder(onnx_folder, batch_size=batch_size)
        np.testing.assert_allclose(onnx.predict_proba(TEXTS), torch_probs, atol=1e-4)
    int8 = OnnxToxicityClassifier.from_folder(onnx_folder, int8=True).predict(TEXTS)
    assert list(int8.columns) == list(LABELS)
    # the export's own limit (INT8_TOLERANCE): the tiny model's gap moves with float rounding in training
    # (0.0515 once the loss became a masked sum / count instead of BCE's mean), never near the limit
    np.testing.assert_allclose(int8.to_numpy(), torch_probs, atol=INT8_TOLERANCE)


def test_int8_scores_do_not_depend_on_the_batch(onnx_folder):
    int8 = OnnxToxicityClassifier.from_folder(onnx_folder, int8=True, batch_size=len(TEXTS))
    alone = np.concatenate([int8.predict_proba([text]) for text in TEXTS])
    np.testing.assert_allclose(int8.predict_proba(TEXTS), alone, atol=1e-6)


def test_int8_has_its_own_thresholds_and_the_export_names_the_checkpoint_by_file(
    tiny_checkpoint, onnx_folder
):
    import hashlib
    import json

    metadata = json.loads((onnx_folder / "toxicity.json").read_text())
    assert metadata["checkpoint"] == tiny_checkpoint.resolve().name  # not the exporter's absolute path
    assert metadata["checkpoint_sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert str(tiny_checkpoint.parent) not in json.dumps(metadata)
    assert set(metadata["int8_thresholds"]) == set(LABELS)
    assert metadata["int8_parity"]["int8_batch_vs_alone_max_diff"] <= 1e-6
    int8 = OnnxToxicityClassifier.from_folder(onnx_folder, int8=True)
    assert int8.thresholds == metadata["int8_thresholds"] != metadata["thresholds"]


def test_an_int8_model_beyond_tolerance_is_refused_and_not_kept(tiny_checkpoint, tmp_path, monkeypatch):
    from toxicity.exporters import onnx as onnx_export
    from toxicity.inference import onnx

    monkeypatch.setattr(onnx, "INT8_TEXTS_PER_RUN", 64)  # dynamic scales picked per batch of 64
    monkeypatch.setattr(onnx_export, "INT8_BATCH_TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="batch vs alone max diff .* It was not kept; use model.onnx"):
        export_onnx(tiny_checkpoint, tmp_path, int8=True)
    assert (tmp_path / "model.onnx").is_file() and not (tmp_path / "model.int8.onnx").exists()


def test_onnx_export_refuses_to_overwrite_and_reports_bad_inputs(
    tiny_checkpoint, onnx_folder, tmp_path, capsys
):
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_onnx(tiny_checkpoint, onnx_folder)
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main(["--ckpt", str(tmp_path / "absent.ckpt"), "--format", "onnx", "--output", str(tmp_path / "out")])
    with pytest.raises(CheckpointError, match="no toxicity.json and model.int8.onnx"):
        OnnxToxicityClassifier.from_folder(tmp_path, int8=True)
    main(["--ckpt", str(tiny_checkpoint), "--format", "onnx", "--output", str(tmp_path / "out")])
    assert "fp32 max abs diff vs PyTorch on 6 texts" in capsys.readouterr().out


def test_huggingface_export_loads_as_multi_label_and_the_pipeline_matches(pooler_checkpoint, tmp_path):
    folder = tmp_path / "hf"
    assert export_huggingface(pooler_checkpoint, folder)["max_abs_diff"] <= 1e-5
    model, info = AutoModelForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.label2id == {tag: k for k, tag in enumerate(LABELS)}
    expected = ToxicityClassifier.from_checkpoint(pooler_checkpoint, device="cpu").predict_proba(TEXTS)
    # no function_to_apply: the pipeline picks the sigmoid from problem_type
    np.testing.assert_allclose(pipeline_probabilities(folder, TEXTS, LABELS), expected, atol=1e-5)


def test_huggingface_export_refuses_poolings_it_cannot_represent(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="pooling='mean'.*--format onnx"):
        export_huggingface(tiny_checkpoint, tmp_path / "hf")
    with pytest.raises(SystemExit, match="pooling='mean'"):
        main(["--ckpt", str(tiny_checkpoint), "--format", "hf", "--output", str(tmp_path / "hf")])
    with pytest.raises(SystemExit, match="--int8 applies to --format onnx"):
        main(["--ckpt", str(tiny_checkpoint), "--format", "hf", "--int8", "--output", str(tmp_path / "hf")])


def test_api_cli_pipeline_and_onnx_agree(pooler_checkpoint, tmp_path, monkeypatch):
    source = tmp_path / "comments.csv"
    ids = [f"c{k}" for k in range(len(TEXTS))]
    pd.DataFrame({"id": ids, "comment_text": TEXTS}).to_csv(source, index=False)
    api = ToxicityClassifier.from_checkpoint(pooler_checkpoint, device="cpu").predict(TEXTS).to_numpy()

    predict_main(
        [
            "--ckpt",
            str(pooler_checkpoint),
            "--data",
            str(source),
            "--output",
            str(tmp_path / "s.csv"),
            "--chunk-rows",
            "4",
        ]
    )
    cli = pd.read_csv(tmp_path / "s.csv")
    assert cli["id"].tolist() == ids
    monkeypatch.chdir(tmp_path)  # each format into its own default folder: neither replaces the other's files
    main(["--ckpt", str(pooler_checkpoint), "--format", "hf"])
    main(["--ckpt", str(pooler_checkpoint), "--format", "onnx"])
    hf, onnx_folder = tmp_path / "exported" / "hf", tmp_path / "exported" / "onnx"

    np.testing.assert_allclose(cli[list(LABELS)].to_numpy(), api, atol=1e-6)
    np.testing.assert_allclose(pipeline_probabilities(hf, TEXTS, LABELS), api, atol=1e-5)
    onnx = OnnxToxicityClassifier.from_folder(onnx_folder)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), api, atol=1e-4)
    predict_main(["--onnx", str(onnx_folder), "--data", str(source), "--output", str(tmp_path / "o.jsonl")])
    scored = pd.read_json(tmp_path / "o.jsonl", lines=True)
    assert scored["id"].tolist() == ids
    np.testing.assert_allclose(scored[list(LABELS)].to_numpy(), api, atol=1e-4)


def test_head_tail_truncation_travels_with_the_checkpoint_and_onnx_export(tmp_path):
    from toxicity.fit import main as fit

    data = tmp_path / "comments.csv"
    make_comments().to_csv(data, index=False)
    fit(
        fit_args(
            tmp_path,
            data,
            "--model.pooling",
            "pooler",
            "--data.truncation",
            "head_tail",
            "--trainer.max_epochs",
            "1",
        )
    )
    ckpt = tmp_path / "checkpoints" / "best-checkpoint.ckpt"
    classifier = ToxicityClassifier.from_checkpoint(ckpt, device="cpu")
    assert classifier.truncation == "head_tail"
    export_onnx(ckpt, tmp_path / "onnx")
    onnx = OnnxToxicityClassifier.from_folder(tmp_path / "onnx")
    assert onnx.truncation == "head_tail"
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), classifier.predict_proba(TEXTS), atol=1e-4)
    with pytest.raises(ExportError, match="head_tail"):  # the transformers pipeline only keeps the head
        export_huggingface(ckpt, tmp_path / "hf")
