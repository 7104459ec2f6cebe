"""Peak memory of monitoring one big batch: `monitor NAME --once` on a batch of --rows rows.

    nice .venv/bin/python bench/monitor_memory.py --rows 5000000 --before /tmp/keel-before

A project (bench/ingest.py's file shape: 6 floats, an integer, 2 categories, a 0/1 target;
--preset, hgb by default, Keel's default) is created from the file's first 2,000 rows, trained and deployed;
then the whole file is ingested as one batch, untimed. Timed, as whole processes on copies of that
workspace (interleaved, medians of --repeats): `monitor NAME --once` evaluating the batch (the
metric, drift, the policy's change detector), and, as the reference, `pandas.read_parquet` of the
stored batch alone (the data the cycle works on). --before DIR runs the same `monitor --once`
with an older checkout's main.py (the workspace is built with that checkout, so that its
registry is the schema it knows; this checkout migrates its own copy).
Prints a table; writes bench/results/monitor_memory.json.
"""

from __future__ import annotations

import argparse
import os
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
from ingest import first_rows, keel_template, write_csv


def keel(main: Path, workspace: Path, *args: str) -> list[str]:
    return [sys.executable, str(main), "--workspace", str(workspace), *args]


def build(data: Path, folder: Path, preset: str) -> Path:
    """A workspace with project `bench` trained on the first 2,000 rows, deployed, the whole file ingested."""
    workspace = keel_template(data, folder / "template", preset)
    with keel_services(workspace) as keel:
        keel.train("bench")
        keel.deploy("bench", 1)
        keel.ingest("bench", data)
    return workspace


def build_with_checkout(main: Path, data: Path, folder: Path, preset: str) -> Path:
    """The same workspace built by another checkout's CLI (a registry of the schema that checkout knows)."""
    workspace = folder / "template"
    seed = first_rows(data, folder / "seed.csv")
    cwd = main.parent
    run_process(keel(main, workspace, "project", "create", "bench", "--data", str(seed), "--target", "y",
                     "--model", preset), cwd=cwd)
    run_process(keel(main, workspace, "train", "bench"), cwd=cwd)
    run_process(keel(main, workspace, "deploy", "bench", "--version", "1"), cwd=cwd)
    run_process(keel(main, workspace, "ingest", "bench", str(data)), cwd=cwd)
    return workspace


def monitor_once(main: Path, template: Path, scratch: Path):
    def run():
        return run_process(keel(main, fresh_copy(template, scratch), "monitor", "bench", "--once"), cwd=main.parent)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", help="an older checkout of Keel: its `monitor --once` on the same batch")
    parser.add_argument("--preset", default="hgb", help="the model preset trained (default hgb, Keel's default)")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "keel-bench-monitor-memory"))
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data = write_csv(data_dir / f"rows-{args.rows}.csv", args.rows)
    with tempfile.TemporaryDirectory(prefix="keel-bench-monitor-memory-") as tmp:
        folder = Path(tmp)
        now = ROOT / "main.py"
        (folder / "now").mkdir()
        template = build(data, folder / "now", args.preset)
        stored = max(template.rglob("*.parquet"), key=lambda p: p.stat().st_size)
        contenders = {"keel monitor --once": monitor_once(now, template, folder / "now")}
        if args.before:
            before = Path(args.before) / "main.py"
            (folder / "before").mkdir()
            old_template = build_with_checkout(before, data, folder / "before", args.preset)
            contenders["keel monitor --once (before)"] = monitor_once(before, old_template, folder / "before")
        contenders["pandas.read_parquet (the batch)"] = lambda: run_process(
            [sys.executable, "-c", f"import pandas; pandas.read_parquet({str(stored)!r})"])
        runs = interleaved(contenders, args.repeats)
    results = {name: summary(r) for name, r in runs.items()}
    print_table(["process", "wall s", "CPU s", "peak MB"],
                [[name, r["seconds"], r["cpu_seconds"], r["peak_mb"]] for name, r in results.items()])
    path = write_report("monitor_memory", {"rows": args.rows, "preset": args.preset, "repeats": args.repeats, "before": args.before,
                                           "train_memory_mb": os.environ.get("KEEL_TRAIN_MEMORY_MB", "2048 (default)"),
                                           "libraries": library_versions(), "results": results,
                                           "load_average_at_end": list(os.getloadavg())},
                        Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
