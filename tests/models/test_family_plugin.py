"""A model family defined in the tests alone (issue 27: one hook per family): trained with toxicity.fit,
saved, and scored through ToxicityClassifier, `python -m toxicity.predict` (one process and shards) and the
server
once TOXICITY_FAMILY_MODULES names it; refused in one line while it does not. Its extra input (each
text's length in characters) reaches it through `batch_featurizer` alone: nothing outside models/ knows it.
"""

import os
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import ROOT, fit_args, make_comments
from tests.models.toy_family import CharLengthTagger
from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.errors import CheckpointError
from toxicity.core.tags import LABELS
from toxicity.data.batching import PadToLongest
from toxicity.data.tokenize import tokenize_texts
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.models import families
from toxicity.models.encoder import ToxicCommentTagger
from toxicity.models.families import MODULES_VARIABLE, UnknownFamily, family_class

TOY_YAML = ROOT / "tests" / "fixtures" / "tiny_toy.yaml"
TOY_MODULE = "tests.models.toy_family"
TEXTS = ["you idiot number 3", "thanks for edit number 5 on the article", "y0u 1d10t", "", "ok " * 30]
QUIET = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory) -> Path:
    from toxicity.fit import main

    folder = tmp_path_factory.mktemp("tiny_toy_run")
    data = folder / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    main(fit_args(folder, data, config=TOY_YAML))
    return folder / "checkpoints" / "best-checkpoint.ckpt"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setenv(MODULES_VARIABLE, TOY_MODULE)


def by_hand(model, texts: list[str]) -> np.ndarray:
    """Each text scored alone, its length given straight to forward()."""
    logits = []
    for row, text in zip(tokenize_texts(model.tokenizer, texts, 48), texts):
        ids = torch.tensor([row])
        with torch.no_grad():
            logits.append(model(ids, torch.ones_like(ids), chars=torch.tensor([float(len(text))])))
    return torch.sigmoid(torch.cat(logits)).numpy()


def predict(*args: str, registered: bool = True) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != MODULES_VARIABLE} | QUIET
    if registered:
        env[MODULES_VARIABLE] = TOY_MODULE
    command = [sys.executable, "-m", "toxicity.predict", "--batch-size", "2", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# ------------------------------------------------------------------------------------- scored end to end
def test_the_classifier_scores_the_toy_family_with_its_own_feature(toy_checkpoint, registered):
    classifier = ToxicityClassifier.from_checkpoint(toy_checkpoint, device="cpu", batch_size=2)
    assert TrainedCheckpoint.read(toy_checkpoint).family == "toy_char_length"
    assert isinstance(classifier.model, CharLengthTagger)
    probs = classifier.predict_proba(TEXTS)
    np.testing.assert_allclose(probs, by_hand(classifier.model, TEXTS), atol=1e-5)
    classifier.collate.features = lambda texts: {"chars": torch.zeros(len(texts))}  # the feature matters
    assert not np.allclose(classifier.predict_proba(TEXTS), probs, atol=1e-4)


@pytest.mark.slow
def test_predict_scores_it_in_one_process_and_in_shards(toy_checkpoint, registered, tmp_path):
    source = tmp_path / "comments.csv"
    pd.DataFrame({"id": [f"r{k}" for k in range(len(TEXTS))], "comment_text": TEXTS}).to_csv(
        source, index=False
    )
    expected = ToxicityClassifier.from_checkpoint(toy_checkpoint, device="cpu").predict_proba(TEXTS)

    one = predict("--ckpt", str(toy_checkpoint), "--data", str(source), "--output", str(tmp_path / "s.csv"))
    assert one.returncode == 0, one.stderr[-2000:]
    merged = tmp_path / "merged.parquet"
    shards = ("--output", str(tmp_path / "shards"), "--chunk-rows", "2", "--merge", str(merged))
    sharded = predict("--ckpt", str(toy_checkpoint), "--data", str(source), *shards)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    for scores in (pd.read_csv(tmp_path / "s.csv"), pd.read_parquet(merged)):
        assert scores["id"].tolist() == [f"r{k}" for k in range(len(TEXTS))]
        np.testing.assert_allclose(scores[list(LABELS)].to_numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_the_server_scores_it(toy_checkpoint, registered):
    """The server's workers load it as every tool does: /predict and the Perspective route give the
    classifier's scores."""
    from tests.helpers.server import Server

    expected = ToxicityClassifier.from_checkpoint(toy_checkpoint, device="cpu").predict_proba(TEXTS[:3])
    server = Server("--ckpt", str(toy_checkpoint), env={MODULES_VARIABLE: TOY_MODULE})
    try:
        status, body = server.call("/predict", {"texts": TEXTS[:3]})
        analyzed = server.call(
            "/v1alpha1/comments:analyze",
            {"comment": {"text": TEXTS[0]}, "requestedAttributes": {"TOXICITY": {}}},
        )
    finally:
        server.stop()
    assert status == 200 and analyzed[0] == 200
    served = np.array([list(row.values()) for row in body["probabilities"]])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    toxicity = analyzed[1]["attributeScores"]["TOXICITY"]["summaryScore"]["value"]
    assert toxicity == pytest.approx(expected[0, 0], abs=1e-5)


def test_the_shared_retry_scores_each_row_with_its_own_feature(toy_checkpoint, registered, monkeypatch):
    model = TrainedCheckpoint.read(toy_checkpoint).build_model()
    ids = tokenize_texts(model.tokenizer, TEXTS, 48)
    batch = PadToLongest(0, features=model.batch_featurizer())(
        [{"input_ids": row, "text": text, "index": k} for k, (row, text) in enumerate(zip(ids, TEXTS))]
    )
    forward = model.forward

    def fails_with_more_than_one_row(input_ids, attention_mask, **features):
        if len(input_ids) > 1:
            raise RuntimeError("out of memory")
        return forward(input_ids, attention_mask, **features)

    monkeypatch.setattr(model, "forward", fails_with_more_than_one_row)
    with torch.no_grad():
        scored = model.predict_step(batch, 0)
    assert scored["errors"] == {}
    np.testing.assert_allclose(scored["probs"].numpy(), by_hand(model, TEXTS), atol=1e-5)


# -------------------------------------------------------------------------------------- the registry
def test_an_unregistered_family_is_refused_in_one_line_naming_it_and_how_to_register(
    toy_checkpoint, monkeypatch, tmp_path
):
    monkeypatch.delenv(MODULES_VARIABLE, raising=False)
    with pytest.raises(CheckpointError) as refused:
        ToxicityClassifier.from_checkpoint(toy_checkpoint, device="cpu")
    message = str(refused.value)
    assert "\n" not in message and "'toy_char_length' is not registered" in message
    assert MODULES_VARIABLE in message and "toxicity.families" in message
    source = tmp_path / "comments.csv"
    pd.DataFrame({"comment_text": TEXTS}).to_csv(source, index=False)
    out = tmp_path / "s.csv"
    run = predict(
        "--ckpt", str(toy_checkpoint), "--data", str(source), "--output", str(out), registered=False
    )
    assert run.returncode == 2 and not out.exists()
    assert [line for line in run.stderr.splitlines() if "error:" in line] == [f"error: {message}"]


def test_a_family_registered_through_an_entry_point(monkeypatch):
    monkeypatch.delenv(MODULES_VARIABLE, raising=False)
    with pytest.raises(UnknownFamily):
        family_class("toy_char_length")
    point = EntryPoint(name="toy", value=TOY_MODULE, group="toxicity.families")
    monkeypatch.setattr(families, "entry_points", lambda group: [point] if group == point.group else [])
    assert family_class("toy_char_length") is CharLengthTagger


def plugin(monkeypatch, name: str, **attributes) -> None:
    """A module `name` holding `attributes`, importable and named in TOXICITY_FAMILY_MODULES."""
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(__name__=name, **attributes))
    monkeypatch.setenv(MODULES_VARIABLE, f"{TOY_MODULE}, {name}")


class Clash(ToxicCommentTagger):
    family = "encoder"


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({}, "lists no TOXICITY_FAMILIES"),
        ({"TOXICITY_FAMILIES": [object]}, "is not a TaggerModule subclass"),
        ({"TOXICITY_FAMILIES": [type("Unnamed", (ToxicCommentTagger,), {})]}, "sets no family of its own"),
        ({"TOXICITY_FAMILIES": [Clash]}, "family 'encoder' .* is already ToxicCommentTagger's"),
    ],
    ids=["no list", "not a tagger", "no name", "a name taken"],
)
def test_a_bad_plugin_is_refused_naming_the_variable(monkeypatch, attributes, message):
    plugin(monkeypatch, "bad_families", **attributes)
    with pytest.raises((TypeError, ValueError), match=f"^{MODULES_VARIABLE}: .*{message}"):
        family_class("toy_char_length")
    assert family_class("encoder") is ToxicCommentTagger  # toxicity's own never import plugins


def test_a_plugin_module_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.setenv(MODULES_VARIABLE, "no_such_module_27")
    with pytest.raises(ValueError, match=f"{MODULES_VARIABLE}: cannot import family module 'no_such_"):
        family_class("toy_char_length")


def test_no_ngram_name_outside_the_models_and_their_featurizer():
    """Scorers, collators, the data module and evaluation pass a family's features through unread."""
    package = ROOT / "toxicity"
    allowed = (package / "models", package / "data" / "ngrams.py")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if not any(path == place or place in path.parents for place in allowed)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "ngram" in line.lower().replace("ngram_range", "")  # scikit-learn's argument (TF-IDF baseline)
    ]
    assert found == []
