"""`python -m toxicity.predict --output DIR`: scoring on Lightning's distributed engine, two CPU processes
(gloo) under Lightning's own launcher and under torchrun as two "nodes" on localhost, a rank killed and the
run resumed, and the refusals. Compared with the one-process scorer (score_file) on the tiny checkpoints.
About a minute on 2 busy cores (each multi-process run starts 2 Python processes).
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import ROOT, make_comments
from tests.helpers.processes import free_port
from toxicity.core.tags import LABELS
from toxicity.data.tables import iter_chunks
from toxicity.inference.files import score_file
from toxicity.inference.launch import default_precision, launcher_shape
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.inference.shards import DONE_FOLDER, MANIFEST, shard_path
from toxicity.predict import SOME_ROWS_UNSCORED, main

TAGS = list(LABELS)
PRED_COLUMNS = [f"{tag}_pred" for tag in TAGS]
QUIET = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def comments(n: int = 240) -> pd.DataFrame:
    """`n` distinct comments with string ids (one that looks like a number, "007"), a missing and a blank
    text, in no sorted order."""
    rows = make_comments(n_clean=n // 2, n_toxic=n - n // 2 - 3)[["id", "comment_text"]]
    extra = pd.DataFrame(
        {"id": ["007", "missing", "blank"], "comment_text": ["a long one " * 60, None, "  "]}
    )
    return pd.concat([rows, extra]).sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, Path]:
    """The same comments as CSV and as Parquet with small row groups (chunks cross row-group bounds)."""
    folder = tmp_path_factory.mktemp("distributed_input")
    frame = comments()
    frame.to_csv(folder / "comments.csv", index=False)
    frame.to_parquet(folder / "comments.parquet", row_group_size=50)
    return folder / "comments.csv", folder / "comments.parquet"


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, table, tmp_path_factory) -> pd.DataFrame:
    """The one-process scorer's output, with 0/1 decisions at 0.5."""
    output = tmp_path_factory.mktemp("reference") / "scores.csv"
    classifier = ToxicityClassifier.from_checkpoint(tiny_checkpoint, device="cpu", batch_size=16)
    score_file(classifier, table[0], output, threshold=0.5, progress=False)
    return pd.read_csv(output, dtype={"id": str})


def predict(
    ckpt: Path, *args: str, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "toxicity.predict", "--ckpt", str(ckpt), "--batch-size", "16", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env or QUIET, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_same_scores(merged: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Every id once, in input order, scores within 1e-5 and the same decisions."""
    assert merged["id"].tolist() == reference["id"].tolist()
    assert merged["id"].is_unique
    np.testing.assert_allclose(merged[TAGS].to_numpy(), reference[TAGS].to_numpy(), atol=1e-5)
    assert (merged[PRED_COLUMNS].to_numpy() == reference[PRED_COLUMNS].to_numpy()).all()


def sharded(ckpt: Path, source: Path, out: Path) -> list[str]:
    """predict's arguments for scoring `source` into the shard folder `out`, 64 rows a chunk."""
    return ["--ckpt", str(ckpt), "--data", str(source), "--output", str(out), "--chunk-rows", "64"]


def run_together(commands: list[list[str]], envs: list[dict] | None = None) -> list[tuple[str, str]]:
    """Starts the commands at once from the repository root, waits for all, and returns their (stdout,
    stderr) once every one has exited 0."""
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command, env in zip(commands, envs or [QUIET] * len(commands))
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0] * len(processes), "\n".join(
        stderr[-3000:] for _, stderr in outputs
    )
    return outputs


# ------------------------------------------------------------------------------------ two processes
@pytest.mark.slow
def test_two_processes_under_lightnings_launcher_score_every_row_once(
    tiny_checkpoint, table, reference, tmp_path
):
    out, merged = tmp_path / "scored", tmp_path / "merged.parquet"
    run = predict(
        tiny_checkpoint,
        *("--data", str(table[0]), "--output", str(out), "--threshold", "0.5", "--chunk-rows", "32"),
        *("--devices", "2", "--accelerator", "cpu", "--merge", str(merged)),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Scored 240 comments" in run.stdout and "on 2 process(es)" in run.stdout
    records = [json.loads(p.read_text()) for p in sorted((out / DONE_FOLDER).glob("*.json"))]
    assert [r["chunk"] for r in records] == list(range(8))
    assert {r["rank"] for r in records} == {0, 1}  # chunk k on rank k % 2
    assert all(r["rank"] == r["chunk"] % 2 for r in records)
    assert sum(r["blank_texts"] for r in records) == 2
    assert_same_scores(pd.read_parquet(merged), reference)

    # the folder is one Parquet dataset for pandas, pyarrow and DuckDB: the _manifest, _done and hidden
    # partials are skipped by their names
    import pyarrow.dataset as ds

    by_pandas = pd.read_parquet(out).sort_values("row")
    assert_same_scores(by_pandas.reset_index(drop=True), reference)
    assert ds.dataset(out, format="parquet").count_rows() == len(reference)
    duckdb = pytest.importorskip("duckdb")
    ids = duckdb.sql(f"SELECT id FROM read_parquet('{out}/*.parquet') ORDER BY row").fetchall()
    assert [row[0] for row in ids] == reference["id"].tolist()
    read_by_spark(out, reference)


def read_by_spark(out: Path, reference: pd.DataFrame) -> None:
    """Spark reads the folder as it is written (its own rule skips `_` and `.` names); a local session."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (`apt-get install default-jre-headless`); none on PATH")
    pyspark = pytest.importorskip("pyspark", reason="pyspark is in the dev extra: pip install -e '.[dev]'")
    spark = (
        pyspark.sql.SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    )
    try:
        scored = spark.read.parquet(str(out)).orderBy("row").toPandas()
    finally:
        spark.stop()
    assert_same_scores(scored.reset_index(drop=True), reference)


@pytest.mark.slow
def test_torchrun_two_nodes_on_localhost(tiny_checkpoint, table, reference, tmp_path):
    """Two torchrun launchers, one process each, node ranks 0 and 1: devices and nodes come from the
    environment torchrun sets (LOCAL_WORLD_SIZE, WORLD_SIZE, NODE_RANK, MASTER_ADDR...)."""
    out, port = tmp_path / "scored", free_port()
    args = ["--data", str(table[1]), "--output", str(out), "--threshold", "0.5", "--chunk-rows", "32"]
    predict_args = ["--ckpt", str(tiny_checkpoint), "--batch-size", "16", *args]
    outputs = run_together(
        [
            [
                *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"),
                *("--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port)),
                *("-m", "toxicity.predict", *predict_args),
                *(["--merge", str(tmp_path / "merged.csv")] if node == 0 else []),
            ]
            for node in (0, 1)
        ]
    )
    assert "Scored 240 comments" in outputs[0][0] and "on 2 process(es)" in outputs[0][0]
    assert "Scored" not in outputs[1][0]  # only global rank 0 reports
    assert_same_scores(pd.read_csv(tmp_path / "merged.csv", dtype={"id": str}), reference)


def slurm_job_id_with_a_free_port() -> str:
    """A job id whose port (Lightning's SLURM environment: 15000 + the id's last four digits) is free."""
    for last_four in np.random.default_rng().permutation(10_000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", 15_000 + int(last_four)))
            except OSError:
                continue
        return f"77{last_four:04d}"
    raise RuntimeError("no free port in 15000-24999")


@pytest.mark.slow
def test_two_tasks_under_slurm_environment(tiny_checkpoint, table, reference, tmp_path):
    """Two processes started as `srun --ntasks-per-node 2` starts them, with only the environment it sets:
    Lightning's SLURM environment gives ranks, world size and rendezvous; devices and nodes come from
    SLURM_NTASKS_PER_NODE and SLURM_NNODES."""
    out, job_id = tmp_path / "scored", slurm_job_id_with_a_free_port()
    args = ["--data", str(table[1]), "--output", str(out), "--threshold", "0.5", "--chunk-rows", "32"]
    srun = {
        **{key: value for key, value in QUIET.items() if not key.startswith(("SLURM_", "MASTER_"))},
        "SLURM_JOB_ID": job_id,
        "SLURM_JOB_NAME": "score",
        "SLURM_NODELIST": "localhost",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
    }
    predict = [sys.executable, "-m", "toxicity.predict", "--ckpt", str(tiny_checkpoint), "--batch-size", "16"]
    outputs = run_together(
        [[*predict, *args, "--merge", str(tmp_path / "merged.csv")], [*predict, *args]],
        envs=[{**srun, "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task)} for task in (0, 1)],
    )
    assert "Scored 240 comments" in outputs[0][0] and "on 2 process(es)" in outputs[0][0]
    records = [json.loads(path.read_text()) for path in sorted((out / DONE_FOLDER).glob("*.json"))]
    assert {record["rank"] for record in records} == {0, 1}
    assert_same_scores(pd.read_csv(tmp_path / "merged.csv", dtype={"id": str}), reference)


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the child rank through /proc (Linux)")
def test_a_rank_killed_mid_run_is_resumed_by_the_same_command(tiny_checkpoint, table, reference, tmp_path):
    """SIGKILL rank 1 once it has finished a chunk; Lightning's launcher then ends rank 0. The same command
    again scores only the chunks without a record, and the result equals the one-process run."""
    out, merged = tmp_path / "scored", tmp_path / "merged.csv"
    args = ["--data", str(table[0]), "--output", str(out), "--threshold", "0.5", "--chunk-rows", "4"]
    args += ["--devices", "2", "--accelerator", "cpu"]
    command = [sys.executable, "-m", "toxicity.predict", "--ckpt", str(tiny_checkpoint), "--batch-size", "2"]
    first = subprocess.Popen(
        [*command, *args], cwd=ROOT, env=QUIET, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    killed = None
    while first.poll() is None and time.monotonic() < deadline:
        done_by_rank_1 = [
            p for p in (out / DONE_FOLDER).glob("*.json") if json.loads(p.read_text())["rank"] == 1
        ]
        if done_by_rank_1 and children_of(first.pid):
            killed = children_of(first.pid)[0]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.02)
    _, stderr = first.communicate(timeout=120)
    assert killed is not None, f"rank 1 never finished a chunk: {stderr[-3000:]}"
    assert first.returncode != 0
    finished = len(list((out / DONE_FOLDER).glob("*.json")))
    assert 0 < finished < 60, "the kill came too late to leave work for the rerun"

    again = predict(tiny_checkpoint, *args, "--merge", str(merged))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{finished} of them finished by an earlier run, skipped" in again.stdout
    assert_same_scores(pd.read_csv(merged, dtype={"id": str}), reference)
    assert not list(out.glob(".*.partial"))  # the killed rank's partial shard was removed or replaced


@pytest.mark.slow
def test_onnx_int8_shards_over_processes_without_ddp(tiny_checkpoint, table, tmp_path):
    """Two processes told their rank by RANK/WORLD_SIZE (as torchrun or srun tell them), no process group:
    each scores its chunks with the int8 ONNX model; the same command then merges; equal to one process."""
    from toxicity.exporters.onnx import export_onnx
    from toxicity.inference.onnx import OnnxToxicityClassifier

    export_onnx(tiny_checkpoint, tmp_path / "onnx", int8=True)
    reference = tmp_path / "reference.csv"
    score_file(
        OnnxToxicityClassifier.from_folder(tmp_path / "onnx", int8=True), table[0], reference, progress=False
    )
    out, merged = tmp_path / "scored", tmp_path / "merged.csv"
    args = ["--data", str(table[0]), "--output", str(out), "--onnx", str(tmp_path / "onnx"), "--int8"]
    command = [sys.executable, "-m", "toxicity.predict", *args, "--chunk-rows", "32"]
    ranks = [
        subprocess.Popen(command, cwd=ROOT, env={**QUIET, "RANK": str(rank), "WORLD_SIZE": "2"}, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for rank in (0, 1)
    ]  # fmt: skip
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    records = [json.loads(p.read_text()) for p in sorted((out / DONE_FOLDER).glob("*.json"))]
    assert [r["rank"] for r in records] == [k % 2 for k in range(8)]
    again = subprocess.run(
        [*command, "--merge", str(merged)], cwd=ROOT, env=QUIET, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0 and "8 of them finished by an earlier run" in again.stdout, again.stderr[
        -2000:
    ]
    got, expected = pd.read_csv(merged, dtype={"id": str}), pd.read_csv(reference, dtype={"id": str})
    assert got["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(got[TAGS].to_numpy(), expected[TAGS].to_numpy(), atol=1e-5)
    assert json.loads((out / MANIFEST).read_text())["precision"] == "onnx-int8"


# ------------------------------------------------------------------------------------- one process
@pytest.mark.slow
def test_text2text_family_scores_into_shards(tiny_text2text_checkpoint, table, tmp_path):
    classifier = ToxicityClassifier.from_checkpoint(tiny_text2text_checkpoint, device="cpu", batch_size=16)
    score_file(classifier, table[0], tmp_path / "reference.csv", progress=False)
    out, merged = tmp_path / "scored", tmp_path / "merged.csv"
    main(["--ckpt", str(tiny_text2text_checkpoint), "--data", str(table[1]), "--output", str(out)]
         + ["--chunk-rows", "64", "--batch-size", "16", "--merge", str(merged)])  # fmt: skip
    expected = pd.read_csv(tmp_path / "reference.csv", dtype={"id": str})
    got = pd.read_csv(merged, dtype={"id": str})
    assert got["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(got[TAGS].to_numpy(), expected[TAGS].to_numpy(), atol=1e-5)


def test_bf16_autocast_path_on_cpu_is_close_to_float32(tiny_checkpoint, table, reference, tmp_path):
    """The path a GPU takes by default (bf16-mixed), run on the CPU: scores move by little, and a rerun
    with another precision is refused instead of mixing shards of both."""
    out = tmp_path / "scored"
    base = sharded(tiny_checkpoint, table[0], out)
    main([*base, "--precision", "bf16-mixed", "--merge", str(tmp_path / "merged.csv")])
    got = pd.read_csv(tmp_path / "merged.csv", dtype={"id": str})
    assert got["id"].tolist() == reference["id"].tolist()
    np.testing.assert_allclose(got[TAGS].to_numpy(), reference[TAGS].to_numpy(), atol=0.02)
    assert json.loads((out / MANIFEST).read_text())["precision"] == "bf16-mixed"
    with pytest.raises(SystemExit) as refused:
        main([*base, "--precision", "32-true"])
    assert refused.value.code == 2 and "another scoring job" in str(refused.value)


def test_default_precision_is_bf16_on_a_gpu_that_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert default_precision("gpu") == default_precision("auto") == "bf16-mixed"
    assert default_precision("cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a V100: float32, not float16
    assert default_precision("gpu") == "32-true"


def test_devices_and_nodes_come_from_torchrun_or_slurm():
    assert launcher_shape({"LOCAL_WORLD_SIZE": "8", "WORLD_SIZE": "32", "NODE_RANK": "1"}) == (8, 4)
    assert launcher_shape({"SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2"}) == (4, 2)
    assert launcher_shape({"SLURM_NTASKS_PER_NODE": "4(x2)", "SLURM_NNODES": "2"}) == (4, 2)
    assert launcher_shape({}) is None


def test_a_row_the_model_cannot_score_is_kept_empty_and_exit_status_3(
    tiny_checkpoint, table, tmp_path, monkeypatch, capsys
):
    """The single-file rule holds for shards: the batch is retried a row at a time, the row that fails
    alone gets empty scores, the others are kept, and the command exits 3."""
    from toxicity.models.encoder import ToxicCommentTagger

    forward = ToxicCommentTagger.forward

    def fails_on_long_rows(self, input_ids, attention_mask):
        if attention_mask.sum(dim=1).max() > 40:  # only "007", the long comment (cut at 48 tokens)
            raise RuntimeError("simulated failure")
        return forward(self, input_ids, attention_mask)

    monkeypatch.setattr(ToxicCommentTagger, "forward", fails_on_long_rows)
    out, merged = tmp_path / "scored", tmp_path / "merged.parquet"
    with pytest.raises(SystemExit) as exit_status:
        main(["--ckpt", str(tiny_checkpoint), "--data", str(table[0]), "--output", str(out)]
             + ["--chunk-rows", "64", "--threshold", "0.5", "--merge", str(merged)])  # fmt: skip
    assert exit_status.value.code == SOME_ROWS_UNSCORED
    assert "1 rows could not be scored" in capsys.readouterr().out
    scores = pd.read_parquet(merged)
    unscored = scores[scores[TAGS].isna().all(axis=1)]
    assert unscored["id"].tolist() == ["007"] and unscored[PRED_COLUMNS].isna().all(axis=None)
    assert scores.drop(unscored.index)[TAGS].notna().all(axis=None)


# ------------------------------------------------------------------------------------------ refusals
def refusal(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as refused:
        main(list(args))
    assert refused.value.code == 2
    return capsys.readouterr().err


def test_refusals_name_the_file_and_what_to_do(tiny_checkpoint, table, tmp_path, capsys):
    ckpt, csv = str(tiny_checkpoint), str(table[0])
    message = refusal(
        capsys, "--ckpt", ckpt, "--data", csv, "--output", str(tmp_path / "a"), "--text-column", "body"
    )
    assert "no column(s) ['body']" in message and "--text-column" in message

    foreign = tmp_path / "holiday_photos"
    foreign.mkdir()
    (foreign / "beach.jpg").write_bytes(b"jpeg")
    message = refusal(capsys, "--ckpt", ckpt, "--data", csv, "--output", str(foreign))
    assert "not empty (beach.jpg)" in message and "new or empty folder" in message
    assert (foreign / "beach.jpg").read_bytes() == b"jpeg" and not (foreign / MANIFEST).exists()

    message = refusal(
        capsys, "--ckpt", ckpt, "--data", csv, "--output", str(tmp_path / "x.csv"), "--devices", "2"
    )
    assert "--devices" in message and "folder" in message

    (tmp_path / "taken.parquet").write_bytes(b"mine")
    out = str(tmp_path / "b")
    message = refusal(
        capsys, "--ckpt", ckpt, "--data", csv, "--output", out, "--merge", str(tmp_path / "taken.parquet")
    )
    assert "already exists" in message and (tmp_path / "taken.parquet").read_bytes() == b"mine"


def test_another_jobs_folder_is_refused_unless_the_manifest_matches(tiny_checkpoint, table, tmp_path, capsys):
    out = tmp_path / "scored"
    first = sharded(tiny_checkpoint, table[0], out)
    main(first)
    shards = sorted(out.glob("part-*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    message = refusal(capsys, *first, "--threshold", "0.5")
    assert (
        "another scoring job" in message
        and "the thresholds changed (none then, 0.5 for every tag now)" in message
    )
    message = refusal(capsys, *first[:-1], "100")
    assert "--chunk-rows was 64, now 100" in message and "Choose another --output" in message
    main(first)  # the same job: everything finished, nothing rescored
    assert [p.stat().st_mtime_ns for p in shards] == stamps
    assert "Nothing to do: this job is finished" in capsys.readouterr().out


def test_duplicate_ids_are_kept(tiny_checkpoint, tmp_path):
    """Ids are kept as given, duplicates included (checking 10^8 ids would hold them all in memory);
    the `row` column tells the rows apart."""
    path = tmp_path / "dupes.csv"
    pd.DataFrame({"id": ["a", "a", "b"], "comment_text": ["one", "two", "three"]}).to_csv(path, index=False)
    main(["--ckpt", str(tiny_checkpoint), "--data", str(path), "--output", str(tmp_path / "s")])
    scores = pd.read_parquet(tmp_path / "s").sort_values("row")
    assert scores["id"].tolist() == ["a", "a", "b"] and scores["row"].tolist() == [0, 1, 2]


def test_parquet_chunks_are_exact_row_ranges_across_row_groups(table):
    whole = pd.read_parquet(table[1])
    chunks = list(iter_chunks(table[1], ["id"], 32, lambda k: k != 3))
    assert [c.number for c in chunks] == list(range(8)) and chunks[-1].last and chunks[3].frame is None
    kept = pd.concat([c.frame for c in chunks if c.frame is not None], ignore_index=True)
    assert kept["id"].tolist() == whole["id"].drop(index=range(96, 128)).tolist()


# ------------------------------------------------------------------- what a resumed job checks (issue 26)
def another_seed(ckpt: Path, copy: Path) -> None:
    """`ckpt` with one weight moved, written to `copy`: a checkpoint of the same size with other scores,
    as another seed's."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    name = next(key for key, value in state["state_dict"].items() if value.is_floating_point())
    state["state_dict"][name] = state["state_dict"][name] + 0.5
    written = io.BytesIO()  # as Lightning saves (the archive's inner name does not come from the file's)
    torch.save(state, written)
    copy.write_bytes(written.getvalue())


def test_a_changed_checkpoint_thresholds_or_input_is_refused_naming_what_changed(
    tiny_checkpoint, table, tmp_path, capsys
):
    """Same size, same mtime, same path: only the content changed; the rerun is refused, nothing in the
    folder is touched, and once the file is restored the job resumes."""
    from toxicity.checkpoint import thresholds_path

    ckpt, source, out = tmp_path / "model.ckpt", tmp_path / "comments.csv", tmp_path / "scored"
    shutil.copy(tiny_checkpoint, ckpt)
    shutil.copy(table[0], source)
    tuned = {**dict.fromkeys(TAGS, 0.3), "severe_toxic": 0.4}
    thresholds_path(ckpt).write_text(json.dumps(tuned))
    job = [*sharded(ckpt, source, out), "--threshold", "tuned"]
    main(job)
    assert json.loads((out / MANIFEST).read_text())["thresholds"] == tuned
    shards = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}

    thresholds_path(ckpt).write_text(json.dumps({**tuned, "toxic": 0.7}))  # re-tuned in between
    message = refusal(capsys, *job)
    assert "the thresholds changed (toxic 0.3, severe_toxic 0.4" in message
    assert "then, toxic 0.7, severe_toxic 0.4" in message and "restore what changed" in message
    thresholds_path(ckpt).write_text(json.dumps(tuned))

    original, stamp = source.read_bytes(), source.stat().st_mtime_ns
    source.write_bytes(original.replace(b"thanks for edit number 1 ", b"thanks for edit number 2 ", 1))
    os.utime(source, ns=(stamp, stamp))  # as `cp -p` leaves a copy: same size, same time
    assert source.stat().st_size == len(original)
    message = refusal(capsys, *job)
    assert f"the input {source.resolve()} changed since this job began (sha256 " in message
    source.write_bytes(original)

    before = ckpt.read_bytes()
    another_seed(tiny_checkpoint, ckpt)
    thresholds_path(ckpt).write_text(json.dumps(tuned))  # newer than the checkpoint: it applies
    assert ckpt.stat().st_size == len(before) and ckpt.read_bytes() != before
    message = refusal(capsys, *job)
    assert f"the checkpoint {ckpt.resolve()} changed since this job began (sha256 " in message
    assert "… then, " in message and "… now)" in message

    assert {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == shards
    ckpt.write_bytes(before)
    thresholds_path(ckpt).write_text(json.dumps(tuned))
    main(job)  # restored: the same job again, nothing rescored
    assert "Nothing to do: this job is finished" in capsys.readouterr().out


def test_a_folder_of_the_older_format_is_refused(tiny_checkpoint, table, tmp_path, capsys):
    out = tmp_path / "scored"
    (out / DONE_FOLDER).mkdir(parents=True)
    old = {"input": str(table[0]), "input_bytes": 1, "input_mtime_ns": 1, "threshold": None, "format": 1}
    (out / MANIFEST).write_text(json.dumps(old))
    message = refusal(capsys, *sharded(tiny_checkpoint, table[0], out))
    assert f"{out / MANIFEST}: written by another version" in message and "output format 1" in message
    assert "Choose another --output" in message


@pytest.mark.parametrize(
    ("damaged", "content", "says"),
    [
        (MANIFEST, "", "damaged scoring manifest"),
        (MANIFEST, "[1, 2]", "damaged scoring manifest (not a JSON object)"),
        (f"{DONE_FOLDER}/000001.json", '{"chunk": 1', "damaged chunk record"),
        (f"{DONE_FOLDER}/000001.json", '{"chunk": 1}', "damaged chunk record (not the fields of one)"),
        (f"{DONE_FOLDER}/000001.json", "\xff\xfe", "damaged chunk record"),
    ],
)
def test_a_damaged_manifest_or_chunk_record_is_named_with_what_to_do(
    tiny_checkpoint, table, tmp_path, capsys, damaged, content, says
):
    out = tmp_path / "scored"
    job = sharded(tiny_checkpoint, table[1], out)
    main(job)
    (out / damaged).write_bytes(content.encode("latin-1"))
    message = refusal(capsys, *job)
    assert message.count("error:") == 1 and f"{out / damaged}: {says}" in message
    remedy = (
        "Choose another --output" if damaged == MANIFEST else "Delete it and its shard part-000001.parquet"
    )
    assert remedy in message


def test_merge_into_the_output_folder_is_refused_naming_both(tiny_checkpoint, table, tmp_path, capsys):
    out = tmp_path / "scored"
    for inside in (out / "all.parquet", out / "sub" / "all.csv"):
        message = refusal(capsys, *sharded(tiny_checkpoint, table[1], out), "--merge", str(inside))
        assert f"--merge {inside} is inside the output folder {out}" in message
    assert not out.exists()  # refused before anything was written


def test_swapped_shards_are_refused_by_the_merge(tiny_checkpoint, table, tmp_path, capsys):
    """Two shards' contents exchanged, then a shard copied over another's: the merge checks the `row`
    column and names the file, instead of writing 64 rows twice and 64 lost."""
    out, merged = tmp_path / "scored", tmp_path / "merged.csv"
    job = sharded(tiny_checkpoint, table[1], out)
    main(job)
    first, second = shard_path(out, 1), shard_path(out, 2)
    data_1, data_2 = first.read_bytes(), second.read_bytes()
    first.write_bytes(data_2)
    second.write_bytes(data_1)
    message = refusal(capsys, *job, "--merge", str(merged))
    assert (
        f"{first}: chunk 1 is rows 64..127 (64 rows) of the input, but this shard holds 128..191" in message
    )
    assert "Delete it and" in message and not merged.exists()

    first.write_bytes(data_1)
    second.write_bytes(shard_path(out, 3).read_bytes())  # the last chunk's 48 rows
    message = refusal(capsys, *job, "--merge", str(merged))
    assert f"{second}: chunk 2 is rows 128..191" in message and "holds 192..239 (48 rows)" in message
    assert not merged.exists()


def test_rerunning_a_finished_merge_job_succeeds_and_never_overwrites(
    tiny_checkpoint, table, tmp_path, capsys
):
    out, merged = tmp_path / "scored", tmp_path / "merged.parquet"
    job = [*sharded(tiny_checkpoint, table[1], out), "--merge", str(merged)]
    main(job)
    written, stamp = merged.read_bytes(), merged.stat().st_mtime_ns
    capsys.readouterr()

    main(job)  # the same command again: done already, says so, exit 0
    printed = capsys.readouterr().out
    assert printed.startswith("Nothing to do: this job is finished")
    assert f"{merged} already holds them, merged by an earlier run" in printed
    assert merged.read_bytes() == written and merged.stat().st_mtime_ns == stamp

    merged.write_bytes(b"the user's own file")  # no longer the merge: never overwritten
    message = refusal(capsys, *job)
    assert f"{merged} already exists" in message and merged.read_bytes() == b"the user's own file"


def test_a_model_giving_nan_leaves_rows_unscored_and_exit_status_3(
    tiny_checkpoint, table, tmp_path, monkeypatch, capsys
):
    """NaN scores are no scores: the row is counted as unscored, as a row that fails is, and the command
    exits 3 instead of 0 (the weights stay finite: the model's output is made NaN in-process)."""
    from toxicity.models.encoder import ToxicCommentTagger

    forward = ToxicCommentTagger.forward

    def nan_on_long_rows(self, input_ids, attention_mask):
        logits = forward(self, input_ids, attention_mask)
        logits[attention_mask.sum(dim=1) > 40] = float("nan")  # only "007", the long comment
        return logits

    monkeypatch.setattr(ToxicCommentTagger, "forward", nan_on_long_rows)
    out, merged = tmp_path / "scored", tmp_path / "merged.csv"
    with pytest.raises(SystemExit) as exit_status:
        main([*sharded(tiny_checkpoint, table[0], out), "--threshold", "0.5", "--merge", str(merged)])
    assert exit_status.value.code == SOME_ROWS_UNSCORED
    printed = capsys.readouterr().out
    assert "1 rows could not be scored" in printed and "the model gave a NaN or infinite score" in printed
    scores = pd.read_csv(merged, dtype={"id": str})
    unscored = scores[scores[TAGS].isna().all(axis=1)]
    assert unscored["id"].tolist() == ["007"] and unscored[PRED_COLUMNS].isna().all(axis=None)
    assert scores.drop(unscored.index)[TAGS].notna().all(axis=None)
