"""Several differently-labelled sources: presets, label mapping to 1 / 0 / unknown, bad input, the mix."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from torch.utils.data import DistributedSampler

from tests.helpers import SHARED_DATA, make_comments, needs_shared_data
from tests.helpers.sources import TWEETS_LABELS, make_tweets, write_two_sources
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.batching import SourceMixSampler, largest_remainder
from toxicity.data.multisource import PRESETS, SOURCE_COLUMN, load_sources, mix_shares, read_sources
from toxicity.data.splits import balance_clean_rows, split_train_val


def loaded(sources, tags=LABELS, **kwargs):
    return load_sources(read_sources(sources, tags), tags, 0.2, 42, **kwargs)


def test_unlabelled_tags_are_unknown_not_zero(tmp_path):
    mixed = loaded(write_two_sources(tmp_path))
    assert mixed.names == ["wiki", "tweets"]
    everything = pd.concat([mixed.frames["train"], mixed.frames["val"]])
    tweets = everything[everything[SOURCE_COLUMN] == 1].merge(make_tweets(), left_on="text", right_on="tweet")
    assert tweets["insult"].isna().all() and tweets["obscene"].isna().all()  # nobody asked
    assert (tweets["toxic"] == (tweets["class"] < 2)).all()
    assert (tweets["identity_hate"] == (tweets["class"] == 0)).all()
    wiki = everything[everything[SOURCE_COLUMN] == 0]
    assert wiki[list(LABELS)].notna().all().all()  # every Jigsaw-like tag is labelled
    # each source keeps its own validation rows
    assert set(mixed.frames["val"][SOURCE_COLUMN]) == {0, 1}


def test_a_value_outside_both_lists_is_unknown_and_a_row_with_no_known_tag_is_dropped(tmp_path, caplog):
    tweets = make_tweets(30)
    tweets.loc[0, "class"] = 7  # neither positive nor negative for any tag
    tweets.to_csv(tmp_path / "t.csv", index=False)
    source = [{"path": str(tmp_path / "t.csv"), "text_column": "tweet", "labels": TWEETS_LABELS}]
    with caplog.at_level("WARNING"):
        mixed = loaded(source)
    rows = pd.concat([mixed.frames["train"], mixed.frames["val"]])
    assert len(rows) == 29 and "w0" not in set(rows["id"])
    assert "0 row(s) with an empty text and 1 the mapping gives no known tag" in caplog.text


def test_a_sources_file_in_yaml_or_json_reads_paths_relative_to_itself(tmp_path):
    sources = write_two_sources(tmp_path)
    for source in sources:
        source["path"] = source["path"].rsplit("/", 1)[1]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"sources": sources}))
    (tmp_path / "s.json").write_text(json.dumps(sources))
    for file in ("s.yaml", "s.json"):
        read = read_sources(str(tmp_path / file), LABELS)
        assert [s.path for s in read] == [tmp_path / "wiki.csv", tmp_path / "tweets.csv"]
        assert read[1].weight == 2.0


def test_the_five_datasets_get_their_presets_by_folder_name():
    read = read_sources([{"path": f"/anywhere/{name}"} for name in PRESETS], LABELS)
    assert [s.preset for s in read] == list(PRESETS)
    davidson = next(s for s in read if s.preset == "davidson_hate_offensive")
    assert davidson.text_column == "tweet" and davidson.labels["identity_hate"].positive == (0,)
    # a model with fewer tags keeps the preset's tags it has
    (hate,) = read_sources([{"path": "/x/tweeteval_hate"}], ["identity_hate"])
    assert list(hate.labels) == ["identity_hate"] and hate.dropped_tags == ("toxic",)


# ----------------------------------------------------------------------------------------- bad input
def test_a_mapping_onto_a_tag_the_model_lacks_names_the_source_and_the_fix(tmp_path):
    sources = write_two_sources(tmp_path)
    sources[1]["labels"] = {**TWEETS_LABELS, "hate": "class"}
    with pytest.raises(
        DataError,
        match=r"source 'tweets' .*maps onto tag\(s\) \['hate'\], which the model lacks.*"
        r"--data.label_columns",
    ):
        read_sources(sources, LABELS)


def test_a_source_labelling_no_tag_is_refused(tmp_path):
    make_tweets().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError, match="source 't' .* labels none of the model's tags .* Give the source `labels`"
    ):
        loaded([{"path": str(tmp_path / "t.csv"), "text_column": "tweet"}])
    with pytest.raises(DataError, match="source 'x' .* labels no tag"):
        read_sources([{"name": "x", "path": "t.csv", "labels": {}}], LABELS)


def test_overlapping_ids_across_sources_are_refused(tmp_path):
    sources = write_two_sources(tmp_path)
    tweets = make_tweets()
    tweets.loc[3, "id"] = "c5"  # a wiki id
    tweets.to_csv(sources[1]["path"], index=False)
    with pytest.raises(
        DataError, match=r"source 'tweets' .* and source 'wiki' share 1 id\(s\) \(e.g. 'c5'\).*Drop"
    ):
        loaded(sources)


def test_a_source_all_one_class_after_mapping_is_refused(tmp_path):
    sources = write_two_sources(tmp_path)
    sources[1]["labels"] = {"toxic": {"column": "class", "positive": [0, 1, 2]}}
    with pytest.raises(
        DataError, match="source 'tweets' .*every label it gives is 1 after mapping.*check its `labels`"
    ):
        loaded(sources)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"path": "a.csv", "wieght": 2}, r"unknown key\(s\) \['wieght'\]"),
        ({"name": "a"}, "has no `path`"),
        ({"path": "a.csv", "weight": 0}, "weight 0; give a number above 0"),
        ({"path": "a.csv", "preset": "nope"}, "no preset 'nope'"),
        ({"path": "a.csv", "name": "a b"}, "source name 'a b'"),
    ],
)
def test_bad_source_entries_are_named(item, message):
    with pytest.raises(DataError, match=message):
        read_sources([item], LABELS)


def test_two_sources_with_one_name_are_refused():
    with pytest.raises(DataError, match=r"source name\(s\) \['a'\] given twice"):
        read_sources([{"path": "x/a.csv"}, {"path": "y/a.csv"}], LABELS)


# ----------------------------------------------------------------------------------------- splits
def test_split_and_balance_treat_an_unknown_tag_as_no_tag():
    frame = make_comments(n_clean=40, n_toxic=20).rename(columns={"comment_text": "text"})
    frame[list(LABELS)] = frame[list(LABELS)].astype(float)
    frame.loc[frame.index[:30], ["insult", "threat"]] = np.nan
    train, val = split_train_val(frame, LABELS, 0.2, 0)
    assert len(train) + len(val) == len(frame) and val["toxic"].sum() > 0
    balanced = balance_clean_rows(frame, LABELS, 5, 0)
    assert len(balanced) == 20 + 5  # the tagged rows and 5 clean ones; NaN counted as no tag


def test_balancing_works_per_source(tmp_path):
    mixed = loaded(write_two_sources(tmp_path), n_clean_train=3)
    train = mixed.frames["train"]
    for number in (0, 1):
        rows = train[train[SOURCE_COLUMN] == number][list(LABELS)].fillna(0)
        assert (rows.sum(axis=1) == 0).sum() == 3  # 3 clean rows kept in each source


# ----------------------------------------------------------------------------------------- the mix
def test_shares_default_to_the_square_root_of_size_and_proportional_is_exponent_1():
    assert np.allclose(mix_shares([100, 400], [1, 1], 0.5), [1 / 3, 2 / 3])
    assert np.allclose(mix_shares([100, 400], [1, 1], 1.0), [0.2, 0.8])
    assert np.allclose(mix_shares([100, 400], [2, 1], 0.5), [0.5, 0.5])
    assert largest_remainder(np.array([1 / 3, 2 / 3]), 10).tolist() == [3, 7]


def sampler(seed=0, replicas=1, rows=300, grouping=True):
    rng = np.random.default_rng(5)
    sources = np.repeat([0, 1, 2], [50, 400, 10])
    lengths = rng.integers(3, 100, len(sources))
    shares = mix_shares(np.bincount(sources), [1, 1, 1], 0.5)
    return (
        SourceMixSampler(lengths, sources, shares, rows, 8, seed, replicas, grouping),
        sources,
        lengths,
        shares,
    )


def test_the_mix_draws_each_sources_share_and_repeats_a_small_source_evenly():
    mix, sources, _, shares = sampler()
    order = list(mix)
    assert len(order) == len(mix) == 300
    counts = np.bincount(sources[order], minlength=3)
    assert counts.tolist() == largest_remainder(shares, 300).tolist()
    small = [i for i in order if sources[i] == 2]  # 10 rows drawn ~3.6 times each: 3 or 4 times
    assert set(np.bincount(small)[np.bincount(small) > 0]) <= {3, 4}
    big = [i for i in order if sources[i] == 1]
    assert len(set(big)) == len(big)  # a big source is not repeated within an epoch


def test_the_mix_is_deterministic_under_the_seed_and_differs_by_epoch():
    first, second, other = sampler()[0], sampler()[0], sampler(seed=1)[0]
    epoch0 = list(first)
    assert epoch0 == list(second) and epoch0 != list(other)
    assert list(first) != epoch0  # the next epoch draws anew
    first.set_epoch(0)
    assert list(first) == epoch0


def test_the_mix_stays_length_grouped():
    grouped, _, lengths, _ = sampler()
    plain = sampler(grouping=False)[0]

    def padding(order):
        batches = [lengths[order[i : i + 8]] for i in range(0, len(order), 8)]
        return sum(int(b.max() * len(b) - b.sum()) for b in batches)

    assert padding(list(grouped)) < padding(list(plain)) / 3


def test_under_ddp_each_rank_gets_its_own_equal_half_of_one_order():
    mix = sampler(replicas=2, rows=301)[0]
    halves = []
    for rank in (0, 1):
        mix.set_epoch(0)
        order = list(mix)
        dealt = DistributedSampler(order, num_replicas=2, rank=rank, shuffle=False)  # as Lightning wraps it
        halves.append([order[i] for i in dealt])
    assert len(halves[0]) == len(halves[1]) == 151
    assert sorted(halves[0][:150] + halves[1][:150]) == sorted(order[:300])


# ----------------------------------------------------------------------------------------- real data
@needs_shared_data("davidson_hate_offensive")
@needs_shared_data("tweeteval_hate")
@needs_shared_data("ethos")
def test_the_presets_read_the_shared_datasets():
    names = ["davidson_hate_offensive", "tweeteval_hate", "ethos"]
    mixed = loaded([{"path": str(SHARED_DATA / name)} for name in names])
    train = mixed.frames["train"]
    davidson = train[train[SOURCE_COLUMN] == 0]
    assert davidson["toxic"].notna().all() and davidson["identity_hate"].notna().all()
    assert davidson.loc[davidson["toxic"] == 1, "insult"].isna().all()  # offensive says nothing of insult
    assert (davidson.loc[davidson["toxic"] == 0, list(LABELS)] == 0).all().all()  # "neither": no tag
    hate = train[train[SOURCE_COLUMN] == 1]
    assert hate.loc[hate["identity_hate"] == 0, "toxic"].isna().all()  # not hate is not "not toxic"
    assert set(mixed.frames["test"][SOURCE_COLUMN]) == {1}  # only TweetEval has a test split here
    ethos = (train[SOURCE_COLUMN] == 2).sum() + (mixed.frames["val"][SOURCE_COLUMN] == 2).sum()
    assert ethos == 998  # every ETHOS comment, split 80 / 20 here


def test_an_empty_tag_cell_is_unknown_and_another_value_is_refused(tmp_path):
    frame = make_comments(n_clean=20, n_toxic=10)
    frame["insult"] = frame["insult"].astype(object)
    frame.loc[:4, "insult"] = None  # e.g. a feedback export: nobody suggested insult for these rows
    frame.to_csv(tmp_path / "f.csv", index=False)
    mixed = loaded([{"path": str(tmp_path / "f.csv")}])
    rows = pd.concat([mixed.frames["train"], mixed.frames["val"]]).set_index("id")
    assert rows.loc[[f"c{k}" for k in range(5)], "insult"].isna().all()
    assert rows["toxic"].notna().all()
    frame.loc[6, "insult"] = "yes"
    frame.to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(DataError, match="column 'insult' .* holds 'yes' at data row 7; .* takes 0 or 1"):
        loaded([{"path": str(tmp_path / "f.csv")}])
