"""ToxicityClassifier and `python -m toxicity.predict`, on the tiny trained checkpoint (seconds)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import ROOT, make_comments
from toxicity.checkpoint import thresholds_path
from toxicity.core.errors import CheckpointError, DataError
from toxicity.core.tags import LABELS
from toxicity.inference import scorer as scoring
from toxicity.inference.files import score_file
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.predict import main

TEXTS = [
    "you idiot number 3, stop it stop it",
    "thanks for edit number 7 on the article",
    "",
    "a much longer comment that keeps going " * 40,
    "ok",
    "   ",
]
PRED_COLUMNS = [f"{tag}_pred" for tag in LABELS]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint) -> ToxicityClassifier:
    return ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu", batch_size=4)


def one_by_one(classifier: ToxicityClassifier, texts: list[str]) -> np.ndarray:
    """Reference scores: each text alone, no padding, no sorting."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            ids = classifier.tokenizer(
                text, truncation=True, max_length=classifier.max_length, return_tensors="pt"
            )
            rows.append(torch.sigmoid(classifier.model(ids["input_ids"], ids["attention_mask"]))[0].numpy())
    return np.stack(rows)


def scores_file(tmp_path, n_clean=30, n_toxic=12):
    """A comments CSV with ids, plus a row with a missing and one with a blank text."""
    frame = make_comments(n_clean, n_toxic)[["id", "comment_text"]]
    frame = pd.concat([frame, pd.DataFrame({"id": ["missing", "blank"], "comment_text": [None, "  "]})])
    frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)  # ids out of sorted order
    path = tmp_path / "comments.csv"
    frame.to_csv(path, index=False)
    return path, frame


# --------------------------------------------------------------------------------------------------- API
def test_scores_do_not_depend_on_batching_sorting_or_chunking(classifier, monkeypatch):
    expected = one_by_one(classifier, TEXTS)
    assert expected.std(axis=0).max() > 1e-4  # the texts score differently, so a mix-up would show
    np.testing.assert_allclose(classifier.predict_proba(TEXTS), expected, atol=1e-5)
    monkeypatch.setattr(scoring, "CHUNK_SIZE", 4)
    monkeypatch.setattr(classifier, "batch_size", 3)
    np.testing.assert_allclose(classifier.predict_proba(TEXTS), expected, atol=1e-5)


def test_predict_returns_a_frame_for_a_list_and_a_dict_for_one_text(classifier):
    frame = classifier.predict(TEXTS)
    assert list(frame.columns) == list(LABELS) and len(frame) == len(TEXTS)
    assert ((frame >= 0) & (frame <= 1)).all().all()
    single = classifier.predict(TEXTS[0])
    assert list(single) == list(LABELS)
    assert single == pytest.approx(frame.iloc[0].to_dict(), abs=1e-5)
    assert classifier.predict(iter(TEXTS[:2])).shape == (2, len(LABELS))  # any iterable
    assert classifier.predict([]).shape == (0, len(LABELS))


def test_thresholds_number_and_tuned(classifier, tiny_checkpoint, tmp_path):
    probs = classifier.predict_proba(TEXTS)
    decided = classifier.predict(TEXTS, threshold=0.5)
    assert decided.to_numpy().tolist() == (probs >= 0.5).astype(int).tolist()
    with pytest.raises(ValueError, match="No tuned thresholds"):
        classifier.predict(TEXTS, threshold="tuned")
    with pytest.raises(ValueError, match="'tuned'"):
        classifier.predict(TEXTS, threshold="high")

    checkpoint = tmp_path / "best-checkpoint.ckpt"  # a copy, so the shared fixture stays without thresholds
    shutil.copy(tiny_checkpoint, checkpoint)
    tuned = dict(zip(LABELS, np.median(probs, axis=0).tolist()))
    thresholds_path(checkpoint).write_text(json.dumps(tuned))
    loaded = ToxicityClassifier.from_checkpoint(checkpoint, device="cpu")
    expected = (probs >= np.array([tuned[t] for t in LABELS], dtype=np.float32)).astype(int)
    assert loaded.predict(TEXTS, threshold="tuned").to_numpy().tolist() == expected.tolist()


def test_non_strings_raise_type_error_naming_the_position(classifier):
    with pytest.raises(TypeError, match=r"texts\[2\] is NoneType"):
        classifier.predict(["fine", "", None])
    with pytest.raises(TypeError, match=r"texts\[1\] is float"):
        classifier.predict_proba(["fine", float("nan")])


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ToxicityClassifier.from_checkpoint(tmp_path / "missing.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        ToxicityClassifier.from_checkpoint(text)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a toxicity checkpoint"):
        ToxicityClassifier.from_checkpoint(other)


# --------------------------------------------------------------------------------------------------- CLI
def cli(tiny_checkpoint, source, output, *extra) -> list[str]:
    return ["--ckpt", str(tiny_checkpoint), "--data", str(source), "--output", str(output), *extra]


def test_cli_scores_a_file_in_chunks_keeping_ids_in_order(classifier, tiny_checkpoint, tmp_path, capsys):
    source, frame = scores_file(tmp_path)
    output = tmp_path / "scores.csv"
    summary = main(cli(tiny_checkpoint, source, output, "--chunk-rows", "5", "--threshold", "0.5"))

    scores = pd.read_csv(output, dtype={"id": str})
    assert list(scores.columns) == ["id", *LABELS, *PRED_COLUMNS]
    assert scores["id"].tolist() == frame["id"].tolist()
    expected = classifier.predict_proba(frame["comment_text"].fillna("").tolist())
    np.testing.assert_allclose(scores[list(LABELS)].to_numpy(), expected, atol=1e-6)
    assert scores[PRED_COLUMNS].to_numpy().tolist() == (expected >= 0.5).astype(int).tolist()
    assert (summary.rows, summary.blank_texts) == (len(frame), 2)
    printed = capsys.readouterr().out
    assert "comments/s" in printed and "2 missing or blank 'comment_text' scored as empty strings" in printed


def test_the_output_name_says_the_format_and_every_format_holds_the_same_scores(
    tiny_checkpoint, tmp_path, capsys
):
    source, _ = scores_file(tmp_path)
    written = {}
    for name in ("s.csv", "s.tsv", "s.parquet", "s.jsonl"):
        main(cli(tiny_checkpoint, source, tmp_path / name, "--threshold", "0.5", "--chunk-rows", "7"))
        written[name] = tmp_path / name
    csv = pd.read_csv(written["s.csv"], dtype={"id": str})
    others = {
        "s.tsv": pd.read_csv(written["s.tsv"], sep="\t", dtype={"id": str}),
        "s.parquet": pd.read_parquet(written["s.parquet"]),
        "s.jsonl": pd.read_json(written["s.jsonl"], lines=True, dtype={"id": str}),
    }
    for name, table in others.items():
        assert list(table.columns) == list(csv.columns), name
        assert table["id"].astype(str).tolist() == csv["id"].tolist(), name
        np.testing.assert_allclose(
            table[list(LABELS)].to_numpy(float), csv[list(LABELS)].to_numpy(), atol=1e-6
        )
        assert table[PRED_COLUMNS].to_numpy().tolist() == csv[PRED_COLUMNS].to_numpy().tolist(), name
    first = json.loads(written["s.jsonl"].read_text().splitlines()[0])
    assert set(first) == {"id", *LABELS, *PRED_COLUMNS}
    assert not (tmp_path / "s").exists()  # a file name never becomes a folder of shards
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(cli(tiny_checkpoint, source, tmp_path / "scores.json"))
    assert refused.value.code == 2 and not (tmp_path / "scores.json").exists()
    assert "end the name in .csv, .tsv, .parquet, .jsonl for a file" in capsys.readouterr().err


def test_the_progress_bar_knows_the_total(classifier, tmp_path, capsys):
    source, frame = scores_file(tmp_path)
    score_file(classifier, source, tmp_path / "a.csv", progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    size = source.stat().st_size
    assert any("scoring comments.csv: 100%" in line and f"{len(frame)} comments" in line for line in bar), bar
    assert size > 0
    parquet = tmp_path / "comments.parquet"
    frame.to_parquet(parquet)
    score_file(classifier, parquet, tmp_path / "b.parquet", progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(f"{len(frame)}/{len(frame)}" in line for line in bar), bar


@pytest.mark.parametrize("suffix", [".tsv", ".csv.gz", ".parquet"])
def test_tsv_compressed_and_parquet_inputs_score_the_same(classifier, tmp_path, suffix):
    source, frame = scores_file(tmp_path)
    other = tmp_path / f"comments{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(other, row_group_size=7)
    else:
        frame.to_csv(other, sep="\t" if suffix == ".tsv" else ",", index=False)
    score_file(classifier, source, tmp_path / "a.csv", progress=False)
    score_file(classifier, other, tmp_path / "b.tsv", chunk_rows=4, progress=False)
    a = pd.read_csv(tmp_path / "a.csv", dtype={"id": str})
    b = pd.read_csv(tmp_path / "b.tsv", sep="\t", dtype={"id": str})
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(frame)


def test_ids_are_written_as_they_are_in_the_file(classifier, tmp_path):
    source = tmp_path / "comments.csv"
    source.write_text("comment_id,comment_text\n007,hello\n1e3,you idiot\n")
    score_file(classifier, source, tmp_path / "scores.csv", id_column="comment_id", progress=False)
    assert (tmp_path / "scores.csv").read_text().splitlines()[1].startswith("007,")
    assert (tmp_path / "scores.csv").read_text().splitlines()[2].startswith("1e3,")


def test_missing_text_column_names_file_and_column(tiny_checkpoint, tmp_path):
    source, _ = scores_file(tmp_path)
    with pytest.raises(SystemExit, match=r"comments\.csv: no column\(s\) \['text'\]"):
        main(cli(tiny_checkpoint, source, tmp_path / "scores.csv", "--text-column", "text"))
    with pytest.raises(SystemExit, match=r"no column\(s\) \['key'\]"):
        main(cli(tiny_checkpoint, source, tmp_path / "scores.csv", "--id-column", "key"))
    assert not (tmp_path / "scores.csv").exists()


def test_cli_reports_bad_checkpoint_and_missing_tuned_thresholds(tiny_checkpoint, tmp_path):
    source, _ = scores_file(tmp_path)
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main(cli(tmp_path / "nope.ckpt", source, tmp_path / "scores.csv"))
    with pytest.raises(SystemExit, match="No tuned thresholds"):
        main(cli(tiny_checkpoint, source, tmp_path / "scores.csv", "--threshold", "tuned"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comments.csv"]


def test_cli_never_overwrites_its_input_nor_an_output_without_overwrite(tiny_checkpoint, tmp_path):
    source, _ = scores_file(tmp_path)
    before = source.read_bytes()
    for flags in ([], ["--overwrite"]):
        with pytest.raises(SystemExit, match="this is the input file"):
            main(cli(tiny_checkpoint, source, source, *flags))
    assert source.read_bytes() == before

    output = tmp_path / "scores.csv"
    output.write_text("earlier results\n")
    with pytest.raises(SystemExit, match="already exists.*--overwrite"):
        main(cli(tiny_checkpoint, source, output))
    assert output.read_text() == "earlier results\n"
    main(cli(tiny_checkpoint, source, output, "--overwrite"))
    assert output.read_text().startswith("id,toxic,")


def test_a_failure_midway_leaves_no_partial_output(tiny_checkpoint, tmp_path, monkeypatch):
    source, _ = scores_file(tmp_path)
    output = tmp_path / "scores.csv"
    output.write_text("earlier results\n")
    calls = []

    def fail_on_third_chunk(self, texts, progress=None):
        calls.append(len(texts))
        if len(calls) == 3:
            raise RuntimeError("killed")
        return scoring.ScoredTexts(
            np.zeros((len(texts), len(LABELS)), dtype=np.float32), np.array([], int), None
        )

    monkeypatch.setattr(ToxicityClassifier, "score", fail_on_third_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        main(cli(tiny_checkpoint, source, output, "--chunk-rows", "5", "--overwrite"))
    assert len(calls) == 3  # two chunks were written to the temporary file before the failure
    assert output.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comments.csv", "scores.csv"]


@pytest.mark.slow
def test_sigterm_leaves_no_output_and_a_full_run_prints_throughput(tiny_checkpoint, tmp_path):
    big = tmp_path / "big.csv"
    pd.DataFrame(
        {"id": range(200_000), "comment_text": [f"comment number {k}" for k in range(200_000)]}
    ).to_csv(big, index=False)
    output = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "toxicity.predict",
        *cli(tiny_checkpoint, big, output, "--chunk-rows", "500"),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while (
        not list(tmp_path.glob(".scores.csv.*.partial")) and process.poll() is None and time.time() < deadline
    ):
        time.sleep(0.05)
    time.sleep(0.5)  # mid-write
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]

    small, _ = scores_file(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "toxicity.predict", *cli(tiny_checkpoint, small, output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "comments/s" in done.stdout and output.is_file()


def test_library_errors_are_exceptions_not_exits(classifier, tmp_path):
    source, _ = scores_file(tmp_path)
    with pytest.raises(DataError, match="no column"):
        score_file(classifier, source, tmp_path / "scores.csv", text_column="body", progress=False)
    with pytest.raises(DataError, match=r"\.csv, \.tsv, \.parquet, \.jsonl"):
        score_file(classifier, source, tmp_path / "scores.xlsx", progress=False)
    with pytest.raises(DataError, match="file not found"):
        score_file(classifier, tmp_path / "absent.csv", tmp_path / "scores.csv", progress=False)


def test_thresholds_older_than_the_checkpoint_are_ignored(tiny_checkpoint, tmp_path):
    from toxicity.checkpoint import read_thresholds, thresholds_path

    checkpoint = tmp_path / "best-checkpoint.ckpt"
    shutil.copy(tiny_checkpoint, checkpoint)
    thresholds_path(checkpoint).write_text('{"toxic": 0.3}')
    os.utime(checkpoint, (1_000, 1_000))  # thresholds tuned after the checkpoint was written: valid
    assert read_thresholds(checkpoint) == {"toxic": 0.3}
    os.utime(checkpoint, None)  # a later run replaced the checkpoint: the old thresholds no longer apply
    os.utime(thresholds_path(checkpoint), (1_000, 1_000))
    assert read_thresholds(checkpoint) is None
    assert ToxicityClassifier.from_checkpoint(checkpoint).thresholds is None


# ----------------------------------------------------------------------------------------- inputs (issue 8)
def test_a_series_keeps_its_index_so_scores_land_on_their_rows(classifier):
    frame = pd.DataFrame({"text": TEXTS}).sort_values("text", ascending=False).iloc[1:]  # sorted, filtered
    frame[classifier.tags] = classifier.predict(frame["text"])
    for index, row in frame.iterrows():
        alone = classifier.predict(row["text"])
        assert [row[tag] for tag in classifier.tags] == pytest.approx(list(alone.values()), abs=1e-5), index
    assert classifier.predict(frame["text"], threshold=0.5).index.equals(frame.index)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ({"you idiot": 1}, "got a dict"),
        (pd.DataFrame({"text": ["a"]}), "got a DataFrame"),
        (b"you idiot", "got bytes"),
        (["fine", b"raw bytes"], r"texts\[1\] is bytes"),
        (["fine", "", None], r"texts\[2\] is NoneType \(a missing value\)"),
        (["fine", float("nan")], r"texts\[1\] is float \(a missing value\)"),
        (["fine", 3], r"texts\[1\] is int"),
        (
            pd.Series(["a", None], index=[7, 9]),
            r"texts\[1\] \(index 9\) is (NoneType|float) \(a missing value\)",
        ),
    ],
)
def test_anything_but_texts_is_one_clear_error(classifier, texts, message):
    with pytest.raises(TypeError, match=message):
        classifier.predict(texts)


def test_lone_surrogates_are_replaced_and_counted(classifier, caplog):
    with caplog.at_level("WARNING"):
        scores = classifier.predict_proba(["bad \ud800 bytes", "fine"])
    assert "1 text(s) held lone surrogate" in caplog.text
    np.testing.assert_allclose(scores[0], classifier.predict_proba(["bad \ufffd bytes"])[0], atol=1e-6)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -0.1, 1.5, True, [0.5]])
def test_a_threshold_that_is_not_a_probability_is_refused(classifier, threshold):
    with pytest.raises((ValueError, TypeError), match="threshold"):
        classifier.predict(TEXTS, threshold=threshold)


def random_texts(rng, count: int) -> list:
    """Random bytes and random Unicode: emoji, zero-width and direction marks, controls, surrogates, long
    runs."""
    pools = [
        "\U0001f600\U0001f4a9\U0001f921",
        "\u200b\u200c\u200d\ufeff",
        "\u202e\u202d\u061c\u200f",
        "".join(map(chr, range(32))) + "\x7f\x85",
        "\ud800\udbff\udc00",
        "abc ĳ ß ﬁ 漢字 العربية",
        "".join(map(chr, range(0x300, 0x370))),
    ]
    texts = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            texts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
        elif kind == 1:
            texts.append(bytes(rng.randrange(256) for _ in range(30)).decode("utf-8", "surrogateescape"))
        elif kind == 2:
            texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randrange(60))))
        else:
            texts.append("".join(chr(rng.randrange(0x110000)) for _ in range(rng.choice([1, 50, 3000]))))
    return texts


def test_fuzz_finite_scores_or_the_one_clear_error(classifier):
    import random

    texts = random_texts(random.Random(0), 300)
    strings = [text for text in texts if isinstance(text, str)]
    scores = classifier.predict_proba(strings)
    assert scores.shape == (len(strings), len(LABELS))
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    for text in texts:
        if isinstance(text, bytes):
            with pytest.raises(TypeError, match="bytes"):
                classifier.predict(["ok", text])


# -------------------------------------------------------------- one bad text fails only itself (issue 16.6)
LONG_TEXT = "a much longer comment that keeps going " * 40  # max_length tokens; every short text is under 20


def fail_past(monkeypatch, owner, tokens: int = 20) -> None:
    """Makes `owner._probabilities` raise for any batch wider than `tokens`, as a too-long input once did."""
    real = ToxicityClassifier._probabilities

    def probabilities(self, input_ids, attention_mask):
        if input_ids.shape[1] > tokens:
            raise IndexError("index out of range in self")
        return real(self, input_ids, attention_mask)

    monkeypatch.setattr(owner, "_probabilities", probabilities)


def test_a_text_that_fails_gets_nan_and_its_batch_neighbours_their_own_scores(
    classifier, monkeypatch, caplog
):
    short = [f"you idiot number {k}" if k % 2 else f"thanks for edit {k}" for k in range(11)]
    texts = short[:5] + [LONG_TEXT] + short[5:]
    expected = classifier.predict_proba(short)
    fail_past(monkeypatch, ToxicityClassifier)
    with caplog.at_level("WARNING"):
        scores = classifier.predict_proba(texts)  # batch_size 4: the long text is sorted in with 3 short ones
    assert np.isnan(scores[5]).all()
    np.testing.assert_allclose(np.delete(scores, 5, axis=0), expected, atol=1e-5)
    assert "1 of 12 text(s) could not be scored and got NaN scores (the first is texts[5])" in caplog.text
    assert "IndexError: index out of range" in caplog.text
    scored = classifier.score(texts)
    assert scored.failed.tolist() == [5] and scored.first_error.startswith("IndexError")
    assert np.isnan(classifier.predict(LONG_TEXT)["toxic"])


def thirty_rows_one_long(tmp_path):
    """30 comments, row 17 the long one; the table, its CSV and where the scores go."""
    frame = pd.DataFrame(
        {"id": [f"r{k}" for k in range(30)], "comment_text": [f"comment {k}" for k in range(30)]}
    )
    frame.loc[17, "comment_text"] = LONG_TEXT
    source, output = tmp_path / "comments.csv", tmp_path / "scores.csv"
    frame.to_csv(source, index=False)
    return frame, source, output


def unscored_rows_exit_3(ckpt, frame, source, output) -> pd.Series:
    """Scores `source` with the CLI, which must exit 3 with every row written in order; whether each row
    was left unscored (empty cells)."""
    with pytest.raises(SystemExit) as exit_info:
        main(cli(ckpt, source, output, "--chunk-rows", "8", "--threshold", "0.5"))
    assert exit_info.value.code == 3
    scores = pd.read_csv(output)
    assert scores["id"].tolist() == frame["id"].tolist()
    return scores.drop(columns="id").isna().all(axis=1)


def test_cli_writes_every_row_counts_the_unscored_and_exits_3(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    frame, source, output = thirty_rows_one_long(tmp_path)
    fail_past(monkeypatch, ToxicityClassifier)
    unscored = unscored_rows_exit_3(tiny_checkpoint, frame, source, output)
    assert unscored.tolist() == [k == 17 for k in range(30)]  # empty scores and decisions, not a 0 "clean"
    assert "1 rows could not be scored" in capsys.readouterr().out


# ------------------------------------------------------------ a score that is not a number (issue 26.6)
@pytest.mark.parametrize("broken", ["inf on the long row", "NaN everywhere"])
def test_non_finite_scores_count_as_unscored_and_exit_3(
    tiny_checkpoint, tmp_path, monkeypatch, capsys, broken
):
    """A model giving NaN or inf (its weights stay finite: the probability function is patched) writes empty
    cells, counts the rows as unscored and exits 3, never "Scored N comments" with exit 0."""
    frame, source, output = thirty_rows_one_long(tmp_path)
    real = ToxicityClassifier._probabilities

    def probabilities(self, input_ids, attention_mask):
        probs = real(self, input_ids, attention_mask)
        if broken == "NaN everywhere":
            return np.full_like(probs, np.nan)
        probs[attention_mask.sum(dim=1).numpy() > 20] = np.inf
        return probs

    monkeypatch.setattr(ToxicityClassifier, "_probabilities", probabilities)
    unscored = unscored_rows_exit_3(tiny_checkpoint, frame, source, output)
    expected = [True] * 30 if broken == "NaN everywhere" else [k == 17 for k in range(30)]
    assert unscored.tolist() == expected  # empty cells: no "inf" score, no 0 "clean" decision
    assert f"{sum(expected)} rows could not be scored" in capsys.readouterr().out
