"""`python -m toxicity.evaluate`: which rows are evaluated, the CLI end to end on the tiny checkpoint,
errors."""

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import make_comments
from toxicity.checkpoint import DataSettings, TrainedCheckpoint, thresholds_path
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.datamodule import ToxicCommentsDataModule
from toxicity.evaluate import main
from toxicity.evaluation import plots
from toxicity.evaluation.eval_sets import EvalRequest, checkpoint_val_split, load_eval_set
from toxicity.evaluation.runlog import read_scalars
from toxicity.inference.scorer import ToxicityClassifier

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = [
    "roc_curves",
    "precision_recall_curves",
    "tag_frequencies",
    "clean_vs_toxic",
    "token_lengths",
    "reliability_diagram",
    "learning_rate",
]


def kaggle_folder(folder, unscored=("c0", "c1", "c2", "c3", "c4")):
    """train.csv, test.csv and test_labels.csv in Kaggle's layout; `unscored` ids get -1 in every tag."""
    folder.mkdir(parents=True, exist_ok=True)
    make_comments().to_csv(folder / "train.csv", index=False)
    test = make_comments(n_clean=10, n_toxic=10)
    test[["id", "comment_text"]].to_csv(folder / "test.csv", index=False)
    labels = test[["id", *LABELS]].copy()
    labels.loc[labels["id"].isin(unscored), list(LABELS)] = -1
    labels.to_csv(folder / "test_labels.csv", index=False)
    return folder, test[~test["id"].isin(unscored)]


# ---------------------------------------------------------------------------------------- rows evaluated
def test_kaggle_test_join_leaves_out_unscored_rows(tmp_path):
    folder, scored = kaggle_folder(tmp_path / "kaggle")
    data = load_eval_set(EvalRequest(str(folder), "test"), DataSettings(), LABELS)
    assert len(data.frame) == len(scored) == 15
    assert sorted(data.frame["id"]) == sorted(scored["id"]) and data.kaggle
    assert (data.labels == scored[list(LABELS)].to_numpy()).all()
    subset = load_eval_set(EvalRequest(str(folder), "test", tags=["toxic"]), DataSettings(), LABELS)
    assert not subset.kaggle  # the competition score needs all six tags


def test_val_split_is_the_training_runs(tmp_path, comments_csv, monkeypatch):
    datamodule = ToxicCommentsDataModule(data_path=str(comments_csv), val_fraction=0.25, seed=5)
    datamodule.setup()
    run = DataSettings(data_path=str(comments_csv), val_fraction=0.25, seed=5)
    data = load_eval_set(EvalRequest(split="val"), run, LABELS)
    assert data.texts == datamodule.frames["val"]["text"].tolist() and data.checkpoint_val
    monkeypatch.chdir(tmp_path)  # the same file named by another path is still the run's own data
    again = load_eval_set(EvalRequest("comments.csv", "val"), run, LABELS)
    assert again.texts == data.texts and again.checkpoint_val


def test_tweeteval_folder_with_a_label_map(tmp_path):
    folder = tmp_path / "tweeteval_offensive"
    folder.mkdir()
    tweets = ["@user you are awful", "what a lovely day\u2028see you", "shut up idiot"]
    (folder / "test_text.txt.gz").write_bytes(gzip.compress(("\n".join(tweets) + "\n").encode()))
    (folder / "test_labels.txt.gz").write_bytes(gzip.compress(b"1\n0\n1\n"))
    data = load_eval_set(
        EvalRequest(str(folder), "test", label_map={"label": "toxic"}), DataSettings(), LABELS
    )
    assert data.tags == ["toxic"] and data.texts == tweets and data.labels[:, 0].tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="no column is named after a tag.*--label-map label=toxic"):
        load_eval_set(EvalRequest(str(folder), "test"), DataSettings(), LABELS)


def test_fractional_tags_and_identities_are_binarised(tmp_path):
    path = tmp_path / "civil.csv"
    pd.DataFrame(
        {
            "comment_text": ["a", "b", "c", "d"],
            "target": [0.8, 0.5, 0.2, 0.0],
            "male": [1.0, np.nan, 0.4, 0.6],
            "female": [0.0, 0.5, np.nan, 0.0],
        }
    ).to_csv(path, index=False)
    data = load_eval_set(
        EvalRequest(str(path), "test", label_map={"target": "toxic"}), DataSettings(), LABELS
    )
    assert data.tags == ["toxic"] and data.labels[:, 0].tolist() == [1, 1, 0, 0]
    assert data.identity_columns == ["male", "female"]
    assert data.frame["male"].tolist() == [1, 0, 0, 1] and data.frame["female"].tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    "request_args, message",
    [
        (
            {"label_map": {"label": "rudeness"}},
            r"'rudeness' is not a tag of this model; its tags are \['toxic'",
        ),
        ({"label_map": {"rating": "toxic"}}, r"column\(s\) \['rating'\], which the data does not have"),
        ({"tags": ["insult"]}, r"no column for tag\(s\) \['insult'\].*--label-map COLUMN=TAG"),
        ({"tags": ["rudeness"]}, r"--tags \['rudeness'\]: not tags of this model"),
        ({"identity_columns": ["gender"]}, r"identity column\(s\) \['gender'\] are not in the data"),
        ({"data": "no/such/file.csv"}, r"no/such/file.csv: --data is not there"),
    ],
)
def test_bad_requests_name_what_is_wrong(tmp_path, request_args, message):
    path = tmp_path / "tweets.csv"
    pd.DataFrame({"comment_text": ["a", "b"], "label": [0, 1]}).to_csv(path, index=False)
    request = EvalRequest(
        **({"data": str(path), "split": "test", "label_map": {"label": "toxic"}} | request_args)
    )
    with pytest.raises(DataError, match=message):
        load_eval_set(request, DataSettings(), LABELS)


def test_the_training_table_is_not_a_test_set(comments_csv):
    run = DataSettings(data_path=str(comments_csv))
    for data in (None, str(comments_csv)):
        with pytest.raises(DataError, match="trained on this table.*has no test rows"):
            load_eval_set(EvalRequest(data, "test"), run, LABELS)


def test_kaggle_folder_without_test_files_says_what_to_do(tmp_path):
    (tmp_path / "kaggle").mkdir()
    make_comments().to_csv(tmp_path / "kaggle" / "train.csv", index=False)
    with pytest.raises(DataError, match="no test.csv \\+ test_labels.csv here. Use --split val"):
        load_eval_set(EvalRequest(str(tmp_path / "kaggle"), "test"), DataSettings(), LABELS)


# ------------------------------------------------------------------------------------------------ plots
def test_figures_are_written_as_png_and_lr_scalars_are_read(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "run")) as writer:
        for step in range(10):
            writer.add_scalar("lr-AdamW/pg1", 1e-4 * (10 - step) / 10, step)
            writer.add_scalar("train_loss", 1.0, step)
    schedule = read_scalars(tmp_path / "run")
    assert list(schedule) == ["lr-AdamW/pg1"] and schedule["lr-AdamW/pg1"][0].tolist() == list(range(10))
    y_true = np.array([[1, 0], [0, 0], [1, 1], [0, 1], [0, 0]])
    y_prob = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.8], [0.4, 0.6], [0.1, 0.2]])
    figures = [
        plots.roc_curves(y_true, y_prob, ["a", "b"]),
        plots.precision_recall_curves(y_true, y_prob, ["a", "b"]),
        plots.tag_frequencies(y_true, ["a", "b"]),
        plots.clean_vs_toxic(y_true),
        plots.token_lengths(np.array([5, 10, 200]), 128),
        plots.reliability_diagram(y_true, y_prob, ["a", "b"], {"a": 0.1, "b": 0.2}),
        plots.learning_rate_schedule(schedule),
    ]
    for number, figure in enumerate(figures):
        plots.save_png(figure, tmp_path / f"{number}.png")
        assert (tmp_path / f"{number}.png").read_bytes().startswith(PNG_MAGIC)


# ----------------------------------------------------------------------------------- the CLI, end to end
@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path):
    """A private copy of the tiny checkpoint whose TensorBoard run is a private copy too."""
    saved = torch.load(tiny_checkpoint, weights_only=True)
    run = tmp_path / "run"
    shutil.copytree(TrainedCheckpoint.read(tiny_checkpoint).log_dir, run)
    saved["log_dir_relative"] = "../run"  # the run, from the copy's folder
    path = tmp_path / "ckpt" / "best-checkpoint.ckpt"
    path.parent.mkdir()
    torch.save(saved, path)
    return path


def probabilities(checkpoint, texts) -> np.ndarray:
    return ToxicityClassifier.from_checkpoint(checkpoint, device="cpu").predict_proba(texts)


def read_outputs(out):
    for name in FIGURES:
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC), name
    return json.loads((out / "metrics.json").read_text()), (out / "report.md").read_text()


def files_under(folder) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_val_report_writes_only_under_its_output_unless_asked(checkpoint, tmp_path, capsys):
    before = {folder: files_under(folder) for folder in (checkpoint.parent, tmp_path / "run")}
    out = tmp_path / "report-val"
    results = main(["--ckpt", str(checkpoint), "--split", "val", "--output", str(out)])
    metrics, report = read_outputs(out)
    assert metrics == json.loads(json.dumps(results.to_json()))
    assert "# Evaluation: comments-val" in capsys.readouterr().out
    assert "cross-fitted" in report and "| subset accuracy" in report and "Hamming accuracy" in report
    assert {folder: files_under(folder) for folder in before} == before  # no thresholds, no events
    assert "--save-thresholds" in report and not thresholds_path(checkpoint).exists()
    events = EventAccumulator(str(out / "tensorboard")).Reload().Tags()
    assert "evaluate/comments-val/roc_curves" in events["images"]
    assert "learning_rate" in results.plots  # read from the run folder, which is left as it was

    results = main(
        [
            "--ckpt",
            str(checkpoint),
            "--split",
            "val",
            "--output",
            str(out),
            "--overwrite",
            "--save-thresholds",
        ]
    )
    saved = json.loads(thresholds_path(checkpoint).read_text())
    assert list(saved) == list(LABELS) and all(0 < value <= 1 for value in saved.values())
    assert saved == results.tuned.thresholds.thresholds

    val = checkpoint_val_split(TrainedCheckpoint.read(checkpoint).data)
    probs = probabilities(checkpoint, val.texts)
    assert metrics["rows"] == len(val.frame)
    for k, tag in enumerate(LABELS):
        assert metrics["ranking"]["per_tag"][tag]["roc_auc"] == pytest.approx(
            roc_auc_score(val.labels[:, k], probs[:, k])
        )

    assert files_under(tmp_path / "run") == before[tmp_path / "run"]
    main(["--ckpt", str(checkpoint), "--output", str(out), "--overwrite", "--log-dir", str(tmp_path / "run")])
    events = EventAccumulator(str(tmp_path / "run")).Reload().Tags()
    assert "evaluate/comments-val/roc_curves" in events["images"]
    assert "evaluate/comments-val/roc_auc_macro" in events["scalars"]

    with pytest.raises(SystemExit):
        main(["--ckpt", str(checkpoint), "--split", "val", "--output", str(out)])
    error = capsys.readouterr().err
    assert "report.md already exists" in error and "--overwrite" in error
    main(
        [
            "--ckpt",
            str(checkpoint),
            "--split",
            "val",
            "--output",
            str(out),
            "--overwrite",
            "--threshold-rule",
            "youden",
        ]
    )


def test_kaggle_test_report_applies_saved_thresholds(checkpoint, tmp_path):
    folder, scored = kaggle_folder(tmp_path / "kaggle")
    thresholds_path(checkpoint).write_text(json.dumps(dict.fromkeys(LABELS, 0.3)))
    out = tmp_path / "report-test"
    results = main(
        ["--ckpt", str(checkpoint), "--data", str(folder), "--split", "test", "--output", str(out)]
    )
    metrics, report = read_outputs(out)
    probs = probabilities(checkpoint, scored["comment_text"].tolist())
    labels = scored[list(LABELS)].to_numpy()
    assert metrics["kaggle"] == {
        "score": pytest.approx(roc_auc_score(labels, probs, average="macro")),
        "scored_rows": 15,
        "tags": 6,
    }
    assert "Kaggle score" in report and "on 15 scored rows" in report
    assert results.tuned.thresholds.thresholds == dict.fromkeys(LABELS, 0.3)
    for k, tag in enumerate(LABELS):
        rate = results.tuned.report.per_tag[tag].predicted_positive_rate
        assert rate == pytest.approx(np.mean(probs[:, k] >= 0.3))


def test_cross_dataset_scores_mapped_tags_only_with_bias_metrics(checkpoint, tmp_path):
    rows = make_comments(n_clean=12, n_toxic=12)
    table = pd.DataFrame(
        {
            "tweet": rows["comment_text"],
            "label": rows["toxic"],
            "rude": rows["insult"],
            "never": 0,
            "male": [k % 2 for k in range(len(rows))],
            "female": [0.7 if k % 3 == 0 else np.nan for k in range(len(rows))],
        }
    )
    table.to_csv(tmp_path / "tweets.csv", index=False)
    out = tmp_path / "report-tweets"
    results = main(
        [
            "--ckpt",
            str(checkpoint),
            "--data",
            str(tmp_path / "tweets.csv"),
            "--split",
            "test",
            "--text-column",
            "tweet",
            "--label-map",
            "label=toxic",
            "rude=insult",
            "never=threat",
            "--output",
            str(out),
        ]
    )
    metrics, report = read_outputs(out)
    assert metrics["tags"] == ["toxic", "threat", "insult"]
    assert metrics["tags_left_out"] == ["severe_toxic", "obscene", "identity_hate"]
    assert "severe_toxic |" not in report
    threat = metrics["ranking"]["per_tag"]["threat"]
    assert threat["roc_auc"] is None and threat["average_precision"] is None
    assert "| threat | 0 | 0.0000 | n/a | n/a |" in report
    probs = probabilities(checkpoint, rows["comment_text"].tolist())
    insult = LABELS.index("insult")
    assert metrics["ranking"]["per_tag"]["insult"]["roc_auc"] == pytest.approx(
        roc_auc_score(rows["insult"], probs[:, insult])
    )
    bias = metrics["bias"]
    assert bias["tag"] == "toxic" and set(bias["per_identity"]) == {"male", "female"}
    assert bias["per_identity"]["female"]["rows"] == 8
    assert bias["overall_auc"] == pytest.approx(roc_auc_score(rows["toxic"], probs[:, 0]))
    assert "Unintended bias" in report and results.tuned is not None  # tuned on the run's val split first


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda ckpt, tmp: ["--ckpt", str(tmp / "missing.ckpt")], "missing.ckpt: checkpoint not found"),
        (
            lambda ckpt, tmp: ["--ckpt", str(tmp / "ckpt" / "not-a-checkpoint.ckpt")],
            "not a PyTorch checkpoint",
        ),
        (
            lambda ckpt, tmp: [
                "--ckpt",
                str(ckpt),
                "--data",
                str(tmp / "tweets.csv"),
                "--label-map",
                "label=rude",
            ],
            "'rude' is not a tag of this model",
        ),
        (
            lambda ckpt, tmp: [
                "--ckpt",
                str(ckpt),
                "--data",
                str(tmp / "tweets.csv"),
                "--split",
                "test",
                "--label-map",
                "label=toxic",
                "--tags",
                "toxic",
                "insult",
            ],
            "no column for tag(s) ['insult']",
        ),
    ],
)
def test_bad_input_is_a_clear_error(checkpoint, tmp_path, capsys, make_args, message):
    (checkpoint.parent / "not-a-checkpoint.ckpt").write_text("hello")
    pd.DataFrame({"comment_text": ["a", "b"], "label": [0, 1]}).to_csv(tmp_path / "tweets.csv", index=False)
    with pytest.raises(SystemExit):
        main(make_args(checkpoint, tmp_path))
    assert message in capsys.readouterr().err


def test_the_training_table_is_recognised_inside_a_kaggle_folder(tmp_path):
    from toxicity.checkpoint import DataSettings
    from toxicity.evaluation.eval_sets import is_training_data

    (tmp_path / "train.csv").write_text("comment_text,toxic\nhello,0\n")
    (tmp_path / "other.csv").write_text("comment_text,toxic\nhello,0\n")
    run = DataSettings(data_path=str(tmp_path))
    assert is_training_data(tmp_path, run) and is_training_data(tmp_path / "train.csv", run)
    assert not is_training_data(tmp_path / "other.csv", run)


# ------------------------------------------------------------------------------------ compare (issue 16)
def logged_run(folder, model: dict | None = None, data: dict | None = None, steps: int = 20):
    """A run folder with train_loss and val_auroc_toxic events, and a config.yaml of `model` and `data`."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(folder)) as writer:
        for step in range(steps):
            writer.add_scalar("train_loss", 1.0 / (step + 1), global_step=step)
        writer.add_scalar("val_auroc_toxic", 0.9, global_step=19)
    (folder / "config.yaml").write_text(json.dumps({"model": model or {}, "data": data or {}}))
    return folder


def test_compare_refuses_runs_on_different_data_unless_asked_and_then_marks_them(
    tmp_path, capsys, monkeypatch
):
    from toxicity.compare import main as compare_main

    monkeypatch.chdir(tmp_path)
    jigsaw = {"data_path": "../shared/data/jigsaw_sample", "label_columns": list(LABELS), "seed": 42}
    same = [logged_run(tmp_path / "exp" / f"version_{k}", data=jigsaw) for k in (0, 1)]
    other = logged_run(tmp_path / "t5" / "version_0", data={**jigsaw, "label_columns": ["toxic"], "seed": 7})
    compare_main([str(run) for run in same])
    assert (tmp_path / "reports" / "compare-exp-version_0-exp-version_1" / "compare.md").is_file()
    capsys.readouterr()

    with pytest.raises(SystemExit) as refused:
        compare_main([str(same[0]), str(other)])
    error = capsys.readouterr().err
    assert refused.value.code == 2 and "not comparable" in error and "--allow-mixed-data" in error
    assert "label_columns: run 0" in error and "seed: run 0 42, run 1 7" in error
    assert "data_path" not in error  # the same in both: not named

    runs = compare_main([str(same[0]), str(other), "--allow-mixed-data"])
    written = (tmp_path / "reports" / "compare-exp-version_0-t5-version_0" / "compare.md").read_text()
    assert len(runs) == 2 and "**Not comparable" in written and "- seed: run 0 42, run 1 7" in written


def test_compare_names_the_fix_for_a_run_too_short_to_log_its_loss(tmp_path, capsys):
    from toxicity.compare import main as compare_main

    short = logged_run(tmp_path / "short", steps=0)
    with pytest.raises(SystemExit):
        compare_main([str(short), "--output", str(tmp_path / "out")])
    assert "--trainer.log_every_n_steps" in capsys.readouterr().err


@pytest.mark.parametrize("weight", ["1.5", "-1", "1", "nan"])
def test_compare_refuses_a_smoothing_weight_outside_0_1(tmp_path, capsys, weight):
    from toxicity.compare import main as compare_main

    with pytest.raises(SystemExit) as exit_:
        compare_main([str(logged_run(tmp_path)), "--smoothing", weight, "--output", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "--smoothing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_compare_refuses_a_truncated_events_file_naming_it(tmp_path, capsys):
    from toxicity.compare import main as compare_main

    run = logged_run(tmp_path / "run")
    events = next(run.glob("events.out.tfevents.*"))
    events.write_bytes(events.read_bytes()[:-10])  # cut off inside the last record
    with pytest.raises(SystemExit) as exit_:
        compare_main([str(run), "--output", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert (
        exit_.value.code == 2
        and str(events) in error
        and "truncated" in error
        and "Copy the run folder" in error
    )


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (
            {"class_path": "toxicity.models.text2text.TextToTextTagger", "init_args": {"architecture": "t5"}},
            "from scratch",
        ),
        (
            {
                "class_path": "toxicity.models.text2text.TextToTextTagger",
                "init_args": {"architecture": "bert2bert"},
            },
            "pretrained",
        ),
        ({"init_args": {"pretrained": False}}, "from scratch"),
        (
            {"init_args": {"encoder_config": {"model_type": "bert"}}},
            "from scratch",
        ),  # a model given by its shape
        ({"init_args": {"pooling": "mean"}}, "pretrained"),
    ],
)
def test_compare_names_randomly_initialised_runs_from_scratch(tmp_path, model, named):
    from toxicity.evaluation.compare import describe

    assert describe(logged_run(tmp_path, model)).endswith(named)


@pytest.mark.parametrize(
    ("class_path", "family"),
    [
        ("toxicity.models.encoder.ToxicCommentTagger", "encoder"),
        ("toxicity.models.hybrid.HybridTagger", "hybrid"),
        ("toxicity.models.text2text.TextToTextTagger", "text2text"),
    ],
)
def test_compare_names_each_runs_model_family(tmp_path, class_path, family):
    from toxicity.evaluation.compare import describe

    assert f": {family} " in describe(logged_run(tmp_path, {"class_path": class_path}))


def test_a_tweeteval_folder_without_the_requested_split_names_the_missing_file(tmp_path):
    folder = tmp_path / "tweeteval_offensive"
    folder.mkdir()
    (folder / "train_text.txt").write_text("a tweet\n")
    (folder / "train_labels.txt").write_text("0\n")
    (folder / "test_text.txt").write_text("a tweet\n")
    with pytest.raises(DataError, match=r"tweeteval_offensive: this TweetEval folder has no test_labels.txt"):
        load_eval_set(EvalRequest(str(folder), "test", label_map={"label": "toxic"}), DataSettings(), LABELS)
