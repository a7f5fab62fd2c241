"""Peak memory of `python -m toxicity.feedback export` against the number of stored suggestions: the export
streams (only the columns it writes, 1,000 rows a fetch, each comment written as its group ends), so its
peak should not grow with the table. Each database holds distinct comments, two attributes each, and a
third of the rows carry 10,000-character client ids the export never reads (the issue's attack made them
300,000 characters).

    python -m benchmarks.feedback_export [--rows 10000 100000] [--db-url postgresql+psycopg://...]

Each export runs in a fresh process that reports its own peak RSS. Without --db-url the databases are
SQLite files in a temporary folder; with it, the table there is dropped and refilled for each size.
Writes benchmarks/results/feedback_export[-postgresql]-<YYYY-MM-DD>-<machine>.json and .md
(benchmarks.common).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.common import RESULTS, ROOT, Run, arguments, table
from toxicity.serving.perspective.store import (
    TABLE,
    Suggestion,
    comment_hash,
    connect,
    create_table,
    database_url,
)
from toxicity.serving.perspective.store import feedback as feedback_table

REPORT_PEAK = (
    "import resource, sys; from toxicity.feedback import main; main(sys.argv[1:]); "
    "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)


def fill(url: str, rows: int) -> None:
    engine = connect(database_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        create_table(engine)
        for start in range(0, rows, 5000):
            batch = []
            for number in range(start, min(rows, start + 5000)):
                text = f"comment number {number}: you are {'an idiot' if number % 2 else 'welcome'}"
                value = float(number % 2)
                scores = {name: {"summaryScore": value, "spanScores": []} for name in ("TOXICITY", "INSULT")}
                row = Suggestion(text, scores, "0" * 64).row(None)
                row["client_token"] = "t" * 10_000 if number % 3 == 0 else None
                row["comment_hash"] = comment_hash(text)
                batch.append(row)
            with engine.begin() as connection:
                connection.execute(feedback_table.insert(), batch)
    finally:
        engine.dispose()


def export_peak(url: str, out: Path) -> dict:
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-c", REPORT_PEAK, "export", "--feedback-db", url, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kb = int(finished.stderr.split("peak_kb")[-1].split()[0])
    return {"peak_rss_mb": peak_kb / 1024, "seconds": time.perf_counter() - started, "said": finished.stdout}


def markdown(results: dict) -> str:
    header = ["rows", "comments written", "peak RSS (MB)", "seconds", "database size (MB)"]
    cells = [
        [
            f"{size['rows']:,}",
            f"{size['written']:,}",
            f"{size['peak_rss_mb']:.0f}",
            f"{size['seconds']:.1f}",
            "n/a" if size["database_mb"] is None else round(size["database_mb"]),
        ]
        for size in results["sizes"]
    ]
    lines = [
        "# Feedback export: peak memory against stored rows",
        "",
        (
            f"`python -m benchmarks.feedback_export` on {results['database']}. "
            "Each export in a fresh process; peak RSS as the process reports it (imports included)."
        ),
        "",
        *table(header, cells),
    ]
    lines += ["", f"Peak at the largest size over the smallest: {results['peak_ratio']:.2f}x."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("feedback_export", __doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db-url", help="a PostgreSQL URL (its toxicity_feedback table is replaced)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = Run.start("feedback_export", "postgresql" if args.db_url else None, argv)
    sizes = []
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            url = args.db_url or str(Path(folder) / f"feedback-{rows}.sqlite")
            fill(url, rows)
            database_mb = None if args.db_url else os.path.getsize(url) / 1e6
            measured = export_peak(url, Path(folder) / f"feedback-{rows}.csv")
            written = int(measured.pop("said").split("wrote ")[1].split()[0])
            sizes.append({"rows": rows, "written": written, "database_mb": database_mb, **measured})
            print(f"{rows:>8,} rows: peak {measured['peak_rss_mb']:.0f} MB, {measured['seconds']:.1f} s")
    results = {
        "database": "PostgreSQL" if args.db_url else "SQLite",
        "sizes": sizes,
        "peak_ratio": sizes[-1]["peak_rss_mb"] / sizes[0]["peak_rss_mb"],
    }
    print(f"Wrote {run.write(results, markdown(results), out=args.output)} and .md")
    return results


if __name__ == "__main__":
    main()
