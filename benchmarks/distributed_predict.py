"""`python -m toxicity.predict --output DIR` on the 2 CPU cores: 1 process x 2 threads vs 2 processes x 1
thread (Lightning's launcher, gloo), peak RSS per process, and the cost of resuming after a killed rank.

    python -m benchmarks.distributed_predict [--rows 50000] [--ckpt checkpoints/best-checkpoint.ckpt]

The input is built from the real Jigsaw test comments (../shared/data/jigsaw_sample/test.csv.gz, 2,514
comments): row k is comment k mod 2,514 with the id `<jigsaw id>-<k div 2,514>`, so every id is unique and
the texts are real (each repeated about 20 times for 50,000 rows), written as Parquet in a temporary
folder (never in the repository). Each setting scores it into a fresh folder with the same command a user
runs; the RSS of every process is read from /proc every 0.5 s. The two outputs are merged and compared
(ids, scores within 1e-5). Resume: the 2-process run again, rank 1 SIGKILLed once half the chunks are
done (Lightning's launcher then ends rank 0), then the same command again; the overhead is the two runs'
time minus the uninterrupted run's. The machine's load average is recorded, since other work shares the
cores. Writes benchmarks/results/distributed_predict-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, SHARED_DATA, Run, arguments, process_tree, table

SUMMARY = re.compile(r"Scored (\d+) comments in ([\d.]+) s \(([\d.]+) comments/s\)")


# ------------------------------------------------------------------------------------------ the input
def build_input(rows: int, path: Path, row_group_rows: int) -> int:
    """`rows` unique-id rows cycling through the Jigsaw test comments; returns how many distinct texts."""
    import pandas as pd

    test = pd.read_csv(SHARED_DATA / "jigsaw_sample" / "test.csv.gz", keep_default_na=False)
    copy, position = divmod(pd.RangeIndex(rows).to_numpy(), len(test))
    frame = pd.DataFrame(
        {
            "id": test["id"].to_numpy()[position] + "-" + pd.Series(copy).astype(str).to_numpy(),
            "comment_text": test["comment_text"].to_numpy()[position],
        }
    )
    assert frame["id"].is_unique
    frame.to_parquet(path, index=False, row_group_size=row_group_rows)
    return len(test)


# ---------------------------------------------------------------------------------------- one command
def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_predict(args: list[str], threads: int, kill_rank_1_at: int | None = None, folder: Path | None = None):
    """Runs `python -m toxicity.predict args`; RSS of every process of its tree over time; optionally
    SIGKILLs the child rank once `kill_rank_1_at` chunk records exist in `folder`."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    command = [sys.executable, "-m", "toxicity.predict", *args]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    samples: dict[int, list[tuple[float, float]]] = {}
    loads, killed = [], None
    while process.poll() is None:
        now = time.perf_counter() - started
        for pid in process_tree(process.pid):
            rss = rss_mb(pid)
            if rss is not None:
                samples.setdefault(pid, []).append((now, rss))
        loads.append(os.getloadavg()[0])
        if kill_rank_1_at is not None and killed is None:
            done = len(list((folder / "_done").glob("*.json"))) if (folder / "_done").is_dir() else 0
            children = process_tree(process.pid)[1:]
            if done >= kill_rank_1_at and children:
                killed = children[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.5)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    match = SUMMARY.search(stdout)
    if kill_rank_1_at is None and (process.returncode != 0 or match is None):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    ranks = sorted(samples, key=lambda pid: (pid != process.pid, pid))
    return {
        "command": f"OMP_NUM_THREADS={threads} python -m toxicity.predict {' '.join(args)}",
        "returncode": process.returncode,
        "wall_s": round(wall, 1),
        "scored": int(match.group(1)) if match else None,
        "scoring_s": float(match.group(2)) if match else None,
        "comments_per_s": float(match.group(3)) if match else None,
        "load_average_mean": round(sum(loads) / max(1, len(loads)), 2),
        "processes": [rss_profile(samples[pid]) for pid in ranks if len(samples[pid]) > 2],
        "killed_pid": killed,
        "summary_line": next((line for line in stdout.splitlines() if line.startswith("Scored")), None),
    }


def rss_profile(samples: list[tuple[float, float]]) -> dict:
    """Peak RSS, and RSS at each quarter of the process's life (flat memory: the quarters stay level)."""
    end = samples[-1][0]
    quarters = [next(rss for t, rss in samples if t >= end * q) for q in (0.25, 0.5, 0.75, 1.0)]
    return {
        "peak_rss_mb": round(max(rss for _, rss in samples), 1),
        "rss_mb_at_quarters": [round(q, 1) for q in quarters],
    }


# --------------------------------------------------------------------------------------------- checks
def steady_throughput(folder: Path) -> float | None:
    """Comments/s while every rank was scoring: the rows of the chunks finished between the moment the last
    rank finished its first chunk and the moment the first rank finished its last, over that time (start-up
    and the uneven tail left out)."""
    records = [
        json.loads(path.read_text()) | {"at": path.stat().st_mtime}
        for path in (folder / "_done").glob("*.json")
    ]
    by_rank: dict[int, list[float]] = {}
    for record in records:
        by_rank.setdefault(record["rank"], []).append(record["at"])
    start, end = max(min(times) for times in by_rank.values()), min(max(times) for times in by_rank.values())
    rows = sum(record["rows"] for record in records if start < record["at"] <= end)
    return round(rows / (end - start), 2) if end > start else None


def compare(folder_a: Path, folder_b: Path) -> dict:
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(folder_a).sort_values("row")
    b = pd.read_parquet(folder_b).sort_values("row")
    tags = [c for c in a.columns if c not in ("row", "id")]
    return {
        "rows": len(a),
        "ids_equal_in_order": a["id"].tolist() == b["id"].tolist(),
        "ids_unique": bool(a["id"].is_unique),
        "max_abs_score_difference": float(np.abs(a[tags].to_numpy() - b[tags].to_numpy()).max()),
    }


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = arguments("distributed_predict", __doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "best-checkpoint.ckpt")
    parser.add_argument("--chunk-rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.ckpt.is_file():
        raise SystemExit(
            f"{args.ckpt}: no checkpoint; train the demo one with `python -m toxicity.fit` (~90 s)."
        )
    if not (SHARED_DATA / "jigsaw_sample").is_dir():
        raise SystemExit(f"{SHARED_DATA / 'jigsaw_sample'} is absent (set TOXICITY_SHARED_DATA).")
    work = args.work or Path(tempfile.mkdtemp(prefix="distributed_predict-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("one", "two", "resumed"):
        if (work / name).exists():
            raise SystemExit(f"{work / name} exists; give an empty --work folder.")
    source = work / "comments.parquet"
    distinct = build_input(args.rows, source, row_group_rows=10_000)
    common = ["--ckpt", str(args.ckpt), "--data", str(source), "--chunk-rows", str(args.chunk_rows)]
    common += ["--batch-size", str(args.batch_size), "--accelerator", "cpu"]
    run = Run.start("distributed_predict", argv=argv)
    runs = {
        "1 process x 2 threads": run_predict([*common, "--output", str(work / "one"), "--devices", "1"], 2),
        "2 processes x 1 thread": run_predict([*common, "--output", str(work / "two"), "--devices", "2"], 1),
    }
    one, two = runs["1 process x 2 threads"], runs["2 processes x 1 thread"]
    one["steady_comments_per_s"] = steady_throughput(work / "one")
    two["steady_comments_per_s"] = steady_throughput(work / "two")
    result = {
        "input": {
            "rows": args.rows,
            "distinct_texts": distinct,
            "built_from": "jigsaw_sample/test.csv.gz, comment k mod 2,514, id '<jigsaw id>-<k div 2,514>'",
            "chunk_rows": args.chunk_rows,
            "batch_size": args.batch_size,
        },
        "checkpoint": str(args.ckpt),
        "runs": runs,
        "two_over_one_throughput": round(two["comments_per_s"] / one["comments_per_s"], 3),
        "two_over_one_steady_throughput": round(
            two["steady_comments_per_s"] / one["steady_comments_per_s"], 3
        ),
        "one_vs_two_outputs": compare(work / "one", work / "two"),
    }
    if not args.skip_resume:
        chunks = -(-args.rows // args.chunk_rows)
        folder = work / "resumed"
        killed = run_predict([*common, "--output", str(folder), "--devices", "2"], 1, chunks // 2, folder)
        finished = len(list((folder / "_done").glob("*.json")))
        rerun = run_predict([*common, "--output", str(folder), "--devices", "2"], 1)
        noop = run_predict([*common, "--output", str(folder), "--devices", "2"], 1)
        result["resume"] = {
            "killed_run": killed,
            "chunks_finished_before_the_kill": finished,
            "chunks": chunks,
            "rerun": rerun,
            "rerun_of_a_finished_folder": noop,
            "overhead_s": round(killed["wall_s"] + rerun["wall_s"] - two["wall_s"], 1),
            "resumed_vs_uninterrupted": compare(folder, work / "two"),
        }
    print(markdown(result, run.date))
    print(f"Wrote {run.write(result, markdown(result, run.date), out=args.output)} and .md")


def markdown(result: dict, date: str) -> str:
    inp, check = result["input"], result["one_vs_two_outputs"]
    setup = (
        f"{date}; {inp['rows']:,} rows built from the {inp['distinct_texts']:,} real Jigsaw test "
        f"comments (unique ids, each text repeated); chunks of {inp['chunk_rows']:,} rows, batches of "
        f"{inp['batch_size']}; checkpoint `{result['checkpoint']}`."
    )
    header = [
        "setting",
        "comments/s (summary line)",
        "comments/s (all ranks scoring)",
        "wall s (with start-up)",
        "peak RSS per process, MB",
        "RSS at each quarter of the run, MB",
        "mean load average",
    ]
    cells = [
        [
            name,
            run["comments_per_s"],
            run["steady_comments_per_s"],
            run["wall_s"],
            ", ".join(str(p["peak_rss_mb"]) for p in run["processes"]),
            "; ".join(", ".join(map(str, p["rss_mb_at_quarters"])) for p in run["processes"]),
            run["load_average_mean"],
        ]
        for name, run in result["runs"].items()
    ]
    lines = [
        f"# Distributed scoring on {os.cpu_count()} CPU cores (`python -m benchmarks.distributed_predict`)",
        "",
        setup,
        "",
        *table(header, cells),
    ]
    ratio = (
        f"2 processes / 1 process: **{result['two_over_one_steady_throughput']}x** while all ranks score, "
        f"{result['two_over_one_throughput']}x by the summary lines (whose time starts when the Trainer is "
        "built, so it includes the second process's start-up: importing torch, reading the checkpoint). "
        "Wall time includes Python start-up and the checkpoint read. Outputs: ids equal in order "
        f"{check['ids_equal_in_order']}, unique {check['ids_unique']}, largest score difference "
        f"{check['max_abs_score_difference']:.2g}."
    )
    lines += ["", ratio]
    if "resume" in result:
        resume = result["resume"]
        same = resume["resumed_vs_uninterrupted"]
        text = (
            f"Resume: rank 1 SIGKILLed after {resume['chunks_finished_before_the_kill']} of "
            f"{resume['chunks']} chunks ({resume['killed_run']['wall_s']} s); the same command again "
            f"finished the rest in {resume['rerun']['wall_s']} s; overhead against the uninterrupted run: "
            f"**{resume['overhead_s']} s**. Rerun of the finished folder: "
            f"{resume['rerun_of_a_finished_folder']['wall_s']} s (start-up and reading the input; nothing "
            f"scored). Resumed vs uninterrupted: ids equal {same['ids_equal_in_order']}, largest score "
            f"difference {same['max_abs_score_difference']:.2g}."
        )
        lines += ["", text]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
