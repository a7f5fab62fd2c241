"""The text-to-text family: the tag-string codec, a tiny random T5 through fit, reload, evaluate, compare."""

import itertools
import json
import random

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from toxicity.checkpoint import TrainedCheckpoint
from toxicity.core.backbone import DEFAULT_BACKBONE, load_tokenizer
from toxicity.core.tags import LABELS
from toxicity.data.batching import PadToLongest
from toxicity.data.tokenize import tokenize_texts
from toxicity.evaluate import main as evaluate_main
from toxicity.evaluation.compare import compare
from toxicity.exporters.checks import ExportError
from toxicity.exporters.onnx import export_onnx
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.models.tag_codec import NONE_WORD, TagStringCodec
from toxicity.models.text2text import TagWordPieces, TextToTextTagger

ALL_ROWS = [list(row) for row in itertools.product([0, 1], repeat=len(LABELS))]


@pytest.fixture(scope="module")
def pieces():
    tokenizer = load_tokenizer(DEFAULT_BACKBONE)
    return TagWordPieces(TagStringCodec(LABELS), tokenizer, tokenizer.sep_token_id)


def test_the_codec_round_trips_all_64_tag_combinations():
    codec = TagStringCodec(LABELS)
    strings = {codec.encode(row) for row in ALL_ROWS}
    assert len(strings) == 64
    assert codec.encode([0] * 6) == NONE_WORD and codec.encode([1, 0, 1, 0, 1, 0]) == "toxic obscene insult"
    for row in ALL_ROWS:
        decoded = codec.decode(codec.encode(row))
        assert decoded.row == row and decoded.clean


def test_target_token_ids_read_back_as_the_same_tags(pieces):
    """Through the WordPiece tokenizer, which splits severe_toxic into severe _ toxic."""
    for row in ALL_ROWS:
        ids = pieces.target_ids(row)
        assert ids[-1] == pieces.eos_id
        words, starts = pieces.read(ids)
        assert pieces.codec.decode_words(words).row == row
        assert starts[-1] == len(ids) - 1  # the last place a word can start is the end token


def test_garbage_generations_decode_without_a_crash_and_are_counted(pieces):
    codec = pieces.codec
    decoded = codec.decode("toxic toxic banana not_toxic insult ☃")
    assert (
        decoded.row == [1, 0, 0, 0, 1, 0]
        and decoded.repeated == ["toxic"]
        and decoded.unknown == ["banana", "☃"]
    )
    assert codec.decode("").row == [0] * 6
    rng = random.Random(0)
    vocabulary = len(pieces.tokenizer)
    for _ in range(200):
        ids = [rng.randrange(vocabulary) for _ in range(rng.randrange(40))]
        words, starts = pieces.read(ids)
        result = codec.decode_words(words)
        assert len(result.row) == 6 and set(result.row) <= {0, 1}
        assert starts and all(0 <= s <= len(ids) for s in starts)


def test_tags_that_start_with_the_same_token_are_refused():
    tokenizer = load_tokenizer(DEFAULT_BACKBONE)
    with pytest.raises(ValueError, match="distinct first token"):
        TagWordPieces(TagStringCodec(["hate", "hate_speech"]), tokenizer, tokenizer.sep_token_id)


def test_a_tiny_text2text_model_trains_reloads_offline_and_scores(tiny_text2text_checkpoint, monkeypatch):
    checkpoint = TrainedCheckpoint.read(tiny_text2text_checkpoint)
    assert checkpoint.family == "text2text" and checkpoint.tags == list(LABELS)
    assert checkpoint.hparams["model_config"]["model_type"] == "t5"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    classifier = ToxicityClassifier.from_checkpoint(tiny_text2text_checkpoint, device="cpu", batch_size=3)
    texts = ["you idiot number 3, stop it", "thanks for edit number 7 on the article", "", "ok " * 200]
    probs = classifier.predict_proba(texts)
    assert probs.shape == (4, 6) and np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    one_by_one = np.concatenate([classifier.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-5)  # batching and padding change nothing


def test_its_evaluation_report_thresholds_and_file_scoring(tiny_text2text_checkpoint, tmp_path):
    """The whole report with AUROC for every tag; the thresholds it tunes; toxicity.predict with them."""
    import shutil

    import pandas as pd

    from toxicity.predict import main as predict_main

    checkpoint = tmp_path / "ckpt" / "best.ckpt"  # a private copy: the thresholds are written beside it
    checkpoint.parent.mkdir()
    shutil.copy(tiny_text2text_checkpoint, checkpoint)
    results = evaluate_main(
        ["--ckpt", str(checkpoint), "--output", str(tmp_path / "report"), "--save-thresholds"]
    )
    per_tag = results.ranking.per_tag
    assert list(per_tag) == list(LABELS)
    assert all(row.roc_auc is not None and 0 <= row.roc_auc <= 1 for row in per_tag.values())
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["tags"] == list(LABELS)

    classifier = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")
    assert set(classifier.thresholds) == set(LABELS)  # tuned on validation by the report above
    comments = tmp_path / "comments.csv"
    pd.DataFrame(
        {"id": ["a", "b"], "comment_text": ["you idiot number 3", "thanks for edit number 7"]}
    ).to_csv(comments, index=False)
    predict_main(
        [
            "--ckpt",
            str(checkpoint),
            "--data",
            str(comments),
            "--output",
            str(tmp_path / "scores.csv"),
            "--threshold",
            "tuned",
        ]
    )
    scores = pd.read_csv(tmp_path / "scores.csv")
    expected = classifier.predict(["you idiot number 3", "thanks for edit number 7"], threshold="tuned")
    assert scores[[f"{tag}_pred" for tag in LABELS]].to_numpy().tolist() == expected.to_numpy().tolist()


def test_export_refuses_a_text2text_checkpoint_naming_the_alternative(tiny_text2text_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="text2text checkpoint.*toxicity.predict"):
        export_onnx(tiny_text2text_checkpoint, tmp_path / "onnx")


def test_compare_reports_the_runs_stored_metrics(tiny_text2text_checkpoint, tiny_checkpoint, tmp_path):
    folders = [path.resolve().parent.parent for path in (tiny_checkpoint, tiny_text2text_checkpoint)]
    # the two fixture runs read copies of one table from two paths: compared marked as mixed
    runs, markdown, _ = compare(folders, tmp_path / "compare", allow_mixed=True)
    for run, folder in zip(runs, folders):
        events = EventAccumulator(str(folder)).Reload()
        for tag in LABELS:
            assert run.auroc[tag] == pytest.approx(events.Scalars(f"val_auroc_{tag}")[-1].value)
            assert run.f1[tag] == pytest.approx(events.Scalars(f"val_f1_{tag}")[-1].value)
        loss = [point.value for point in events.Scalars("train_loss")]
        assert run.loss.tolist() == pytest.approx(loss)
    assert "text2text" in runs[1].name and "encoder" in runs[0].name
    assert markdown.count("| identity_hate |") == 2 and "first step below 0.1" in markdown
    assert (tmp_path / "compare" / "training_loss.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(FileExistsError):
        compare(folders, tmp_path / "compare", allow_mixed=True)


def test_smoothing_and_the_first_step_below_a_level():
    from toxicity.evaluation.compare import first_step_below, smooth

    values = np.array([1.0, 0.5, 0.08, 0.05, 0.04])
    assert smooth(values, 0.0).tolist() == values.tolist()
    smoothed = smooth(values, 0.5)
    assert smoothed[0] == pytest.approx(1.0) and (np.diff(smoothed) < 0).all()
    steps = np.array([10, 20, 30, 40, 50])
    assert first_step_below(steps, values, 0.1) == 30 and first_step_below(steps, values, 0.01) is None


# ------------------------------------------------------------------------------ the prefix within max_length
POSITIONS = 64  # a tiny BERT2BERT with 64 positions: what 512 is to the real encoders


@pytest.fixture(scope="module")
def tiny_bert2bert():
    from transformers import BertConfig, EncoderDecoderConfig

    shape = {
        "vocab_size": 30522,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": POSITIONS,
    }
    config = EncoderDecoderConfig.from_encoder_decoder_configs(
        BertConfig(**shape), BertConfig(**shape, is_decoder=True, add_cross_attention=True)
    )

    def build(max_length=POSITIONS, **kwargs):
        return TextToTextTagger(
            model_config=config.to_dict(), max_length=max_length, max_target_length=4, **kwargs
        )

    return build


def test_a_text2text_model_at_its_position_limit_scores_a_very_long_text(tiny_bert2bert):
    classifier = ToxicityClassifier(tiny_bert2bert().eval(), max_length=POSITIONS, batch_size=2)
    probs = classifier.predict_proba(["you idiot " * 3000, "thanks", "a fine edit " * 40])
    assert probs.shape == (3, 6) and np.isfinite(probs).all()


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
def test_the_prefixed_input_is_the_comment_cut_shorter_by_the_prefix(tiny_bert2bert, truncation):
    """With the prefix, an input is exactly what the data module's cut at max_length - prefix would give."""
    model = tiny_bert2bert(truncation=truncation)
    prefix = model.prefix_ids.tolist()
    texts = ["start " + " ".join(f"w{k}" for k in range(300)) + " end", "short one"]
    ids = tokenize_texts(model.tokenizer, texts, POSITIONS, truncation)
    batch = PadToLongest(model.tokenizer.pad_token_id)(
        [{"input_ids": row, "index": k} for k, row in enumerate(ids)]
    )
    prefixed, mask = model.with_prefix(batch["input_ids"], batch["attention_mask"])
    expected = [
        row[:1] + prefix + row[1:]
        for row in tokenize_texts(model.tokenizer, texts, POSITIONS - len(prefix), truncation)
    ]
    assert prefixed.shape[1] == POSITIONS
    assert [row[:length].tolist() for row, length in zip(prefixed, mask.sum(1).tolist())] == expected


def test_a_max_length_beyond_the_encoders_positions_is_refused(tiny_bert2bert):
    with pytest.raises(
        ValueError,
        match=f"max_length {POSITIONS + 1} is more than the {POSITIONS} positions.*"
        f"--data.max_length {POSITIONS} or less",
    ):
        tiny_bert2bert(max_length=POSITIONS + 1)
    with pytest.raises(ValueError, match="leaves no room for the comment"):
        tiny_bert2bert(max_length=4)
