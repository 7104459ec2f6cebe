"""Data drift on a batch: Keel's per-feature tests next to Evidently's DataDriftPreset.

    .venv/bin/python bench/compare_drift.py [--rows 100000 1000000] [--repeats 3]
        [--evidently-python /tmp/keel-ref-evidently/bin/python]

Evidently lives in its own environment (0.7 needs pandas < 3, which Keel does not use):

    python3 -m venv /tmp/keel-ref-evidently && /tmp/keel-ref-evidently/bin/pip install "evidently==0.7.*" "pandas<3"

The data: a reference and a current table of N rows x 25 columns (20 numbers, 5 categories),
the current one shifted in 4 numeric columns and 1 categorical one, written once as Parquet.
Each side runs in a fresh process that loads both tables (untimed), then times the drift
computation, and samples its resident memory every few milliseconds to report the peak
above what it held with the data loaded. Keel prepares the reference once per deployment
(timed separately) and compares each batch with it. Which columns each side flags is
reported too. Rounds are interleaved; medians. Prints a table; writes bench/results/compare_drift.json
(compare_drift_keel_only.json when Evidently does not run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVIDENTLY_PYTHON = "/tmp/keel-ref-evidently/bin/python"
NUMERIC, CATEGORICAL = 20, 5
SHIFTED = ["n0", "n1", "n2", "n3", "c0"]


def write_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    reference_path, current_path = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    if reference_path.exists() and current_path.exists():
        return reference_path, current_path
    for path, seed, shifted in ((reference_path, 1, False), (current_path, 2, True)):
        rng = np.random.default_rng(seed)
        columns = {f"n{i}": rng.normal(0.6 if shifted and f"n{i}" in SHIFTED else 0.0, 1.0, rows)
                   for i in range(NUMERIC)}
        for i in range(CATEGORICAL):
            weights = [0.2, 0.3, 0.5] if shifted and f"c{i}" in SHIFTED else [0.5, 0.3, 0.2]
            columns[f"c{i}"] = rng.choice(np.array(["red", "green", "blue"], dtype=object), rows, p=weights)
        pd.DataFrame(columns).to_parquet(path, index=False)
    return reference_path, current_path


class PeakMemory:
    """The largest resident set seen while the block runs, less the one it started with."""

    def __enter__(self):
        self.baseline = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.003):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def above_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- the two sides
def keel_worker(reference_path: Path, current_path: Path) -> dict:
    import gc

    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from app.core.ml import drift

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    kinds = {c: "categorical" if c.startswith("c") else "numeric" for c in reference.columns}
    for frame in (reference, current):  # as to_model_frame hands them over: categories as objects
        for column in frame.columns:
            if kinds[column] == "categorical":
                frame[column] = frame[column].astype(object)
    gc.collect()
    with PeakMemory() as prepare_memory:
        started = time.perf_counter()
        features = drift.prepare_features(reference, kinds)
        prepare_seconds = time.perf_counter() - started
    del reference
    gc.collect()
    with PeakMemory() as compare_memory:
        started = time.perf_counter()
        per_feature = drift.compare_features(features, current)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_above_mb": compare_memory.above_mb, "prepare_seconds": prepare_seconds,
            "prepare_peak_above_mb": prepare_memory.above_mb, "drifted": sorted(drift.drifted_names(per_feature))}


def evidently_worker(reference_path: Path, current_path: Path) -> dict:
    import gc
    import warnings

    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    warnings.filterwarnings("ignore")
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    gc.collect()
    with PeakMemory() as memory:
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        result = snapshot.dict()
        seconds = time.perf_counter() - started
    drifted = []
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            method, value, threshold = config["method"], metric["value"], config["threshold"]
            flagged = value < threshold if "p_value" in method else value >= threshold
            if flagged:
                drifted.append(config["column"])
    return {"seconds": seconds, "peak_above_mb": memory.above_mb, "drifted": sorted(drifted)}


# --------------------------------------------------------------------------- the driver
def run_worker(python: str, side: str, reference_path: Path, current_path: Path) -> dict:
    argv = [python, __file__, "--worker", side, "--reference", str(reference_path), "--current", str(current_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def library_version(python: str, module: str) -> str:
    done = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True)
    return done.stdout.strip() or "unavailable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-python", default=DEFAULT_EVIDENTLY_PYTHON)
    parser.add_argument("--keel-only", action="store_true", help="skip Evidently (the smoke test)")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "keel-bench-drift"))
    parser.add_argument("--output")
    parser.add_argument("--worker", choices=["keel", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        work = keel_worker if args.worker == "keel" else evidently_worker
        print(json.dumps(work(Path(args.reference), Path(args.current))))
        return 0
    from harness import library_versions, print_table, write_report

    evidently = None if args.keel_only or not Path(args.evidently_python).exists() else args.evidently_python
    sides = {"keel": sys.executable, **({"evidently": evidently} if evidently else {})}
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sizes, table = [], []
    for rows in args.rows:
        reference_path, current_path = write_tables(data_dir, rows)
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for _ in range(args.repeats):
            for side, python in sides.items():
                runs[side].append(run_worker(python, side, reference_path, current_path))
        entry = {"rows": rows, "columns": NUMERIC + CATEGORICAL, "shifted": SHIFTED, "results": {}}
        for side, results in runs.items():
            summary = {key: statistics.median(r[key] for r in results)
                       for key in results[0] if key != "drifted"}
            summary["drifted"] = results[0]["drifted"]
            summary["runs"] = results
            entry["results"][side] = summary
            table.append([f"{rows:,}", side, summary["seconds"], summary["peak_above_mb"],
                          ", ".join(summary["drifted"])])
        if evidently:
            entry["time_ratio_evidently_over_keel"] = round(
                entry["results"]["evidently"]["seconds"] / entry["results"]["keel"]["seconds"], 1)
        sizes.append(entry)
    print_table(["rows", "side", "seconds", "MB above data", "columns flagged"], table)
    for entry in sizes:
        keel = entry["results"]["keel"]
        print(f"{entry['rows']:,} rows: Keel prepares the reference once per deployment in "
              f"{keel['prepare_seconds']:.2f} s (+{keel['prepare_peak_above_mb']:.0f} MB)")
    # a Keel-only run must not replace the side-by-side figures docs/benchmarks.md quotes
    path = write_report("compare_drift_keel_only" if evidently is None else "compare_drift", {
        "repeats": args.repeats, "keel_libraries": library_versions(),
        "evidently": library_version(evidently, "evidently") if evidently else None,
        "evidently_pandas": library_version(evidently, "pandas") if evidently else None,
        "sizes": sizes}, Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
