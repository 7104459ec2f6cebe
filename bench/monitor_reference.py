"""The production model's drift reference: prepared from its reference rows (what every new
`monitor` process did before) vs read from the file stored at deployment (what it does now).

    .venv/bin/python bench/monitor_reference.py [--rows 1000000] [--preset hgb] [--repeats 3]

A project is created from --rows rows of the demo's loan data, trained (its hold-out is a fifth
of the rows, its reference sample 20,000 training rows) and deployed, which stores the reference.
Then, in fresh processes that have loaded the model (untimed), interleaved round by round: the
reference prepared from the reference rows (read them, predict them all, summarise, calibrate the
estimate) and the stored reference read back. Seconds and peak resident memory above what the
process held before the step. Both give the same reference (tests/test_monitoring.py compares a
cycle's results from each). Prints a table; writes bench/results/monitor_reference.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare_drift import PeakMemory
from harness import ROOT, print_table, write_report

PROJECT = "big"
MODES = {"prepare from the reference rows (before)": "prepare", "read the stored reference (now)": "read"}


def build(workspace: Path, rows: int, preset: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import initial_training_data

    keel = Keel.open(workspace)
    try:
        data = workspace.parent / "initial.parquet"
        initial_training_data(rows=rows, seed=3).to_parquet(data, index=False)
        keel.create_project(PROJECT, data, "default", "classification", {"preset": preset})
        started = time.perf_counter()
        keel.train(PROJECT)
        trained = time.perf_counter() - started
        started = time.perf_counter()
        keel.deploy(PROJECT, 1)
        deployed = time.perf_counter() - started
        model_path = workspace / keel.load_version(PROJECT, 1).model_version.artifact_path
        stored = model_path.with_suffix(".drift.npz")
        return {"train_seconds": round(trained, 2), "deploy_seconds_with_reference": round(deployed, 2),
                "reference_rows_mb": round(model_path.with_suffix(".reference.parquet").stat().st_size / 2**20, 2),
                "stored_reference_mb": round(stored.stat().st_size / 2**20, 2)}
    finally:
        keel.close()


def worker(workspace: Path, mode: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from app.core.services.lifecycle import Keel

    keel = Keel.open(workspace)
    loaded = keel.load_production(PROJECT)
    monitoring = keel.monitoring  # its module imported before the measurement, as a cycle has
    gc.collect()
    step = monitoring.prepare_reference if mode == "prepare" else monitoring.stored_reference
    with PeakMemory() as memory:
        started = time.perf_counter()
        reference = step(loaded)
        seconds = time.perf_counter() - started
    keel.close()
    return {"seconds": seconds, "peak_above_mb": memory.above_mb, "features": len(reference.features),
            "estimator": reference.estimator is not None}


def run_worker(workspace: Path, mode: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--worker", mode, "--workspace", str(workspace)],
                            check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--preset", default="hgb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output")
    parser.add_argument("--worker", choices=sorted(set(MODES.values())), help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(Path(args.workspace), args.worker)))
        return 0
    with tempfile.TemporaryDirectory(prefix="keel-bench-reference-") as tmp:
        workspace = Path(tmp) / "workspace"
        setup = build(workspace, args.rows, args.preset)
        runs: dict[str, list[dict]] = {name: [] for name in MODES}
        for _ in range(args.repeats):
            for name, mode in MODES.items():
                runs[name].append(run_worker(workspace, mode))
    results = {name: {"seconds": statistics.median(r["seconds"] for r in found),
                      "peak_above_mb": statistics.median(r["peak_above_mb"] for r in found), "runs": found}
               for name, found in runs.items()}
    print_table(["step", "seconds", "MB above"],
                [[name, r["seconds"], r["peak_above_mb"]] for name, r in results.items()])
    print(f"rows {args.rows:,}, preset {args.preset}: " + ", ".join(f"{k} {v}" for k, v in setup.items()))
    path = write_report("monitor_reference", {"rows": args.rows, "preset": args.preset, "repeats": args.repeats,
                                              **setup, "results": results},
                        Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
