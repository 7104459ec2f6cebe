"""Ingest a CSV as whole processes: Keel's `ingest` next to pandas' and pyarrow's readers.

    .venv/bin/python bench/ingest.py [--rows 100000 1000000 10000000] [--repeats 5] [--data-dir DIR]

For each size, one CSV of N rows x 10 columns (6 floats, an integer, two categories, a 0/1
target) and, interleaved in every round: `python -c "import pandas; pandas.read_csv(F)"`,
`python -c "import pyarrow.csv; pyarrow.csv.read_csv(F)"` and `main.py ingest` into a copy of
a workspace whose project was created from the file's first rows. Wall time, CPU time and peak
RSS of each process; medians. Keel validates, cleans, de-duplicates, hashes and writes Parquet:
the readers only parse. Targets at 1M rows: Keel <= 2.5x pandas' time and <= 2x its peak memory;
at 10M rows (730 MB, read in chunks) Keel's peak memory <= 2 GB, whatever the readers take.
Prints a table and writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import (
    ROOT,
    fresh_copy,
    interleaved,
    keel_services,
    library_versions,
    print_table,
    run_process,
    summary,
    write_report,
)

TIME_RATIO_TARGET = 2.5
MEMORY_RATIO_TARGET = 2.0
PEAK_MB_TARGET = 2048  # at any size: ingest reads in chunks
CHUNK_ROWS = 200_000


def write_csv(path: Path, rows: int, seed: int = 7, categories: bool = True) -> Path:
    """The benchmark file, written in chunks so that 10M rows need no 10M-row frame.
    categories=False: its two category columns as numbers (what the numbers alone cost)."""
    import numpy as np
    import pandas as pd

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    with open(tmp, "w") as handle:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            chunk = pd.DataFrame({f"x{i}": rng.normal(size=n).round(6) for i in range(6 if categories else 8)})
            chunk["count"] = rng.integers(0, 1000, n)
            if categories:
                chunk["region"] = rng.choice(["north", "south", "east", "west"], n)
                chunk["plan"] = rng.choice(["basic", "plus", "pro"], n)
            chunk["y"] = (chunk["x0"] + rng.normal(size=n) > 0).astype(int)
            chunk.to_csv(handle, index=False, header=start == 0)
    tmp.rename(path)
    return path


def first_rows(data: Path, path: Path, rows: int = 2000) -> Path:
    """The header and the first rows of data, written to path (what the benchmarks' projects are created from)."""
    with open(data) as source, open(path, "w") as out:
        for _, line in zip(range(rows + 1), source, strict=False):
            out.write(line)
    return path


def keel_template(data: Path, folder: Path, preset: str = "logreg") -> Path:
    """A workspace with project `bench` (that model preset), created from the first 2,000 rows of data."""
    if (folder / "registry.db").exists():
        return folder
    seed = first_rows(data, folder.parent / f"{data.stem}-seed.csv")
    with keel_services(folder) as keel:
        keel.create_project("bench", seed, "y", settings={"preset": preset})
    return folder


def keel_ingest(template: Path, data: Path, scratch: Path):
    def run():
        workspace = fresh_copy(template, scratch)
        return run_process([sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace), "ingest", "bench",
                            str(data)], cwd=ROOT)
    return run


def reader(code: str, data: Path):
    return lambda: run_process([sys.executable, "-c", code.format(path=str(data))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "keel-bench-ingest"))
    parser.add_argument("--keel-only", action="store_true", help="skip the reference readers (the smoke test)")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    results, table = [], []
    for rows in args.rows:
        data = write_csv(data_dir / f"rows-{rows}.csv", rows)
        template = keel_template(data, data_dir / f"template-{rows}")
        with tempfile.TemporaryDirectory() as scratch:
            contenders = {"keel ingest": keel_ingest(template, data, Path(scratch))}
            if not args.keel_only:
                contenders["pandas.read_csv"] = reader("import pandas; pandas.read_csv({path!r})", data)
                contenders["pyarrow.csv.read_csv"] = reader("import pyarrow.csv; pyarrow.csv.read_csv({path!r})", data)
            runs = interleaved(contenders, args.repeats)
        entry = {"rows": rows, "file_mb": round(data.stat().st_size / 1e6, 1),
                 "results": {name: summary(r) for name, r in runs.items()}}
        if "pandas.read_csv" in entry["results"]:
            keel, pandas = entry["results"]["keel ingest"], entry["results"]["pandas.read_csv"]
            entry["time_ratio_vs_pandas"] = round(keel["seconds"] / pandas["seconds"], 2)
            entry["memory_ratio_vs_pandas"] = round(keel["peak_mb"] / pandas["peak_mb"], 2)
        results.append(entry)
        for name, result in entry["results"].items():
            table.append([f"{rows:,}", name, result["seconds"], result["cpu_seconds"], result["peak_mb"]])
    print_table(["rows", "process", "wall s", "cpu s", "peak MB"], table)
    for entry in results:
        peak = entry["results"]["keel ingest"]["peak_mb"]
        print(f"{entry['rows']:,} rows: Keel's peak memory {peak:,.0f} MB (target <= {PEAK_MB_TARGET:,})")
        if "time_ratio_vs_pandas" in entry:
            print(f"{entry['rows']:,} rows: Keel / pandas.read_csv = {entry['time_ratio_vs_pandas']}x time "
                  f"(target <= {TIME_RATIO_TARGET}), {entry['memory_ratio_vs_pandas']}x peak memory "
                  f"(target <= {MEMORY_RATIO_TARGET})")
    path = write_report("ingest", {"repeats": args.repeats, "libraries": library_versions(), "sizes": results,
                                   "targets": {"time_ratio": TIME_RATIO_TARGET, "memory_ratio": MEMORY_RATIO_TARGET,
                                               "keel_peak_mb": PEAK_MB_TARGET}},
                        Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
