"""How long `toxicity --help`, `--version` and each `toxicity <command> --help` take, each in a fresh process
(what a user waits for), and which heavy modules each imported. The goal: under 1 s on 2 CPU cores, fit's
included (it prints the saved copy of LightningCLI's help; tests/test_cli.py keeps the copy true).

    python -m benchmarks.cli_help [--repeats 5]
"""

from __future__ import annotations

import ast
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, Run, arguments, table
from toxicity.__main__ import COMMANDS

HEAVY = ("torch", "pytorch_lightning", "transformers", "onnxruntime", "litserve")
GOAL_S = 1.0
IMPORTED = (
    "import sys, runpy\nsys.argv = ['toxicity', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('toxicity', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)"
)


def seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "toxicity", *args], cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - started


def heavy_imports(args: list[str]) -> list[str]:
    said = subprocess.run(
        [sys.executable, "-c", IMPORTED, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    line = [row for row in said.stderr.splitlines() if row.startswith("HEAVY ")][-1]
    return ast.literal_eval(line.removeprefix("HEAVY "))


def main(argv: list[str] | None = None) -> None:
    parser = arguments("cli_help", __doc__)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each, the median reported")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run.start("cli_help", argv=argv)
    cases = [["--help"], ["--version"], *([name, "--help"] for name in COMMANDS)]
    seconds(["--version"])  # warm the file cache once
    results = {"repeats": args.repeats, "goal_s": GOAL_S, "commands": {}}
    for case in cases:
        times = [seconds(case) for _ in range(args.repeats)]
        results["commands"][" ".join(case)] = {
            "median_s": statistics.median(times),
            "max_s": max(times),
            "heavy_imports": heavy_imports(case),
        }
    report = markdown(results, run.date)
    print(report)
    print(f"Wrote {run.write(results, report, out=args.output)} and .md")


def markdown(results: dict, date: str) -> str:
    rows = [
        [
            f"`toxicity {case}`",
            f"{figure['median_s']:.2f}",
            f"{figure['max_s']:.2f}",
            ", ".join(figure["heavy_imports"]) or "none",
            "yes" if figure["median_s"] < results["goal_s"] else "no",
        ]
        for case, figure in results["commands"].items()
    ]
    return "\n".join(
        [
            f"# Help and version times ({date})",
            "",
            (
                f"Each in a fresh process, median and max of {results['repeats']} runs; goal under "
                f"{results['goal_s']:g} s; fit's help is the saved copy of LightningCLI's (fit_help.txt)."
            ),
            "",
            *table(["command", "median s", "max s", "heavy modules imported", "under goal"], rows, "lrrll"),
        ]
    )


if __name__ == "__main__":
    main()
