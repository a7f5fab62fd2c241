import gzip
import logging
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import SHARED_DATA, make_comments, needs_shared_data
from toxicity.core.backbone import load_tokenizer
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.batching import LengthGroupedSampler, PadToLongest, SortedByLengthSampler
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.data.sources import load_splits
from toxicity.data.splits import balance_clean_rows, split_train_val
from toxicity.data.tables import read_table
from toxicity.data.tokenize import tokenize_texts
from toxicity.data.validation import validate_comments


def kaggle_folder(tmp_path, n_test=8):
    make_comments().to_csv(tmp_path / "train.csv", index=False)
    test = make_comments(n_clean=n_test // 2, n_toxic=n_test // 2)
    test["id"] = [f"x{k}" for k in range(len(test))]
    test[["id", "comment_text"]].to_csv(tmp_path / "test.csv", index=False)
    labels = test[["id", *LABELS]].copy()
    labels.loc[:1, list(LABELS)] = -1  # the first two rows are unscored
    labels.to_csv(tmp_path / "test_labels.csv", index=False)
    return tmp_path


# ----------------------------------------------------------------------------------------- bad input
def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_missing_data_path_or_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        load_splits(tmp_path / "nowhere", "comment_text", LABELS)
    (tmp_path / "comments.jsonl").write_text("{}")
    with pytest.raises(DataError, match=r"comments.jsonl: not a folder.*\.parquet"):
        load_splits(tmp_path / "comments.jsonl", "comment_text", LABELS)


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("comment_text,toxic\n")
    with pytest.raises(DataError, match="header.csv: the file has no rows"):
        read_table(tmp_path / "header.csv")


def test_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"\x00\x01 not parquet at all")
    with pytest.raises(DataError, match="broken.parquet: cannot be read as a table"):
        read_table(tmp_path / "broken.parquet")


def test_missing_column_names_file_and_column(comments_csv):
    frame = read_table(comments_csv).drop(columns=["threat"])
    with pytest.raises(DataError, match=r"comments.csv: missing column\(s\) \['threat'\]"):
        validate_comments(frame, comments_csv, "comment_text", LABELS)


def test_tag_outside_0_1_names_column_and_row(comments_csv):
    frame = read_table(comments_csv)
    frame.loc[3, "insult"] = 2
    with pytest.raises(DataError, match="column 'insult' holds 2 at data row 4"):
        validate_comments(frame, comments_csv, "comment_text", LABELS)


def test_tag_strings_count_as_numbers_and_a_bad_one_is_named_by_line_and_id(tmp_path):
    frame = make_comments()
    frame.loc[0, list(LABELS)] = -1  # unscored: dropped before the check, must not shift the row named
    frame.loc[2, "comment_text"] = "a comment\nover two lines"  # the CSV line count is not the row count
    frame["insult"] = frame["insult"].astype(object)
    frame.loc[5, "insult"] = "yes"  # pandas then reads the column as strings: '0', '1', 'yes'
    frame.to_csv(tmp_path / "tags.csv", index=False)
    with pytest.raises(
        DataError, match=r"tags.csv: column 'insult' holds 'yes' at data row 6 \(line 8, id 'c5'\)"
    ):
        validate_comments(
            read_table(tmp_path / "tags.csv"),
            tmp_path / "tags.csv",
            "comment_text",
            LABELS,
            allow_unscored=True,
        )
    frame.loc[5, "insult"] = "1"
    frame.loc[6, "toxic"] = 1.0
    frame[list(LABELS)] = frame[list(LABELS)].astype(str)  # Parquet keeps "0" / "1" / "1.0" as text
    frame.to_parquet(tmp_path / "tags.parquet")
    out = validate_comments(
        read_table(tmp_path / "tags.parquet"), "tags.parquet", "comment_text", LABELS, allow_unscored=True
    )
    assert len(out) == len(frame) - 1 and out.loc[4, "insult"] == 1 and out.loc[5, "toxic"] == 1
    assert out[list(LABELS)].dtypes.eq(np.int64).all()
    frame.loc[7, "threat"] = ""
    frame.to_parquet(tmp_path / "tags.parquet")
    with pytest.raises(DataError, match=r"column 'threat' holds an empty value at data row 8 \(id 'c7'\)"):
        validate_comments(
            read_table(tmp_path / "tags.parquet"),
            tmp_path / "tags.parquet",
            "comment_text",
            LABELS,
            allow_unscored=True,
        )


@pytest.mark.parametrize("text", ["hello there", "hello, there"])  # a ',' in a comment shifts pandas' columns
def test_semicolon_separated_csv_gets_a_hint(tmp_path, text):
    path = tmp_path / "semicolons.csv"
    path.write_text(";".join(["comment_text", *LABELS]) + f"\n{text};0;0;0;0;0;0\nbye;1;0;0;0;0;0\n")
    with pytest.raises(DataError, match=r"semicolons.csv: missing column.*looks semicolon-separated"):
        load_splits(path, "comment_text", LABELS)


def test_semicolon_separated_csv_that_pandas_cannot_parse_gets_the_hint_too(tmp_path):
    path = tmp_path / "semicolons.csv"
    path.write_text("comment_text;toxic\nhi, you;1\nyou, a, b, c;0\n")
    with pytest.raises(DataError, match=r"semicolons.csv: cannot be read.*looks semicolon-separated"):
        read_table(path)


def damage(archive, member, garbage):
    """Overwrites bytes in the middle of `member`'s compressed data with `garbage` (the headers stay
    valid)."""
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo(member)
    data = bytearray(archive.read_bytes())
    name_length, extra_length = (
        int.from_bytes(data[info.header_offset + k : info.header_offset + k + 2], "little") for k in (26, 28)
    )
    start = info.header_offset + 30 + name_length + extra_length
    middle = start + info.compress_size // 2
    data[middle : middle + len(garbage)] = garbage
    archive.write_bytes(bytes(data))


# With this zlib, the first garbage still inflates (zipfile.BadZipFile: bad CRC-32), the second does not
# (zlib.error)
@pytest.mark.parametrize("garbage", [bytes(range(64)), bytes(range(255, 191, -1))])
def test_damaged_zip_member_names_the_archive_and_member(tmp_path, garbage):
    archive = tmp_path / "competition.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.csv", make_comments(n_clean=400, n_toxic=100).to_csv(index=False))
    damage(archive, "train.csv", garbage)
    with pytest.raises(
        DataError, match=r"competition.zip: member 'train.csv' of the archive is damaged.*again"
    ):
        load_splits(archive, "comment_text", LABELS)


def test_minus_one_is_only_allowed_for_unscored_test_rows(comments_csv):
    frame = read_table(comments_csv)
    frame.loc[0, list(LABELS)] = -1
    with pytest.raises(DataError, match="holds -1"):
        validate_comments(frame, comments_csv, "comment_text", LABELS)
    assert (
        len(validate_comments(frame, comments_csv, "comment_text", LABELS, allow_unscored=True))
        == len(frame) - 1
    )


def test_blank_texts_are_dropped_and_counted(comments_csv, caplog):
    frame = read_table(comments_csv)
    frame.loc[0, "comment_text"] = None
    frame.loc[1, "comment_text"] = "   "
    with caplog.at_level(logging.WARNING):
        out = validate_comments(frame, comments_csv, "comment_text", LABELS)
    assert len(out) == len(frame) - 2
    assert "dropped 2 row(s)" in caplog.text


# ------------------------------------------------------------------------------------------ layouts
def test_kaggle_folder_joins_test_labels_and_leaves_out_unscored(tmp_path):
    splits = load_splits(kaggle_folder(tmp_path), "comment_text", LABELS)
    assert len(splits["train"]) == 42
    assert len(splits["test"]) == 6 and "x0" not in set(splits["test"]["id"])
    assert set(np.unique(splits["test"][list(LABELS)])) <= {0, 1}


def test_competition_zip_with_nested_csv_zips(tmp_path):
    folder = kaggle_folder(tmp_path / "raw") if (tmp_path / "raw").mkdir() is None else None
    archive = tmp_path / "jigsaw-toxic-comment-classification-challenge.zip"
    with zipfile.ZipFile(archive, "w") as outer:
        for name in ("train", "test", "test_labels"):
            inner = tmp_path / f"{name}.csv.zip"
            with zipfile.ZipFile(inner, "w") as z:
                z.write(folder / f"{name}.csv", f"{name}.csv")
            outer.write(inner, inner.name)
    splits = load_splits(archive, "comment_text", LABELS)
    assert len(splits["train"]) == 42 and len(splits["test"]) == 6


def test_gzip_tsv_and_parquet_with_custom_columns(tmp_path):
    frame = make_comments().rename(columns={"comment_text": "tweet", "toxic": "offensive"})
    with gzip.open(tmp_path / "c.tsv.gz", "wt") as handle:
        frame.to_csv(handle, sep="\t", index=False)
    frame.to_parquet(tmp_path / "c.parquet")
    for name in ("c.tsv.gz", "c.parquet"):
        train = load_splits(tmp_path / name, "tweet", ["offensive", "insult"])["train"]
        assert list(train.columns) == ["id", "text", "offensive", "insult"] and len(train) == 42


# ------------------------------------------------------------------------------- split and balance
def jigsaw_like(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"text": [f"comment {k}" for k in range(n)]})
    rates = {
        "toxic": 0.1,
        "severe_toxic": 0.01,
        "obscene": 0.05,
        "threat": 0.003,
        "insult": 0.05,
        "identity_hate": 0.01,
    }
    for label, rate in rates.items():
        frame[label] = (rng.random(n) < rate).astype(int)
    frame.loc[::50, "text"] = "the same spam text"  # 40 exact duplicates
    return frame


def test_split_is_seeded_stratified_and_duplicate_safe():
    frame = jigsaw_like()
    train, val = split_train_val(frame, LABELS, 0.1, seed=3)
    assert len(train) + len(val) == len(frame)
    assert not set(train["text"]) & set(val["text"])
    for label in LABELS:  # threat has ~6 positives: both sides still get some
        assert train[label].sum() > 0 and val[label].sum() > 0, label
    assert 0.07 < len(val) / len(frame) < 0.13
    again, _ = split_train_val(frame, LABELS, 0.1, seed=3)
    other, _ = split_train_val(frame, LABELS, 0.1, seed=4)
    assert again.equals(train) and not other.equals(train)


def test_balancing_keeps_every_tagged_row_and_samples_clean_ones():
    frame = jigsaw_like()
    tagged = frame[list(LABELS)].any(axis=1)
    balanced = balance_clean_rows(frame, LABELS, 100, seed=0)
    assert balanced[list(LABELS)].any(axis=1).sum() == tagged.sum()
    assert (~balanced[list(LABELS)].any(axis=1)).sum() == 100
    assert balance_clean_rows(frame, LABELS, 10**6, seed=0).shape == frame.shape


def test_datamodule_balances_train_only_and_tokenizes_once(comments_csv, monkeypatch):
    calls = []
    real = tokenize_texts
    monkeypatch.setattr(
        "toxicity.data.datamodule.tokenize_texts", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    dm = ToxicCommentsDataModule(str(comments_csv), n_clean_train=5, val_fraction=0.25)
    dm.setup("fit")
    dm.setup("validate")
    for _ in range(2):  # two epochs
        list(dm.train_dataloader())
        list(dm.val_dataloader())
    assert len(calls) == 2  # train and val, once each; test only when asked for
    assert (~dm.frames["train"][list(LABELS)].any(axis=1)).sum() == 5
    assert (~dm.frames["val"][list(LABELS)].any(axis=1)).sum() > 5 // 2


@pytest.mark.parametrize(
    ("rows", "val_fraction", "split", "counts"),
    [
        ([("you idiot", 1), ("thanks", 0)], 0.1, "validation", "2 usable row(s) with 2 distinct text(s)"),
        ([("the same spam", 0)] * 5, 0.3, "validation", "5 usable row(s) with 1 distinct text(s)"),
        ([("only one", 0)], 0.9, "training", "1 usable row(s) with 1 distinct text(s)"),
    ],
)
def test_an_empty_split_is_a_clear_error(tmp_path, rows, val_fraction, split, counts):
    frame = make_comments(n_clean=len(rows), n_toxic=0)
    frame["comment_text"] = [text for text, _ in rows]
    frame["toxic"] = [tag for _, tag in rows]
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    dm = ToxicCommentsDataModule(str(tmp_path / "tiny.csv"), val_fraction=val_fraction)
    larger = "a larger" if split == "validation" else "a smaller"
    with pytest.raises(
        DataError,
        match=rf"tiny.csv: the {split} split is empty: the table has {re.escape(counts)}"
        rf".*more rows with distinct texts, or {larger} --data.val_fraction",
    ):
        dm.setup("fit")


# --------------------------------------------------------------------------------------- batching
def test_tokenize_truncates_without_padding():
    tokenizer = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    ids = tokenize_texts(tokenizer, ["short", "a much longer comment " * 50], max_length=16)
    assert len(ids[0]) == 3 and len(ids[1]) == 16


def test_pad_to_longest_pads_per_batch():
    collate = PadToLongest(pad_token_id=0)
    batch = collate(
        [
            {"input_ids": [101, 5, 102], "index": 0, "labels": torch.zeros(6)},
            {"input_ids": [101, 102], "index": 1, "labels": torch.ones(6)},
        ]
    )
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].shape == (2, 6)
    assert PadToLongest(0, pad_to=8)([{"input_ids": [1], "index": 0}])["input_ids"].shape == (1, 8)


def padding(lengths, batches):
    return sum((lengths[b].max() - lengths[b]).sum() for b in batches)


@pytest.mark.parametrize("n_rows", [3200, 3210])  # a multiple of the batch size, and one short batch
def test_length_grouped_batches_hold_similar_lengths_and_cover_every_row(n_rows):
    lengths = np.random.default_rng(0).integers(3, 300, size=n_rows)
    sampler = LengthGroupedSampler(lengths, batch_size=32, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    batches = [np.array(order[i : i + 32]) for i in range(0, n_rows, 32)]
    random_order = np.random.default_rng(2).permutation(n_rows)
    random_batches = [random_order[i : i + 32] for i in range(0, n_rows, 32)]
    assert padding(lengths, batches) < 0.1 * padding(lengths, random_batches)
    assert list(sampler) != order  # a new order each epoch
    assert list(LengthGroupedSampler(lengths, 32, seed=1)) == order  # seeded


def test_length_groups_survive_ddp_sharding():
    lengths = np.random.default_rng(0).integers(3, 300, size=3210)
    order = np.array(list(LengthGroupedSampler(lengths, batch_size=32, seed=1, replicas=2)))
    for rank in range(2):  # what Lightning's DistributedSamplerWrapper gives each rank
        shard = order[rank::2]
        batches = [shard[i : i + 32] for i in range(0, len(shard), 32)]
        random_shard = np.random.default_rng(rank).permutation(shard)
        random_batches = [random_shard[i : i + 32] for i in range(0, len(shard), 32)]
        assert padding(lengths, batches) < 0.1 * padding(lengths, random_batches)


def test_eval_order_is_sorted_by_length():
    lengths = np.array([5, 50, 20, 7])
    assert list(SortedByLengthSampler(lengths)) == [1, 2, 3, 0]


def test_resumed_run_continues_with_its_epochs_batch_order(comments_csv):
    from types import SimpleNamespace

    dm = ToxicCommentsDataModule(str(comments_csv), batch_size=4)
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=1, current_epoch=3)  # as restored from last.ckpt
    resumed = list(dm.train_dataloader().sampler)
    fresh = LengthGroupedSampler(dm.dataset("train").lengths, 4, seed=dm.hparams.seed)
    fresh.set_epoch(3)
    assert resumed == list(fresh)
    fresh.set_epoch(0)
    assert resumed != list(fresh)


# ------------------------------------------------------------------------- public datasets (issue 10)
def write_tweeteval(folder, rows_per_split=12):
    """A TweetEval-style task folder: {split}_text.txt / {split}_labels.txt, one item per line."""
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        texts = [
            f"{split} tweet {k} " + ("you idiot" if k % 3 == 0 else "nice day") for k in range(rows_per_split)
        ]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n")
        (folder / f"{split}_labels.txt").write_text(
            "\n".join(str(int(k % 3 == 0)) for k in range(rows_per_split)) + "\n"
        )
    return folder


def test_a_tweeteval_folder_gives_its_official_splits(tmp_path):
    folder = write_tweeteval(tmp_path / "tweeteval_offensive")
    datamodule = ToxicCommentsDataModule(str(folder), label_columns=["offensive"])
    datamodule.setup("fit")
    assert {split: len(frame) for split, frame in datamodule.frames.items()} == {
        "train": 12,
        "val": 12,
        "test": 12,
    }
    assert (
        datamodule.frames["val"]["text"].str.startswith("val tweet").all()
    )  # the official val file, not a split
    assert datamodule.frames["train"]["offensive"].tolist() == [int(k % 3 == 0) for k in range(12)]
    with pytest.raises(DataError, match="one label per tweet"):
        ToxicCommentsDataModule(str(folder)).setup("fit")  # six Jigsaw tags for a one-label folder


def test_fit_on_a_tweeteval_folder_takes_the_task_as_its_tag(tmp_path):
    from tests.helpers import fit_args
    from toxicity.fit import main

    folder = write_tweeteval(tmp_path / "tweeteval_offensive", rows_per_split=20)
    cli = main(fit_args(tmp_path, folder, "--trainer.max_epochs", "1"))
    assert cli.model.labels == ["offensive"] and cli.datamodule.hparams.label_columns == ["offensive"]
    assert len(cli.datamodule.frames["val"]) == 20


def test_an_explicit_validation_table(tmp_path, comments_csv):
    val = tmp_path / "val.csv"
    make_comments(n_clean=5, n_toxic=5).assign(comment_text=lambda f: "held out " + f.comment_text).to_csv(
        val, index=False
    )
    datamodule = ToxicCommentsDataModule(str(comments_csv), val_path=str(val))
    datamodule.setup("fit")
    assert (
        len(datamodule.frames["val"]) == 10
        and datamodule.frames["val"]["text"].str.startswith("held out").all()
    )
    assert len(datamodule.frames["train"]) == len(make_comments())  # all of the training table


def test_tags_from_a_categorical_column(tmp_path):
    path = tmp_path / "davidson.csv"
    pd.DataFrame({"tweet": [f"tweet {k}" for k in range(9)], "class": [0, 1, 2] * 3}).to_csv(
        path, index=False
    )
    datamodule = ToxicCommentsDataModule(
        str(path),
        text_column="tweet",
        label_columns=["hate", "offensive"],
        label_from="class:0=hate+offensive,1=offensive",
        val_fraction=0.34,
    )
    datamodule.setup("fit")
    rows = pd.concat([datamodule.frames["train"], datamodule.frames["val"]]).sort_values("text")
    expected = {0: (1, 1), 1: (0, 1), 2: (0, 0)}
    for text, hate, offensive in rows[["text", "hate", "offensive"]].itertuples(index=False):
        assert (hate, offensive) == expected[int(text.split()[1]) % 3]
    with pytest.raises(DataError, match=r"not tags: \['insult'\]"):
        ToxicCommentsDataModule(
            str(path), text_column="tweet", label_columns=["hate", "offensive"], label_from="class:0=insult"
        ).setup("fit")
    with pytest.raises(DataError, match="names column 'kind'"):
        ToxicCommentsDataModule(
            str(path), text_column="tweet", label_columns=["hate"], label_from="kind:0=hate"
        ).setup("fit")


def test_fractional_tags_in_a_semicolon_separated_file(tmp_path):
    path = tmp_path / "ethos.csv"
    path.write_text(
        "comment;isHate\n" + "".join(f"comment number {k}, with a comma;{k / 10}\n" for k in range(11))
    )
    datamodule = ToxicCommentsDataModule(
        str(path),
        text_column="comment",
        label_columns=["isHate"],
        separator=";",
        binarise_at=0.5,
        val_fraction=0.3,
    )
    datamodule.setup("fit")
    rows = pd.concat([datamodule.frames["train"], datamodule.frames["val"]])
    assert sorted(rows["isHate"].tolist()) == [0] * 5 + [1] * 6  # 0.5 .. 1.0 are hateful


@needs_shared_data("davidson_hate_offensive")
def test_the_real_public_datasets_read_with_one_setting_each():
    davidson = ToxicCommentsDataModule(
        str(SHARED_DATA / "davidson_hate_offensive" / "labeled_data.csv.gz"),
        text_column="tweet",
        label_columns=["hate", "offensive"],
        label_from="class:0=hate+offensive,1=offensive",
    )
    davidson.setup("fit")
    rows = pd.concat([davidson.frames["train"], davidson.frames["val"]])
    assert len(rows) == 24_783 and rows["hate"].sum() == 1_430 and rows["offensive"].sum() == 1_430 + 19_190
    ethos = ToxicCommentsDataModule(
        str(SHARED_DATA / "ethos" / "Ethos_Dataset_Binary.csv.gz"),
        text_column="comment",
        label_columns=["isHate"],
        separator=";",
        binarise_at=0.5,
    )
    ethos.setup("fit")
    assert pd.concat([ethos.frames["train"], ethos.frames["val"]])["isHate"].sum() == 433
    from toxicity.data.tables import read_tweeteval

    folder = SHARED_DATA / "tweeteval_hate"
    tweets = ToxicCommentsDataModule(str(folder), label_columns=["hate"])
    tweets.setup("fit")
    lines = {split: read_tweeteval(folder, split)[0]["text"] for split in ("train", "val", "test")}
    assert {split: len(texts) for split, texts in lines.items()} == {"train": 9000, "val": 1000, "test": 2970}
    non_blank = {
        split: int(texts.str.strip().ne("").sum()) for split, texts in lines.items()
    }  # blanks: dropped
    assert {split: len(frame) for split, frame in tweets.frames.items()} == non_blank


def test_head_tail_truncation_keeps_the_start_and_the_end_of_a_long_comment():
    tokenizer = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    long_text = "thanks for the edit " + "and some more words " * 100 + "but you are an idiot"
    head, head_tail = (
        tokenize_texts(tokenizer, [long_text, "short one"], 32, truncation)
        for truncation in ("head", "head_tail")
    )
    assert len(head_tail[0]) == len(head[0]) == 32
    kept = tokenizer.decode(head_tail[0], skip_special_tokens=True)
    assert kept.startswith("thanks for the edit") and kept.endswith("but you are an idiot")
    assert "idiot" not in tokenizer.decode(head[0])
    assert head_tail[0][0] == tokenizer.cls_token_id and head_tail[0][-1] == tokenizer.sep_token_id
    assert head_tail[1] == head[1]  # a text within the limit is the same either way
    with pytest.raises(ValueError, match="head_tail"):
        tokenize_texts(tokenizer, ["x"], 32, "tail")


# --------------------------------------------------------------------- tag rules and splits (issue 16)
def class_table(tmp_path, classes, name="classes.csv"):
    path = tmp_path / name
    pd.DataFrame({"tweet": [f"tweet {k}" for k in range(len(classes))], "class": classes}).to_csv(
        path, index=False
    )
    return path


@pytest.mark.parametrize("cut", [1.5, -0.5, 0.0, float("nan")])
def test_a_binarise_cut_outside_0_1_is_refused(tmp_path, cut):
    with pytest.raises(DataError, match=r"--data.binarise_at .*above 0 and at most 1"):
        ToxicCommentsDataModule(str(tmp_path / "any.csv"), label_columns=["isHate"], binarise_at=cut)


def test_label_from_values_compare_as_numbers(tmp_path):
    path = class_table(tmp_path, [0, 1, 2] * 4)
    datamodule = ToxicCommentsDataModule(
        str(path), text_column="tweet", label_columns=["hate"], label_from="class:0.0=hate", val_fraction=0.34
    )
    datamodule.setup("fit")
    rows = pd.concat(datamodule.frames.values())
    assert rows["hate"].sum() == 4  # the integer 0 matched 0.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("class:5=hate", r"value\(s\) \[5\] match no row of column 'class', whose values are \[0, 1, 2\]"),
        ("class:zero=hate", r"\['zero'\] match no row"),
        ("class:0=hate,0=offensive", r"each value once \(repeated: \['0'\]\)"),
        ("class:0=hate,0.0=offensive", "two values are the same number"),
    ],
)
def test_label_from_rules_that_match_no_row_or_repeat_a_value_are_refused(tmp_path, spec, message):
    path = class_table(tmp_path, [0, 1, 2] * 4)
    with pytest.raises(DataError, match=message):
        ToxicCommentsDataModule(
            str(path), text_column="tweet", label_columns=["hate", "offensive"], label_from=spec
        ).setup("fit")


def test_a_blank_label_from_cell_names_its_row(tmp_path):
    path = class_table(tmp_path, [0, 1, None, 2, None, 1])
    with pytest.raises(
        DataError,
        match=re.escape(
            "column 'class' (--data.label_from) is empty at data row 3 (line 4) (2 empty cell(s) in all)"
        ),
    ) as error:
        ToxicCommentsDataModule(
            str(path), text_column="tweet", label_columns=["hate"], label_from="class:0=hate"
        ).setup("fit")
    assert str(path) in str(error.value)


def test_a_tag_without_positives_in_a_split_is_a_warning_naming_tag_and_split(tmp_path, caplog):
    comments = make_comments().assign(threat=0)
    path = tmp_path / "no_threats.csv"
    comments.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="toxicity.data.datamodule"):
        ToxicCommentsDataModule(str(path)).setup("fit")
    for split in ("training", "validation"):
        assert f"tag 'threat' has no positive row in the {split} split" in caplog.text
    assert "'toxic' has no" not in caplog.text


def test_a_tweeteval_folder_missing_its_val_file_is_refused_by_name(tmp_path):
    folder = write_tweeteval(tmp_path / "tweeteval_offensive")
    (folder / "val_text.txt").unlink()
    with pytest.raises(
        DataError, match=r"tweeteval_offensive: this TweetEval folder has no val_text.txt"
    ) as error:
        ToxicCommentsDataModule(str(folder), label_columns=["offensive"]).setup("fit")
    assert "--data.val_path" in str(error.value)
    held_out = tmp_path / "val.csv"  # a validation table of one's own stands in for the missing files
    pd.DataFrame({"comment_text": ["other tweet", "you idiot"], "offensive": [0, 1]}).to_csv(
        held_out, index=False
    )
    datamodule = ToxicCommentsDataModule(str(folder), label_columns=["offensive"], val_path=str(held_out))
    datamodule.setup("fit")
    assert len(datamodule.frames["val"]) == 2


def test_validation_rows_that_repeat_training_texts_are_counted_in_a_warning(tmp_path, comments_csv, caplog):
    val = tmp_path / "val.csv"
    make_comments(n_clean=6, n_toxic=4).to_csv(val, index=False)  # the same texts as the first training rows
    with caplog.at_level(logging.WARNING, logger="toxicity.data.datamodule"):
        ToxicCommentsDataModule(str(comments_csv), val_path=str(val)).setup("fit")
    assert "10 of 10 validation rows (100%) have a text that is also in the training rows" in caplog.text
