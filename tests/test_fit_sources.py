"""End to end: `python -m toxicity.fit` on several differently-labelled sources (data.sources), tiny
random models on CPU; the bad inputs of issue 29 as one `error:` line and exit 2."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import ROOT, SHARED_DATA, TINY_TEXT2TEXT_YAML, fit_args, make_comments, needs_shared_data
from tests.helpers.sources import TWEETS_LABELS, make_tweets, write_two_sources
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.data.multisource import PRESETS
from toxicity.fit import main

HYBRID_YAML = TINY_TEXT2TEXT_YAML.with_name("tiny_hybrid.yaml")


def sources_args(tmp_path, sources, *extra, config=None):
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(sources))
    base = {"config": config} if config else {}
    return fit_args(tmp_path, tmp_path / "unused.csv", "--data.sources", str(file), *extra, **base)


def scalars(tmp_path) -> set[str]:
    run = tmp_path / "logs" / "toxic-comments" / "version_0"
    names = set()
    for events in run.glob("events.out.tfevents.*"):
        names |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    return names


def test_two_sources_train_end_to_end_with_per_source_validation(tmp_path, capsys):
    cli = main(sources_args(tmp_path, write_two_sources(tmp_path), "--trainer.max_epochs", "1"))
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").is_file()
    logged = scalars(tmp_path)
    expected = {
        "val_loss",
        "val_loss/wiki",
        "val_loss/tweets",
        "val_auroc_toxic/wiki",
        "val_auroc_toxic/tweets",
        "val_auroc_mean/tweets",
        "val_auroc_toxic",
    }
    assert expected <= logged, sorted(logged)
    assert "val_auroc_insult/tweets" not in logged  # the tweets label no insult
    # training drew the tweets at their share: weight 2 x sqrt(45 rows) against sqrt(48)
    datamodule = cli.datamodule
    assert datamodule.source_names == ["wiki", "tweets"]
    assert datamodule.source_shares[1] > datamodule.source_shares[0]
    assert "Best checkpoint:" in capsys.readouterr().out

    # evaluated one held-out set at a time: not its pooled validation rows, nor a source's training rows
    from toxicity.evaluate import main as evaluate

    checkpoint = str(tmp_path / "checkpoints" / "best-checkpoint.ckpt")
    for refused in ([], ["--data", str(tmp_path / "wiki.csv"), "--split", "test"]):
        with pytest.raises(SystemExit) as stopped:
            evaluate(["--ckpt", checkpoint, "--output", str(tmp_path / "no"), *refused])
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and "trained on several sources" in error and "wiki.csv" in error
    # a source named by its path: its own validation rows, on the tags it labels, mapped as in training
    tweets_val = datamodule.frames["val"].query("source == 1")
    results = evaluate(
        ["--ckpt", checkpoint, "--data", str(tmp_path / "tweets.csv"), "--output", str(tmp_path / "t")]
    )
    assert results.rows == len(tweets_val) and results.tags == ["toxic", "identity_hate"]
    assert results.name == "tweets-val" and "its validation split" in results.data
    for refused, says in (
        (["--tags", "toxic", "insult"], "it labels ['toxic', 'identity_hate']"),
        (["--label-map", "class=toxic"], "drop --label-map"),
    ):
        with pytest.raises(SystemExit) as stopped:
            evaluate(["--ckpt", checkpoint, "--data", str(tmp_path / "tweets.csv"), *refused])
        assert stopped.value.code == 2 and says in capsys.readouterr().err
    held_out = tmp_path / "held_out.csv"
    make_comments(n_clean=12, n_toxic=12).assign(id=lambda frame: "h" + frame["id"]).to_csv(
        held_out, index=False
    )
    results = evaluate(
        ["--ckpt", checkpoint, "--data", str(held_out), "--split", "test", "--output", str(tmp_path / "r")]
    )
    assert results.rows == 24 and not (tmp_path / "no").exists()


def test_the_hybrid_trains_on_two_sources(tmp_path):
    cli = main(
        sources_args(
            tmp_path,
            write_two_sources(tmp_path),
            "--trainer.max_epochs",
            "1",
            "--data.rows_per_epoch",
            "32",
            config=HYBRID_YAML,
        )
    )
    assert cli.trainer.global_step == 2  # 32 rows drawn, batches of 16
    assert "val_auroc_toxic/tweets" in scalars(tmp_path)


def test_the_text_to_text_family_refuses_partial_labels_naming_what_works(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(sources_args(tmp_path, write_two_sources(tmp_path), config=TINY_TEXT2TEXT_YAML))
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: the text-to-text family cannot train on partial labels")
    assert "ToxicCommentTagger" in message and "HybridTagger" in message


def overlapping_ids(tmp_path, sources):
    tweets = make_tweets()
    tweets.loc[0, "id"] = "c1"
    tweets.to_csv(sources[1]["path"], index=False)


def all_one_class(tmp_path, sources):
    sources[1]["labels"] = {"toxic": {"column": "class", "positive": [0, 1, 2]}}


def lacking_tag(tmp_path, sources):
    sources[1]["labels"] = {**TWEETS_LABELS, "hate": "class"}


def no_tag(tmp_path, sources):
    del sources[1]["labels"]


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lacking_tag, "source 'tweets' (.*) maps onto tag(s) ['hate'], which the model lacks"),
        (no_tag, "source 'tweets' (.*) labels none of the model's tags"),
        (overlapping_ids, "source 'tweets' (.*) and source 'wiki' share 1 id(s)"),
        (all_one_class, "source 'tweets' (.*): every label it gives is 1 after mapping"),
    ],
)
def test_bad_sources_are_one_error_line_and_exit_2_before_any_run_folder(tmp_path, capsys, spoil, message):
    sources = write_two_sources(tmp_path)
    spoil(tmp_path, sources)
    with pytest.raises(SystemExit) as stopped:
        main(sources_args(tmp_path, sources))
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ")
    head, tail = message.split("(.*)")
    assert head in lines[-1] and tail in lines[-1]
    assert not (tmp_path / "logs").exists()


def test_counts_per_source_are_logged(tmp_path, caplog):
    with caplog.at_level("INFO"):
        main(sources_args(tmp_path, write_two_sources(tmp_path), "--trainer.max_steps", "1"))
    assert "source 'tweets'" in caplog.text and "positive/negative/unknown" in caplog.text
    assert "'insult': '0/0/" in caplog.text  # the tweets' insult: all unknown, counted


def test_a_single_data_path_still_trains_as_before(tmp_path):
    data = tmp_path / "c.csv"
    make_comments().to_csv(data, index=False)
    main(fit_args(tmp_path, data, "--trainer.max_epochs", "1"))
    logged = scalars(tmp_path)
    assert "val_loss" in logged and not any("/" in name for name in logged if name.startswith("val_"))


@pytest.mark.slow  # reads and splits ~52k rows: 5 s alone, 40 s on the shared 2 cores
@needs_shared_data("jigsaw_sample")
@needs_shared_data("davidson_hate_offensive")
@needs_shared_data("tweeteval_hate")
@needs_shared_data("tweeteval_offensive")
@needs_shared_data("ethos")
def test_the_all_sources_recipe_reads_the_five_datasets():
    recipe = yaml.safe_load((ROOT / "experiments" / "all_sources.yaml").read_text())["data"]
    for source in recipe["sources"]:  # the recipe's paths are ../shared/data/..., from the project root
        source["path"] = str(SHARED_DATA / source["path"].rsplit("/", 1)[1])
    datamodule = ToxicCommentsDataModule(**recipe)
    datamodule.setup("fit")
    assert datamodule.source_names == list(PRESETS)
    assert abs(datamodule.source_shares.sum() - 1) < 1e-9 and datamodule.hparams.rows_per_epoch == 12000


@pytest.mark.slow  # two processes
def test_ddp_two_cpu_processes_train_on_two_sources(tmp_path):
    args = sources_args(
        tmp_path,
        write_two_sources(tmp_path),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_epochs",
        "1",
        "--data.rows_per_epoch",
        "66",  # not a multiple of 2 x 16: the last batch is short on one rank
    )
    result = subprocess.run(
        [sys.executable, "-m", "toxicity.fit", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "best-checkpoint.ckpt").is_file()
    assert {"val_loss", "val_loss/tweets", "val_auroc_toxic/wiki"} <= scalars(tmp_path)


@pytest.mark.slow  # reads and splits Davidson's 25k rows and TweetEval hate's 13k, scores ~6k
@needs_shared_data("davidson_hate_offensive")
@needs_shared_data("tweeteval_hate")
def test_each_real_source_is_evaluated_on_its_held_out_rows_with_its_own_mapping(tmp_path):
    davidson, hate = SHARED_DATA / "davidson_hate_offensive", SHARED_DATA / "tweeteval_hate"
    sources = [{"path": str(davidson)}, {"path": str(hate)}]
    main(sources_args(tmp_path, sources, "--trainer.max_epochs", "1", "--data.rows_per_epoch", "32"))
    from toxicity.evaluate import main as evaluate

    checkpoint = str(tmp_path / "checkpoints" / "best-checkpoint.ckpt")
    on_davidson = evaluate(["--ckpt", checkpoint, "--data", str(davidson), "--output", str(tmp_path / "d")])
    # Davidson labels toxic and identity_hate on every row; its validation split is a seeded 10%
    assert on_davidson.tags == ["toxic", "identity_hate"] and on_davidson.split == "val"
    assert 2400 <= on_davidson.rows <= 2500
    on_hate = evaluate(
        ["--ckpt", checkpoint, "--data", str(hate), "--split", "test", "--output", str(tmp_path / "h")]
    )
    # TweetEval hate's official test file; its 0 says nothing of toxic, so identity_hate alone is scored
    assert on_hate.tags == ["identity_hate"] and on_hate.rows == 2970


def test_source_bias_learns_each_sources_base_rate_apart_and_scores_on_the_first_sources(tmp_path):
    cli = main(
        sources_args(
            tmp_path,
            write_two_sources(tmp_path),
            "--trainer.max_epochs",
            "1",
            "--model.init_args.source_bias",
            "true",
            config=HYBRID_YAML,
        )
    )
    model = cli.model
    # the tweets (source 1) have their own offsets, started from the warm start's indicator column
    assert model.source_logit_bias.shape == (1, len(model.labels))
    assert model.hparams.source_names == ["wiki", "tweets"]
    tweets = model.labels.index("identity_hate")
    assert model.source_logit_bias[0, tweets] != 0
    from toxicity.inference.scorer import ToxicityClassifier

    loaded = ToxicityClassifier.from_checkpoint(tmp_path / "checkpoints" / "best-checkpoint.ckpt")
    assert loaded.model.source_logit_bias.shape == (1, len(model.labels))  # the checkpoint loads as saved
    # scored outside training, a text gets the shared logits (the first source's base rates): no offset
    texts = ["those people are vermin", "lovely weather today"]
    before = loaded.predict_proba(texts, progress=False)
    with torch.no_grad():
        loaded.model.source_logit_bias += 5.0
    np.testing.assert_array_equal(loaded.predict_proba(texts, progress=False), before)


def test_source_bias_on_one_table_is_refused(tmp_path, capsys):
    table = tmp_path / "wiki.csv"
    make_comments(n_clean=40, n_toxic=20).to_csv(table, index=False)
    with pytest.raises(SystemExit) as stopped:
        main(fit_args(tmp_path, table, "--model.init_args.source_bias", "true"))
    assert stopped.value.code == 2 and "needs two sources or more" in capsys.readouterr().err
