"""What several sources cost (issue 29): training time against the rows drawn an epoch, and memory against
the number of sources, the rows held the same.

    python -m benchmarks.sources_cost                 # about 8 minutes on 2 quiet CPU cores

The same jigsaw_sample training rows, written once as one table and once cut into five tables, are each
trained as `data.sources` through `python -m toxicity.fit` (the default recipe, one epoch, one validation
batch) drawing --rows rows an epoch. Each fit's wall time and its process's peak resident memory are
recorded; the seconds a drawn row costs are the slope of a least-squares line through (rows, seconds),
and what is left at zero rows (the intercept) is the fixed cost: start-up, reading, validation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED_DATA, Run, arguments, table
from benchmarks.cross_dataset import train

PARTS = 5


def write_tables(jigsaw: Path, folder: Path) -> dict[str, list[dict]]:
    """The jigsaw training rows as one source and as PARTS sources (disjoint rows, the same in all)."""
    from toxicity.core.tags import LABELS, TEXT_COLUMN
    from toxicity.data.multisource import read_raw_splits, read_sources

    (source,) = read_sources([{"path": str(jigsaw)}], LABELS)
    rows = read_raw_splits(source)["train"][["id", "text", *LABELS]].rename(columns={"text": TEXT_COLUMN})
    rows.to_csv(folder / "one.csv", index=False)
    parts = []
    for k, part in enumerate(np.array_split(np.arange(len(rows)), PARTS)):
        rows.iloc[part].to_csv(folder / f"part{k}.csv", index=False)
        parts.append({"name": f"part{k}", "path": str(folder / f"part{k}.csv")})
    return {"1 source": [{"name": "one", "path": str(folder / "one.csv")}], f"{PARTS} sources": parts}


def markdown(figures: dict) -> str:
    rows = [
        [layout, fit["rows_per_epoch"], f"{fit['fit_seconds']:.1f}", fit["fit_peak_rss_mb"]]
        for layout, fits in figures["fits"].items()
        for fit in fits
    ]
    lines = [
        "# What several sources cost",
        "",
        "The same jigsaw_sample training rows as one source and as five; the default recipe, one epoch, one "
        "validation batch. Settings: " + str(figures["settings"]) + ".",
        "",
        *table(["sources", "rows drawn", "fit s", "fit peak MB"], rows, "lrrr"),
        "",
    ]
    lines += table(
        ["sources", "s per 1,000 rows drawn (slope)", "fixed s (intercept)", "R^2", "peak MB, median"],
        [
            [layout, f"{line['per_1000_rows']:.1f}", f"{line['fixed']:.1f}", f"{line['r2']:.3f}", line["rss"]]
            for layout, line in figures["lines"].items()
        ],
        "lrrrr",
    )
    return "\n".join(lines) + "\n"


def line(fits: list[dict]) -> dict:
    """Least squares seconds = fixed + slope x rows, its R^2, and the median peak memory."""
    rows = np.array([fit["rows_per_epoch"] for fit in fits], dtype=float)
    seconds = np.array([fit["fit_seconds"] for fit in fits])
    slope, fixed = np.polyfit(rows, seconds, 1)
    residual = seconds - (fixed + slope * rows)
    r2 = 1 - residual.var() / seconds.var() if seconds.var() > 0 else 1.0
    return {
        "per_1000_rows": round(1000 * slope, 2),
        "fixed": round(fixed, 1),
        "r2": round(float(r2), 4),
        "rss": int(np.median([fit["fit_peak_rss_mb"] for fit in fits])),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = arguments("sources_cost", __doc__)
    parser.add_argument("--data-root", type=Path, default=SHARED_DATA)
    parser.add_argument("--rows", type=int, nargs="+", default=[480, 1440, 2880], help="rows drawn an epoch")
    parser.add_argument("--output", type=Path, default=None, help="the results folder")
    args = parser.parse_args(argv)
    if len(set(args.rows)) < 2:
        parser.error("--rows needs two different counts at least: the cost per row is a line's slope")
    jigsaw = (args.data_root / "jigsaw_sample").resolve()
    if not jigsaw.is_dir():
        parser.error(f"{jigsaw} is absent (give --data-root)")
    run = Run.start("sources_cost", None, argv)
    budget = {"epochs": 1, "val_batches": 1, "max_length": 96}
    figures = {"settings": {**budget, "family": "encoder", "seed": 42}, "fits": {}, "lines": {}}
    with tempfile.TemporaryDirectory(prefix="sources_cost-") as scratch:
        folder = Path(scratch)
        layouts = write_tables(jigsaw, folder)
        for rows in args.rows:  # interleaved, so a change in the machine's load falls on both layouts
            for layout, entries in layouts.items():
                fitted = train(
                    folder / f"{layout.split()[0]}-{rows}",
                    entries,
                    "encoder",
                    42,
                    1.0,
                    {**budget, "rows_per_epoch": rows},
                )
                fitted.pop("checkpoint")
                figures["fits"].setdefault(layout, []).append({"rows_per_epoch": rows, **fitted})
                print(layout, rows, fitted, flush=True)
    figures["lines"] = {layout: line(fits) for layout, fits in figures["fits"].items()}
    path = run.write(figures, markdown(figures), args.output)
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
