"""The hybrid tagger (issue 19): the encoder plus a hashed n-gram branch, through every tool an encoder
checkpoint goes through, and its n-gram part refused when tampered with."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import ROOT, fit_args, make_comments
from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.errors import CheckpointError
from toxicity.core.tags import LABELS
from toxicity.data.batching import PadToLongest
from toxicity.data.ngrams import NgramHasher
from toxicity.data.tokenize import tokenize_texts
from toxicity.inference.scorer import ToxicityClassifier

TINY_HYBRID_YAML = ROOT / "tests" / "fixtures" / "tiny_hybrid.yaml"
TEXTS = ["you idiot number 3", "thanks for edit number 5 on the article", "y0u 1d10t", ""]


@pytest.fixture(scope="module")
def hybrid_checkpoint(tmp_path_factory):
    from toxicity.fit import main

    folder = tmp_path_factory.mktemp("tiny_hybrid_run")
    data = folder / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    main(fit_args(folder, data, config=TINY_HYBRID_YAML))
    return folder / "checkpoints" / "best-checkpoint.ckpt"


def edited(hybrid_checkpoint, tmp_path, edit):
    contents = torch.load(hybrid_checkpoint, weights_only=True)
    edit(contents)
    path = tmp_path / "edited.ckpt"
    torch.save(contents, path)
    return path


def test_the_checkpoint_holds_a_hybrid_and_the_ngram_branch_learned(hybrid_checkpoint):
    checkpoint = TrainedCheckpoint.read(hybrid_checkpoint)
    assert checkpoint.family == "hybrid"
    assert (checkpoint.hparams["ngram_buckets"], checkpoint.hparams["char_ngrams"]) == (4096, [2, 5])
    model = checkpoint.build_model()
    assert model.ngrams.weight.abs().max() > 0.01  # warm-started and trained: not the zero table


def test_the_classifier_scores_with_both_branches(hybrid_checkpoint):
    classifier = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu", batch_size=2)
    probs = classifier.predict_proba(TEXTS)

    model = classifier.model
    hasher = NgramHasher(4096)
    ids = tokenize_texts(model.tokenizer, TEXTS, 48)
    batch = PadToLongest(0)([{"input_ids": row, "index": k} for k, row in enumerate(ids)])
    with torch.no_grad():
        meaning, spelling = model.branches(
            batch["input_ids"], batch["attention_mask"], *hasher.batch(TEXTS).values()
        )
    np.testing.assert_allclose(probs, torch.sigmoid(meaning + spelling).numpy(), atol=1e-5)
    assert (spelling[:3].abs() > 0).all() and (spelling[3] == 0).all()  # an empty text: an empty bag
    assert not np.allclose(probs, torch.sigmoid(meaning).numpy(), atol=1e-3)


def test_a_failing_batch_is_scored_again_row_by_row_with_each_rows_ngrams(hybrid_checkpoint, monkeypatch):
    classifier = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu")
    model, expected = classifier.model, classifier.predict_proba(TEXTS)
    ids = tokenize_texts(model.tokenizer, TEXTS, 48)
    batch = PadToLongest(0, features=model.batch_featurizer())(
        [{"input_ids": row, "text": text, "index": k} for k, (row, text) in enumerate(zip(ids, TEXTS))]
    )
    logits_of = model.logits_of

    def fails_with_more_than_one_row(rows):
        if len(rows["input_ids"]) > 1:
            raise RuntimeError("out of memory")
        if "y0u" in model.tokenizer.decode(rows["input_ids"][0]):
            raise RuntimeError("this row alone")
        return logits_of(rows)

    monkeypatch.setattr(model, "logits_of", fails_with_more_than_one_row)
    with torch.no_grad():
        scored = model.predict_step(batch, 0)
    assert list(scored["errors"]) == [2] and "this row alone" in scored["errors"][2]
    probs = scored["probs"].numpy()
    assert np.isnan(probs[2]).all()
    np.testing.assert_allclose(np.delete(probs, 2, axis=0), np.delete(expected, 2, axis=0), atol=1e-5)


def test_batches_without_ngram_features_are_refused_naming_what_builds_them(hybrid_checkpoint):
    model = TrainedCheckpoint.read(hybrid_checkpoint).build_model()
    ids = torch.tensor([[101, 2000, 102]])
    with pytest.raises(ValueError, match=r"batch_featurizer\(\)"):
        model(ids, torch.ones_like(ids))


def test_the_hasher_sent_to_a_dataloader_worker_gives_the_same_features():
    import pickle

    hasher = NgramHasher(4096)
    hasher.batch(TEXTS)  # builds the vectorizers, which are not sent
    copy = pickle.loads(pickle.dumps(hasher))
    assert copy == hasher and "_vectorizers" not in copy.__dict__
    for key, value in hasher.batch(TEXTS).items():
        assert torch.equal(copy.batch(TEXTS)[key], value), key


def test_training_batches_carry_the_ngram_features(hybrid_checkpoint):
    from toxicity.data.datamodule import ToxicCommentsDataModule

    model = TrainedCheckpoint.read(hybrid_checkpoint).build_model()
    datamodule = ToxicCommentsDataModule(**TrainedCheckpoint.read(hybrid_checkpoint).data.datamodule_kwargs())
    datamodule.trainer = type("Trainer", (), {"lightning_module": model, "world_size": 1, "current_epoch": 0})
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    features = batch["features"]
    assert features["ngram_offsets"].shape == (len(batch["labels"]),)
    assert int(features["ngram_ids"].max()) < 4096 and features["ngram_weights"].dtype == torch.float32


def test_predict_and_evaluate_run_on_a_hybrid_checkpoint(hybrid_checkpoint, tmp_path):
    from toxicity.evaluate import main as evaluate
    from toxicity.predict import main as predict

    source = tmp_path / "texts.csv"
    make_comments(n_clean=5, n_toxic=5).to_csv(source, index=False)
    predict(["--ckpt", str(hybrid_checkpoint), "--data", str(source), "--output", str(tmp_path / "s.csv")])
    expected = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu").predict_proba(
        make_comments(n_clean=5, n_toxic=5)["comment_text"].tolist()
    )
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")[list(LABELS)].to_numpy(), expected, atol=1e-6)

    report = tmp_path / "report"
    results = evaluate(
        ["--ckpt", str(hybrid_checkpoint), "--split", "val", "--output", str(report), "--save-thresholds"]
    )
    assert (report / "report.md").is_file()
    assert set(results.tuned.thresholds.thresholds) == set(LABELS)
    classifier = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu")
    assert classifier.predict("you idiot number 3", threshold="tuned").keys() == set(LABELS)


def test_sharded_scoring_matches_the_one_file_scorer(hybrid_checkpoint, tmp_path):
    from toxicity.predict import main as predict

    source = tmp_path / "texts.csv"
    make_comments(n_clean=20, n_toxic=20).to_csv(source, index=False)
    predict(["--ckpt", str(hybrid_checkpoint), "--data", str(source), "--output", str(tmp_path / "one.csv")]
            + ["--id-column", "id"])  # fmt: skip
    merged = tmp_path / "merged.csv"
    predict(["--ckpt", str(hybrid_checkpoint), "--data", str(source), "--output", str(tmp_path / "shards")]
            + ["--id-column", "id", "--chunk-rows", "16", "--merge", str(merged)])  # fmt: skip
    expected, got = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(merged)
    assert got["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(got[list(LABELS)].to_numpy(), expected[list(LABELS)].to_numpy(), atol=1e-5)


def test_export_is_refused_naming_what_works(hybrid_checkpoint, tmp_path):
    from toxicity.exporters.checks import ExportError
    from toxicity.exporters.huggingface import export_huggingface
    from toxicity.exporters.onnx import export_onnx

    for export in (export_onnx, export_huggingface):
        with pytest.raises(ExportError, match="a hybrid checkpoint.*ToxicityClassifier.from_checkpoint"):
            export(hybrid_checkpoint, tmp_path / "export")
    assert not (tmp_path / "export").exists()


# ------------------------------------------------------------------------------ a tampered n-gram part
def test_an_ngram_table_of_another_size_is_refused(hybrid_checkpoint, tmp_path):
    def more_buckets(contents):
        contents["hyper_parameters"]["ngram_buckets"] = 8192

    with pytest.raises(CheckpointError, match=r"refused: its model config makes 'ngrams.weight'"):
        TrainedCheckpoint.read(edited(hybrid_checkpoint, tmp_path, more_buckets)).build_model()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda state: state.update({"ngrams.weight": state["ngrams.weight"][:2048]}),
        lambda state: state.pop("ngrams.weight"),
    ],
    ids=["table cut short", "table removed"],
)
def test_a_tampered_ngram_table_is_refused(hybrid_checkpoint, tmp_path, tamper):
    path = edited(hybrid_checkpoint, tmp_path, lambda contents: tamper(contents["state_dict"]))
    with pytest.raises(CheckpointError, match=r"'ngrams\.weight'"):
        TrainedCheckpoint.read(path).build_model()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("char_ngrams", [0, 99], "char_ngrams must satisfy"),
        ("word_ngrams", "1-2", "word_ngrams must be two whole numbers"),
        ("ngram_buckets", 1 << 30, "ngram_buckets must be from 1 to"),
    ],
)
def test_bad_ngram_settings_are_refused(hybrid_checkpoint, tmp_path, key, value, message):
    def tamper(contents):
        contents["hyper_parameters"][key] = value

    with pytest.raises(CheckpointError, match=f"cannot build its model.*{message}"):
        TrainedCheckpoint.read(edited(hybrid_checkpoint, tmp_path, tamper)).build_model()


def test_a_pickled_vectorizer_in_place_of_the_settings_is_refused_unrun(hybrid_checkpoint, tmp_path):
    from sklearn.feature_extraction.text import HashingVectorizer

    contents = torch.load(hybrid_checkpoint, weights_only=True)
    contents["hyper_parameters"]["ngram_hasher"] = HashingVectorizer()
    path = tmp_path / "pickled.ckpt"
    torch.save(contents, path)
    with pytest.raises(CheckpointError, match="refused: it holds pickled Python objects"):
        TrainedCheckpoint.read(path)


def test_the_settings_are_plain_json(hybrid_checkpoint):
    hparams = TrainedCheckpoint.read(hybrid_checkpoint).hparams
    settings = {key: hparams[key] for key in ("ngram_buckets", "char_ngrams", "word_ngrams")}
    assert json.loads(json.dumps(settings)) == settings


def test_the_serving_worker_scores_with_a_hybrid_checkpoint(hybrid_checkpoint):
    from toxicity.serving.api import ToxicityAPI
    from toxicity.serving.schemas import PredictRequest

    api = ToxicityAPI(str(hybrid_checkpoint), "torch", 1, max_batch_size=8)
    api.classifier = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu")  # as setup() does
    answers = api.predict([PredictRequest(texts=TEXTS[:2]), PredictRequest(texts=TEXTS[2:3])])
    expected = api.classifier.predict_proba(TEXTS[:3])
    scores = [row for answer in answers for row in api.encode_response(answer).probabilities]
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_the_notebook_runs_on_a_hybrid_checkpoint(hybrid_checkpoint, monkeypatch):
    from tests.helpers.notebook import run_notebook

    monkeypatch.setenv("TOXICITY_CHECKPOINT", str(hybrid_checkpoint))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    text = run_notebook()
    assert "hybrid model" in text and "You are a complete idiot" in text
    assert all(tag in text[text.index("validation rows") :] for tag in LABELS)


def test_a_warm_start_fits_the_ngram_branch_before_training(hybrid_checkpoint):
    model = TrainedCheckpoint.read(hybrid_checkpoint).build_model()
    comments = make_comments(n_clean=60, n_toxic=40)
    texts, labels = comments["comment_text"].tolist(), comments[list(LABELS)].to_numpy()
    torch.nn.init.zeros_(model.ngrams.weight)
    bias = model.head.bias.detach().clone()
    model.warm_start(texts, labels)
    spelling = model.ngrams(*NgramHasher(4096).batch(texts).values()).detach()
    toxic = labels[:, 0] == 1
    assert spelling[toxic, 0].min() > spelling[~toxic, 0].max()  # the branch alone separates toxic rows
    assert not torch.equal(model.head.bias, bias)  # the regressions' intercepts moved into the head


def test_scores_under_bf16_autocast_stay_close_to_float32(hybrid_checkpoint):
    """A GPU run trains and scores in bf16-mixed by default: the n-gram branch must run under autocast."""
    model = ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu").model
    ids = tokenize_texts(model.tokenizer, TEXTS, 48)
    batch = PadToLongest(0, features=model.batch_featurizer())(
        [{"input_ids": row, "text": text, "index": k} for k, (row, text) in enumerate(zip(ids, TEXTS))]
    )
    with torch.no_grad():
        full = model.batch_probabilities(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.batch_probabilities(batch)
    np.testing.assert_allclose(mixed.numpy(), full.numpy(), atol=0.02)


def test_a_resumed_run_keeps_its_table_and_is_not_warm_started_again(tmp_path, monkeypatch):
    from toxicity.fit import main
    from toxicity.models.hybrid import HybridTagger

    warm_starts = []
    fit_table = HybridTagger.warm_start

    def counted(self, texts, labels, sources=None):
        warm_starts.append(len(texts))
        fit_table(self, texts, labels, sources)

    monkeypatch.setattr(HybridTagger, "warm_start", counted)
    data = tmp_path / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    main(fit_args(tmp_path, data, "--trainer.max_epochs", "1", config=TINY_HYBRID_YAML))
    assert len(warm_starts) == 1
    last = tmp_path / "logs" / "toxic-comments" / "version_0" / "checkpoints" / "last.ckpt"
    resumed = main(
        fit_args(tmp_path, data, "--trainer.max_epochs", "2", "--ckpt", str(last), config=TINY_HYBRID_YAML)
    )
    assert len(warm_starts) == 1  # the resumed run starts from the saved table and head bias
    assert resumed.trainer.current_epoch == 2


def test_a_class_balanced_warm_start_scores_a_rare_tags_rows_higher(hybrid_checkpoint):
    comments = make_comments(n_clean=60, n_toxic=40)  # severe_toxic: 8 rows of 100
    texts, labels = comments["comment_text"].tolist(), comments[list(LABELS)].to_numpy()
    severe = labels[:, 1] == 1

    def fitted_branch_probability(class_weight):
        model = TrainedCheckpoint.read(hybrid_checkpoint).build_model()
        model.hparams.ngram_class_weight = class_weight
        torch.nn.init.zeros_(model.ngrams.weight)
        bias = model.head.bias.detach().clone()
        model.warm_start(texts, labels)
        logits = model.ngrams(*NgramHasher(4096).batch(texts).values()).detach() + (model.head.bias - bias)
        return torch.sigmoid(logits[severe, 1]).mean().item()

    unweighted, balanced = fitted_branch_probability(None), fitted_branch_probability("balanced")
    assert unweighted < 0.5 < balanced


def test_an_unknown_class_weight_is_refused():
    from toxicity.models.hybrid import HybridTagger

    with pytest.raises(ValueError, match='ngram_class_weight must be "balanced" or null'):
        HybridTagger(ngram_class_weight="inverse", encoder_config={"model_type": "bert", "hidden_size": 32})


# ------------------------------------------------------------------ hashing other than the trained one
@pytest.mark.parametrize(
    ("edit", "setting", "now", "trained"),
    [
        (
            lambda contents: contents["hyper_parameters"].update(char_ngrams=[1, 8]),
            "char_ngrams",
            [1, 8],
            [2, 5],
        ),
        (
            lambda contents: contents["hyper_parameters"].update(word_ngrams=[1, 1]),
            "word_ngrams",
            [1, 1],
            [1, 2],
        ),
        # what a version of toxicity that hashed differently would have written
        (
            lambda contents: contents["ngram_hashing"].update({"char_vectorizer.lowercase": False}),
            "char_vectorizer.lowercase",
            True,
            False,
        ),
    ],
    ids=["char_ngrams", "word_ngrams", "lowercase"],
)
def test_hashing_settings_other_than_the_trained_ones_are_refused_naming_the_setting(
    hybrid_checkpoint, tmp_path, edit, setting, now, trained
):
    path = edited(hybrid_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError) as refused:
        ToxicityClassifier.from_checkpoint(path, device="cpu")
    assert str(refused.value).startswith(
        f"{path}: refused: its n-gram setting {setting} is {now!r} but was {trained!r} when its n-gram table "
        "was trained, so texts would hash into other buckets and every score would change;"
    )


def test_a_hybrid_checkpoint_written_before_the_hashing_fingerprint_still_loads(hybrid_checkpoint, tmp_path):
    assert torch.load(hybrid_checkpoint, weights_only=True)["ngram_hashing"]["char_ngrams"] == [2, 5]
    older = edited(hybrid_checkpoint, tmp_path, lambda contents: contents.pop("ngram_hashing"))
    np.testing.assert_allclose(
        ToxicityClassifier.from_checkpoint(older, device="cpu").predict_proba(TEXTS),
        ToxicityClassifier.from_checkpoint(hybrid_checkpoint, device="cpu").predict_proba(TEXTS),
        atol=1e-6,
    )


def test_resuming_with_other_hashing_settings_is_one_line_and_exit_2(hybrid_checkpoint, tmp_path, capsys):
    from toxicity.fit import main

    last = hybrid_checkpoint.resolve().with_name("last.ckpt")
    data = tmp_path / "comments.csv"
    make_comments(n_clean=60, n_toxic=40).to_csv(data, index=False)
    extra = ["--model.init_args.char_ngrams", "[1, 8]", "--ckpt", str(last)]
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, data, *extra, config=TINY_HYBRID_YAML))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert stopped.value.code == 2 and len(errors) == 1
    assert errors[0].startswith(
        f"error: {last}: refused: its n-gram setting char_ngrams is [1, 8] but was [2, 5]"
    )
