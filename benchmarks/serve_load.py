"""Load test of `python -m toxicity.serve` on loopback: dynamic batching on vs off, torch vs ONNX int8.

    python -m benchmarks.serve_load --ckpt checkpoints/best-checkpoint.ckpt [--onnx exported/] [--quick]
    python -m benchmarks.serve_load --ckpt checkpoints/best-checkpoint.ckpt --spans [--rounds 3]

For each backend (PyTorch checkpoint; ONNX int8, exported to a temporary folder unless --onnx is given) and
each batching setting (--max-batch-size N vs 1), one server (1 worker) answers 1, 8 and 32 concurrent
clients, each sending one short comment per request on a keep-alive connection for --duration seconds
(after a 1 s warm-up): throughput and p50/p95/p99 latency. Then, on the batched torch server: its memory
(PSS summed over its processes; its inference worker's RSS and peak RSS) at start, once warm, and after
--requests more requests; then --malformed bad requests (bad JSON, wrong types, limits, wrong routes),
counting 5xx answers, and whether the server still answers. The clients run in this process, on the same
CPUs as the server.
Writes benchmarks/results/serve_load[-quick]-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).

--spans measures only the cost of per-sentence spans: comments:analyze on three-sentence comments at 8
concurrent clients, `spanAnnotations: true` (the comment and its three sentences scored in one worker
request) against `false` (one span over the comment: the path of before), in alternating rounds on one
batched torch server. Writes benchmarks/results/serve_load-spans-<YYYY-MM-DD>-<machine>.json and .md.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, Run, arguments, free_port, process_tree, table

COMMENTS = [
    "you are an idiot",
    "thanks for the fix",
    "great article, well sourced",
    "shut up, moron",
    "I will find you",
    "please add a citation here",
    "what a stupid edit",
    "nice work on the infobox",
    "go to hell",
    "I disagree with this change",
    "you people are disgusting",
    "welcome to wikipedia!",
]
CLIENTS = (1, 8, 32)


# ------------------------------------------------------------------------------------------- the server
def start_server(*args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "toxicity.serve", *args, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while post(port, "/health", method="GET")[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(f"the server did not start: python -m toxicity.serve {' '.join(args)}")
        time.sleep(0.3)
    return process, port


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def memory_mb(pid: int) -> dict:
    """The server's memory: PSS summed over all its processes (shared pages counted once), and the
    current and peak RSS of its inference worker (the process holding the model)."""
    pss, worker = 0, {}
    for member in process_tree(pid):
        rollup = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        pss += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        if "multiprocessing.spawn" in Path(f"/proc/{member}/cmdline").read_text():
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            worker = {
                line.split(":")[0]: int(line.split()[1])
                for line in status
                if line.startswith(("VmRSS", "VmHWM"))
            }
    return {
        "pss_mb": round(pss / 1024, 1),
        "worker_rss_mb": round(worker.get("VmRSS", 0) / 1024, 1),
        "worker_peak_rss_mb": round(worker.get("VmHWM", 0) / 1024, 1),
    }


# ------------------------------------------------------------------------------------------ the clients
def post(
    port: int,
    path: str,
    body: bytes | None = None,
    method: str = "POST",
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int | None, bytes]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        connection.close()
        return None, b""
    finally:
        if own:
            connection.close()


def predict_body(k: int) -> tuple[str, bytes]:
    return "/predict", json.dumps({"texts": [COMMENTS[k % len(COMMENTS)]]}).encode()


def client_loop(
    port: int,
    until: float,
    latencies: list,
    failures: list,
    start: int,
    count: int | None = None,
    request=predict_body,
):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = 0
    while time.monotonic() < until and (count is None or sent < count):
        path, body = request(start + sent)
        began = time.perf_counter()
        status, _ = post(port, path, body, connection=connection)
        latencies.append(time.perf_counter() - began)
        if status != 200:
            failures.append(status)
        sent += 1
    connection.close()


def run_clients(
    port: int, clients: int, seconds: float, count: int | None = None, request=predict_body
) -> tuple[list, list, float]:
    latencies, failures = [], []
    until = time.monotonic() + seconds
    per_client = None if count is None else -(-count // clients)
    threads = [
        threading.Thread(target=client_loop, args=(port, until, latencies, failures, k, per_client, request))
        for k in range(clients)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures, time.perf_counter() - began


def load(port: int, clients: int, seconds: float) -> dict:
    run_clients(port, clients, 1.0)  # warm-up
    latencies, failures, elapsed = run_clients(port, clients, seconds)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": len(failures),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


def memory(process: subprocess.Popen, port: int, requests: int, at_start: dict) -> dict:
    """Memory at start, after the load cells and 500 more requests (warm), and after `requests` more."""
    at = {"start": at_start}
    run_clients(port, 8, 600, count=500)
    at["warm"] = memory_mb(process.pid)
    latencies, failures, _ = run_clients(port, 8, 600, count=requests)
    at[f"after_{len(latencies)}_more"] = memory_mb(process.pid)
    return {"memory": at, "failures": len(failures)}


# ------------------------------------------------------------------------- per-sentence spans (--spans)
THREE_SENTENCES = [
    "Thanks for the fix. You are a stupid idiot though. Please stop editing this page.",
    "I read the article twice. It still makes no sense to me. Can someone add a source?",
    "Shut up, moron. Nobody asked for your opinion. Go back to your cave.",
    "Great work on the infobox. The dates look right now. Welcome to Wikipedia!",
    "This edit is vandalism. I will report you to the admins. Stop it now.",
    "What kind of idiot name is foo? Sorry, I like your name. Have a nice day.",
]


def analyze_body(spans: bool):
    def request(k: int) -> tuple[str, bytes]:
        body = {
            "comment": {"text": THREE_SENTENCES[k % len(THREE_SENTENCES)]},
            "requestedAttributes": {"TOXICITY": {}, "INSULT": {}},
            "spanAnnotations": spans,
        }
        return "/v1alpha1/comments:analyze", json.dumps(body).encode()

    return request


def span_latency(port: int, clients: int, seconds: float, rounds: int) -> dict:
    """comments:analyze on three-sentence comments with and without spanAnnotations, alternating
    `rounds` times so that a change in the machine's other load falls on both alike."""
    latencies = {False: [], True: []}
    failures = {False: 0, True: 0}
    for spans in (False, True):
        run_clients(port, clients, 1.0, request=analyze_body(spans))  # warm-up
    for _ in range(rounds):
        for spans in (False, True):
            measured, failed, _ = run_clients(port, clients, seconds, request=analyze_body(spans))
            latencies[spans] += measured
            failures[spans] += len(failed)
    cells = {}
    for spans, measured in latencies.items():
        cuts = statistics.quantiles(measured, n=100)
        cells["per_sentence" if spans else "one_span"] = {
            "requests": len(measured),
            "failures": failures[spans],
            "p50_ms": round(cuts[49] * 1000, 1),
            "p95_ms": round(cuts[94] * 1000, 1),
        }
    one, each = cells["one_span"], cells["per_sentence"]
    cells["ratio_p50"] = round(each["p50_ms"] / one["p50_ms"], 2)
    cells["ratio_p95"] = round(each["p95_ms"] / one["p95_ms"], 2)
    return cells


def spans_markdown(results: dict, date: str) -> str:
    cells = results["cells"]
    rows = []
    for name, label in (("one_span", "false (one span, the summary)"), ("per_sentence", "true")):
        cell = cells[name]
        spans = "1 over the comment" if name == "one_span" else "3, one per sentence"
        rows.append([label, spans, cell["requests"], cell["p50_ms"], cell["p95_ms"], cell["failures"]])
    header = ["spanAnnotations", "spans", "requests", "p50 ms", "p95 ms", "failures"]
    lines = [
        f"# comments:analyze with per-sentence spans ({date})",
        "",
        (
            f"{results['ckpt']} with PyTorch, 1 worker, {results['threads']} "
            f"thread(s), "
            f"--max-batch-size {results['max_batch_size']}, --batch-timeout {results['batch_timeout']}; "
            f"{results['clients']} concurrent clients on loopback, each sending three-sentence comments "
            f"(TOXICITY and INSULT), {results['rounds']} alternating rounds of {results['seconds']} s per "
            "setting."
        ),
        "",
        *table(header, rows, align="llrrrr"),
    ]
    lines += [
        "",
        (
            f"Per-sentence / one span: p50 {cells['ratio_p50']}x, p95 {cells['ratio_p95']}x "
            "(budget: at most 1.5x, p95 under 500 ms)."
        ),
        "",
    ]
    return "\n".join(lines)


def measure_spans(options: argparse.Namespace, run: Run) -> None:
    results = {
        "ckpt": options.ckpt,
        "threads": options.threads,
        "max_batch_size": options.max_batch_size,
        "batch_timeout": options.batch_timeout,
        "clients": 8,
        "rounds": options.rounds,
        "seconds": options.duration,
    }
    process, port = start_server(
        "--ckpt",
        options.ckpt,
        "--threads",
        str(options.threads),
        "--max-batch-size",
        str(options.max_batch_size),
        "--batch-timeout",
        str(options.batch_timeout),
    )
    try:
        results["cells"] = span_latency(port, 8, options.duration, options.rounds)
    finally:
        stop_server(process)
    print(spans_markdown(results, run.date))
    print(f"Wrote {run.write(results, spans_markdown(results, run.date), out=options.output)} and .md")


MALFORMED = [
    ("POST", "/predict", b'{"texts": ["unterminated'),
    ("POST", "/predict", b""),
    ("POST", "/predict", b"[1, 2]"),
    ("POST", "/predict", b'{"texts": "not a list"}'),
    ("POST", "/predict", b'{"texts": []}'),
    ("POST", "/predict", b'{"texts": [3, null]}'),
    ("POST", "/predict", b'{"texts": ["ok"], "threshold": "high"}'),
    ("POST", "/predict", b'{"texts": ["ok"], "threshold": 7}'),
    ("POST", "/predict", b'{"texts": ["ok"], "x": 1}'),
    ("POST", "/predict", json.dumps({"texts": ["ok"] * 65}).encode()),
    ("POST", "/predict", json.dumps({"texts": ["x" * 5001]}).encode()),
    ("POST", "/predict", b"\xff\xfe not utf-8"),
    ("GET", "/predict", None),
    ("POST", "/nowhere", b"{}"),
    ("POST", "/v1alpha1/comments:analyze", b'{"comment": {"text": "hi"}}'),
    (
        "POST",
        "/v1alpha1/comments:analyze",
        b'{"comment": {"text": "hi"}, "requestedAttributes": {"SPAM": {}}}',
    ),
    ("POST", "/v1alpha1/comments:analyze", b'{"comment": "hi", "requestedAttributes": {"TOXICITY": {}}}'),
    ("POST", "/predict", b'{"texts": ["' + b"a" * 1_100_000 + b'"]}'),  # over --max-body-bytes
]


def malformed(port: int, n: int) -> dict:
    statuses: dict[str, int] = {}
    for k in range(n):
        method, path, body = MALFORMED[k % len(MALFORMED)]
        status, _ = post(port, path, body, method=method)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    still_up = (
        post(port, "/health", method="GET")[0] == 200
        and post(port, "/predict", json.dumps({"texts": ["still there?"]}).encode())[0] == 200
    )
    server_errors = sum(
        count for status, count in statuses.items() if status.startswith("5") or status == "None"
    )
    return {
        "requests": n,
        "statuses": statuses,
        "server_errors_or_dropped": server_errors,
        "still_answers": still_up,
    }


# ------------------------------------------------------------------------------------------------- main
def export_int8(ckpt: str, folder: Path) -> Path:
    from toxicity.exporters.onnx import export_onnx

    export_onnx(ckpt, folder, int8=True)
    return folder


def markdown(results: dict, date: str) -> str:
    keys = ["backend", "batching", "clients", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "failures"]
    header = ["backend", "batching", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "failures"]
    lines = [
        f"# Serving load test ({date})",
        "",
        (
            f"Server: 1 worker, {results['threads']} torch/onnxruntime thread(s), "
            f"--batch-timeout {results['batch_timeout']}; clients in the same machine (loopback), "
            f"{results['seconds']} s per cell."
        ),
        "",
        *table(header, [[cell[key] for key in keys] for cell in results["cells"]], align="llrrrrrr"),
    ]
    lines += [
        "",
        "Batched / unbatched throughput: "
        + ", ".join(f"{key} {value}x" for key, value in results["batching_speedup"].items()),
        "",
    ]
    memory = [
        [stage, value["pss_mb"], value["worker_rss_mb"], value["worker_peak_rss_mb"]]
        for stage, value in results["memory"]["memory"].items()
    ]
    header = [
        "server memory, torch, batching on",
        "PSS of all processes, MB",
        "worker RSS, MB",
        "worker peak RSS, MB",
    ]
    lines += table(header, memory, align="lrrr")
    lines.append("")
    bad = results["malformed"]
    lines += [
        (
            f"Malformed requests: {bad['requests']}, statuses {bad['statuses']}, 5xx or dropped: "
            f"{bad['server_errors_or_dropped']}, server still answers: {bad['still_answers']}."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = arguments("serve_load", __doc__)
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt")
    parser.add_argument(
        "--onnx", help="an export folder with model.int8.onnx (default: export --ckpt to a temp folder)"
    )
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per cell")
    parser.add_argument("--requests", type=int, default=10_000, help="requests for the memory check")
    parser.add_argument("--malformed", type=int, default=1000)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1,000 requests, 200 malformed")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--spans",
        action="store_true",
        help="only comments:analyze on three-sentence comments at 8 clients, with and without "
        "spanAnnotations (writes serve_load_spans.json and .md)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --spans: alternating rounds")
    options = parser.parse_args(argv)
    run = Run.start("serve_load", "spans" if options.spans else "quick" if options.quick else None, argv)
    if options.spans:
        measure_spans(options, run)
        return
    if options.quick:
        options.duration, options.requests, options.malformed = 3.0, 1000, 200
    results = {
        "threads": options.threads,
        "batch_timeout": options.batch_timeout,
        "seconds": options.duration,
        "ckpt": options.ckpt,
        "cells": [],
    }
    with tempfile.TemporaryDirectory() as temporary:
        onnx = options.onnx or str(export_int8(options.ckpt, Path(temporary) / "onnx"))
        for backend, source in (
            ("torch", ["--ckpt", options.ckpt]),
            ("onnx-int8", ["--onnx", onnx, "--int8"]),
        ):
            for batching, size in (("on", options.max_batch_size), ("off", 1)):
                process, port = start_server(
                    *source,
                    "--threads",
                    str(options.threads),
                    "--max-batch-size",
                    str(size),
                    "--batch-timeout",
                    str(options.batch_timeout),
                )
                at_start = memory_mb(process.pid)
                try:
                    for clients in CLIENTS:
                        cell = {"backend": backend, "batching": f"{batching} ({size})"} | load(
                            port, clients, options.duration
                        )
                        print(json.dumps(cell), flush=True)
                        results["cells"].append(cell)
                    if backend == "torch" and batching == "on":
                        results["memory"] = memory(process, port, options.requests, at_start)
                        print(json.dumps(results["memory"]), flush=True)
                        results["malformed"] = malformed(port, options.malformed)
                        print(json.dumps(results["malformed"]), flush=True)
                finally:
                    stop_server(process)
    rate = {
        (c["backend"], c["batching"].split()[0], c["clients"]): c["throughput_rps"] for c in results["cells"]
    }
    results["batching_speedup"] = {
        f"{backend} {clients} clients": round(rate[backend, "on", clients] / rate[backend, "off", clients], 2)
        for backend in ("torch", "onnx-int8")
        for clients in CLIENTS
    }
    print(markdown(results, run.date))
    print(f"Wrote {run.write(results, markdown(results, run.date), out=options.output)} and .md")


if __name__ == "__main__":
    main()
