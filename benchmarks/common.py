"""What every benchmark shares: where things are, the record of the machine and its load, and the one way
to write a result.

    from benchmarks.common import ROOT, SHARED_DATA, Run

    run = Run.start("serve_load", variant="spans")     # the date, the command, the machine, the load now
    ...                                                # measure
    run.write(figures, markdown)                       # benchmarks/results/<name>.json and .md, atomically

Every result is named `<benchmark>[-<variant>]-<YYYY-MM-DD>-<machine>` (RESULT_NAME): the benchmark is
the script's module name (`serve_load` for `python -m benchmarks.serve_load`), the variant a setting that
makes a different measurement (`spans`, `quick`), the date the UTC day the run started, the machine
`cpu`, or the GPU it could use (`h200`), or $TOXICITY_BENCHMARK_MACHINE. Every JSON holds the same keys:
RECORD_KEYS, with the benchmark's own figures (and its settings) under `figures`; every .md ends with the
same environment section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIXTURES = ROOT / "benchmarks" / "fixtures"
SHARED_DATA = Path(os.environ.get("TOXICITY_SHARED_DATA", ROOT.parent / "shared" / "data"))
MACHINE_VARIABLE = "TOXICITY_BENCHMARK_MACHINE"
VERSIONS = {  # the record's key: the distribution's name
    "torch": "torch",
    "pytorch_lightning": "pytorch-lightning",
    "transformers": "transformers",
    "scikit-learn": "scikit-learn",
}

RESULT_NAME = re.compile(
    r"(?P<benchmark>[a-z0-9_]+)(?:-(?P<variant>[a-z0-9_]+))?-(?P<date>\d{4}-\d{2}-\d{2})-(?P<machine>[a-z0-9_]+)"
)
RECORD_KEYS = ("benchmark", "variant", "date", "started", "seconds", "command", "machine", "load", "figures")


def arguments(benchmark: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.<benchmark>`, its module docstring as the help."""
    return argparse.ArgumentParser(
        prog=f"python -m benchmarks.{benchmark}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ------------------------------------------------------------------------------------------ naming
def result_name(benchmark: str, date: str, machine: str, variant: str | None = None) -> str:
    """`<benchmark>[-<variant>]-<YYYY-MM-DD>-<machine>`; refuses a part that would make it ambiguous."""
    name = "-".join(part for part in (benchmark, variant, date, machine) if part)
    parts = RESULT_NAME.fullmatch(name)
    if not parts or parts.groups() != (benchmark, variant or None, date, machine):
        raise ValueError(
            f"{name!r} does not follow <benchmark>[-<variant>]-<YYYY-MM-DD>-<machine> "
            "(each part of lowercase letters, digits and '_')"
        )
    return name


def slug(text: str) -> str:
    """A name part from free text: lowercase, runs of anything but letters and digits as one '_'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def machine_label() -> str:
    """`cpu`, or the GPU's model (`h100`, `h200`, `a100`) where there is one; the environment may say."""
    if os.environ.get(MACHINE_VARIABLE):
        return slug(os.environ[MACHINE_VARIABLE])
    gpu = gpu_name()
    if gpu is None:
        return "cpu"
    model = re.search(r"\b([A-Za-z]+\d+[A-Za-z]*)\b", gpu.replace("NVIDIA", ""))
    return slug(model.group(1)) if model else "gpu"


# ------------------------------------------------------------------------------------- environment
def machine() -> dict:
    """The machine and the versions that decide speed and numerics. Nothing is imported: a child process
    started later would count this one's memory in its own peak RSS (Linux carries it over exec)."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{key: _version(package) for key, package in VERSIONS.items()},
        "gpu": gpu_name(),
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name, from nvidia-smi (None without one)."""
    if not shutil.which("nvidia-smi"):
        return None
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    names = listed.stdout.strip().splitlines() if listed.returncode == 0 else []
    return names[0].strip() if names else None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def busy_processes(window_s: float = 0.5, most: int = 5) -> list[str]:
    """The processes that used the CPU during the next `window_s` seconds, busiest first, as
    `<% of one core> <command line>` (this process left out; [] where /proc is absent)."""
    if not Path("/proc/self/stat").exists():
        return []
    before = _cpu_ticks()
    time.sleep(window_s)
    after = _cpu_ticks()
    per_second = os.sysconf("SC_CLK_TCK") * window_s
    used = {pid: (ticks - before[pid]) / per_second for pid, ticks in after.items() if pid in before}
    busiest = sorted((share, pid) for pid, share in used.items() if share >= 0.01 and pid != os.getpid())
    return [f"{100 * share:.0f}% {_command_line(pid)}" for share, pid in reversed(busiest[-most:])]


def _cpu_ticks() -> dict[int, int]:
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        ticks[int(stat.parent.name)] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def _command_line(pid: int) -> str:
    try:
        words = [
            word.decode(errors="replace") for word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
        text = " ".join([Path(words[0]).name, *words[1:]]).strip()  # the program's name, not its path
        return (text or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]")[:160]
    except OSError:
        return f"[pid {pid}, ended]"


# --------------------------------------------------------------------------------------- processes
def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc), each before its children."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue  # the task ended meanwhile
    return pids


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------- markdown
def table(header: Sequence[str], rows: Iterable[Sequence], align: str = "") -> list[str]:
    """A markdown table's lines; `align` has one letter per column, `r` for right-aligned (default left)."""
    rule = ["---:" if letter == "r" else "---" for letter in align.ljust(len(header), "l")]
    return [_row(header), _row(rule), *(_row(cells) for cells in rows)]


def _row(cells: Iterable) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


# ------------------------------------------------------------------------------------------ results
class Run:
    """One benchmark run: what is known when it starts (`Run.start`), and the one writer of its result."""

    def __init__(self, benchmark: str, variant: str | None, argv: Sequence[str]):
        self.benchmark, self.variant = benchmark, variant
        self.command = shlex.join(["python", "-m", f"benchmarks.{benchmark}", *argv])
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.clock = time.monotonic()
        self.machine, self.label = machine(), machine_label()
        self.load_start, self.busy_at_start = load_average(), busy_processes()

    @classmethod
    def start(cls, benchmark: str, variant: str | None = None, argv: Sequence[str] | None = None) -> Run:
        """Records the command, the UTC start, the machine, the load average and the busy processes."""
        return cls(benchmark, variant, list(sys.argv[1:] if argv is None else argv))

    @property
    def date(self) -> str:
        return self.started[:10]

    @property
    def name(self) -> str:
        return result_name(self.benchmark, self.date, self.label, self.variant)

    def record(self, figures: dict, finished: bool = True) -> dict:
        """The JSON: RECORD_KEYS, in that order. A record written before the end (`finished` False) has
        no load at the end."""
        return {
            "benchmark": self.benchmark,
            "variant": self.variant,
            "date": self.date,
            "started": self.started,
            "seconds": round(time.monotonic() - self.clock, 1),
            "command": self.command,
            "machine": self.machine,
            "load": {
                "start": self.load_start,
                "end": load_average() if finished else None,
                "busy_at_start": self.busy_at_start,
                "busy_at_end": busy_processes() if finished else None,
            },
            "figures": figures,
        }

    def write(self, figures: dict, markdown: str | None = None, out: Path | None = None) -> Path:
        """Writes `<out>/<name>.json` (and `<name>.md`: `markdown`, then the environment) atomically;
        returns the JSON's path. Without `markdown` only the JSON is written: a record so far, mid-run."""
        from toxicity.core.files import write_text_atomically  # here: children that import this stay small

        out = Path(out or RESULTS)
        record = self.record(figures, finished=markdown is not None)
        path = out / f"{self.name}.json"
        write_text_atomically(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        if markdown is not None:
            write_text_atomically(path.with_suffix(".md"), markdown.rstrip("\n") + "\n" + environment(record))
        return path


def environment(record: dict) -> str:
    """The .md's closing section: the command, when, the machine and its load."""
    env, load = record["machine"], record["load"]
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ", no GPU"
    lines = [
        "",
        "## Environment",
        "",
        f"- command: `{record['command']}`",
        f"- started {record['started'][:16].replace('T', ' ')} UTC, took {record['seconds']:.0f} s",
        (
            f"- machine: {env['cpu']}, {env['cores']} cores{gpu}; Python {env['python']}, "
            f"torch {env['torch']}, Lightning {env['pytorch_lightning']}, "
            f"transformers {env['transformers']}, scikit-learn {env['scikit-learn']}"
        ),
        f"- load average (1, 5, 15 min): {_triple(load['start'])} at start, {_triple(load['end'])} at end",
    ]
    for moment in ("start", "end"):
        busy = load.get(f"busy_at_{moment}")
        lines.append(f"- busy at {moment} (% of one core):" + ("" if busy else " nothing"))
        lines += [f"  - `{line}`" for line in busy or []]
    return "\n".join(lines) + "\n"


def _triple(values: Sequence[float] | None) -> str:
    return " / ".join(f"{value:.2f}" for value in values) if values else "n/a"
