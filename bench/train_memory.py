"""The training memory budget, checked: the estimate that decides whether `train` samples vs the peak measured.

    nice .venv/bin/python bench/train_memory.py --rows 10000000 --calibrate-rows 1000000

A CSV of --rows rows (bench/ingest.py's file: 6 floats, an integer, 2 categories, a 0/1 target;
--csv reuses one already written) is ingested into a project created from its first 2,000 rows
(--preset, hgb by default); then `train` runs as a whole process with the default budget
($KEEL_TRAIN_MEMORY_MB, 2048) and its peak resident memory is measured. The floor is the peak of
the same `train` on the 2,000-row project (interpreter, libraries, the registry): what the rows
took is the peak above that floor, which the budget bounds. With --calibrate-rows N, a project of
N rows is trained with no budget (nothing sampled), which gives the bytes a training row really
takes; the estimate (`datasets.training_bytes_per_row`) is shown next to it.
Prints a table; writes bench/results/train_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from harness import ROOT, fresh_copy, keel_services, library_versions, print_table, run_process, write_report
from ingest import keel_template, write_csv

UNLIMITED_MB = 1 << 20


def main_argv(workspace: Path) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace)]


def ingested_workspace(template: Path, data: Path, folder: Path) -> Path:
    workspace = fresh_copy(template, folder)
    with keel_services(workspace) as keel:
        keel.ingest("bench", data)
    return workspace


def train(workspace: Path, budget_mb: int | None):
    env = dict(os.environ)
    if budget_mb is not None:
        env["KEEL_TRAIN_MEMORY_MB"] = str(budget_mb)
    return run_process([*main_argv(workspace), "train", "bench"], env=env, cwd=ROOT)


def training_record(workspace: Path) -> dict:
    """The newest run's sample (if any), its rows and the estimate the budget was checked against."""
    sys.path.insert(0, str(ROOT))
    from app.core.ml import datasets
    from app.core.store.registry import Registry

    registry = Registry(workspace / "registry.db")
    try:
        project = registry.project("bench")
        run = registry.runs(project.id)[0]  # newest first
        params = registry.run_params(run.id)
        wanted = sum(row.labelled_rows for row in registry.dataset_versions(project.id))
        sample = params.get("training_sample")
        sample = json.loads(sample) if isinstance(sample, str) else sample
        per_row = datasets.training_bytes_per_row(project.schema)
        model_version = registry.model_versions(project.id)[-1].version
    finally:
        registry.close()
    rows = sample["sampled_rows"] if sample else wanted
    return {"model_version": model_version, "labelled_rows": wanted, "trained_rows": rows, "sample": sample, "estimated_bytes_per_row": per_row,
            "estimated_mb": round(rows * per_row / 2**20, 1)}


def measure(template: Path, data: Path, folder: Path, budget_mb: int | None, floor_mb: float,
            retrain: bool = False) -> dict:
    workspace = ingested_workspace(template, data, folder)
    run = train(workspace, budget_mb)
    record = training_record(workspace)
    above = run.peak_mb - floor_mb
    result = {**record, "budget_mb": budget_mb, "seconds": round(run.seconds, 2),
              "cpu_seconds": round(run.cpu_seconds, 2), "peak_mb": round(run.peak_mb, 1),
              "above_floor_mb": round(above, 1), "measured_bytes_per_row": round(above * 2**20 / record["trained_rows"]),
              "measured_over_estimate": round(above / record["estimated_mb"], 2)}
    if retrain:  # with that version in production, `train` chooses among the adaptive window's candidates
        with keel_services(workspace) as keel:
            keel.deploy("bench", record["model_version"])
        again = train(workspace, budget_mb)
        result["retrain"] = {**training_record(workspace), "seconds": round(again.seconds, 2),
                             "peak_mb": round(again.peak_mb, 1), "above_floor_mb": round(again.peak_mb - floor_mb, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--calibrate-rows", type=int, default=0, help="also train N rows with no budget")
    parser.add_argument("--csv", help="the --rows file, already written by bench/ingest.py")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "keel-bench-train-memory"))
    parser.add_argument("--numeric-only", action="store_true", help="a file with no category columns")
    parser.add_argument("--preset", default="hgb", help="the model preset trained (default hgb, Keel's default)")
    parser.add_argument("--retrain", action="store_true",
                        help="then deploy that version and train again (the adaptive window's candidates)")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sizes = [(args.calibrate_rows, UNLIMITED_MB)] if args.calibrate_rows else []
    sizes.append((args.rows, None))
    results = []
    with tempfile.TemporaryDirectory(prefix="keel-bench-train-memory-") as scratch:
        floor = None
        for rows, budget in sizes:
            data = (Path(args.csv) if args.csv and rows == args.rows
                    else write_csv(data_dir / f"{'numeric-' if args.numeric_only else ''}rows-{rows}.csv", rows,
                                   categories=not args.numeric_only))
            template = keel_template(data, data_dir / f"template-{data.stem}-{args.preset}", args.preset)
            if floor is None:  # the 2,000-row project the templates were created from
                floor = train(fresh_copy(template, Path(scratch)), budget).peak_mb
            results.append({"rows": rows, **measure(template, data, Path(scratch), budget, floor,
                                                    args.retrain and rows == args.rows)})
    table = [[f"{r['rows']:,}", r["budget_mb"] or "default", f"{r['trained_rows']:,}", r["estimated_mb"],
              r["peak_mb"], r["above_floor_mb"], r["measured_over_estimate"], r["estimated_bytes_per_row"],
              r["measured_bytes_per_row"], r["seconds"]] for r in results]
    print_table(["rows", "budget MB", "trained rows", "estimate MB", "peak MB", "above floor MB", "measured/estimate",
                 "est. B/row", "measured B/row", "wall s"], table)
    print(f"floor (train on 2,000 rows): {floor:.0f} MB")
    for r in results:
        if "retrain" in r:
            again = r["retrain"]
            print(f"retrain with v{r['model_version']} in production ({r['rows']:,} rows): trained {again['trained_rows']:,} rows, "
                  f"peak {again['peak_mb']:.0f} MB, {again['above_floor_mb']:.0f} MB above the floor")
    path = write_report("train_memory", {"preset": args.preset, "numeric_only": args.numeric_only, "floor_mb": round(floor or 0, 1), "libraries": library_versions(),
                                         "sizes": results, "load_average_at_end": list(os.getloadavg())},
                        Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
