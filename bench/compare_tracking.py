"""Experiment tracking and the model registry: Keel's registry next to MLflow on its SQLite backend.

    .venv/bin/python bench/compare_tracking.py [--repeats 5] [--mlflow-python /tmp/keel-ref-mlflow/bin/python]

MLflow lives in its own environment (never the app's dependencies); set one up with

    python3 -m venv /tmp/keel-ref-mlflow && /tmp/keel-ref-mlflow/bin/pip install mlflow

This script drives both sides: every case runs in a fresh process on a fresh database (set-up
untimed), the contenders interleaved round by round, medians reported. Keel is also run with
`PRAGMA synchronous=FULL`: MLflow's SQLite commits sync to disk, Keel's WAL with
synchronous=NORMAL does not (a power cut may lose the last commits, never corrupt the file), so
part of the one-call-per-point gap is durability, not code.

Cases: 1,000 metric points one call each; 100,000 points batched (MLflow: log_batch, 1,000 per
call, its limit); the 100,000-point history read back; 100 model versions registered; 1,000
runs listed, and filtered on a metric. Prints a table; writes bench/results/compare_tracking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MLFLOW_PYTHON = "/tmp/keel-ref-mlflow/bin/python"
CASES = {"log one point per call": "single", "log points batched": "batched", "read a metric history": "read",
         "register model versions": "register", "list runs": "list", "filter runs on a metric": "filter"}
SIZES = {"single": 1_000, "batched": 100_000, "read": 100_000, "register": 100, "list": 1_000, "filter": 1_000}


# --------------------------------------------------------------------------- Keel's side (the app's venv)
def keel_worker(case: str, n: int, folder: Path, synchronous: str) -> tuple[float, int]:
    sys.path.insert(0, str(ROOT))
    from app.core.domain.clock import utc_now
    from app.core.domain.entities import Column, Schema
    from app.core.store.registry import Registry

    registry = Registry(folder / "registry.db")
    registry.conn.execute(f"PRAGMA synchronous={synchronous}")
    project = registry.insert_project("bench", "classification", "y", "accuracy",
                                      Schema("y", "classification", "integer", (Column("x", "numeric"),)), {})
    run = registry.insert_run(project, "train", started_at=utc_now())
    if case == "read":
        registry.log_metrics(run, (("loss", 1.0 / (s + 1), s) for s in range(n)))
    if case in ("list", "filter"):
        with registry.transaction():
            for index in range(n):
                other = registry.insert_run(project, "train", started_at=utc_now())
                registry.log_metric(other, "accuracy", index / n, 0)
    started = time.perf_counter()
    if case == "single":
        for step in range(n):
            registry.log_metric(run, "loss", 1.0 / (step + 1), step)
        count = n
    elif case == "batched":
        registry.log_metrics(run, (("loss", 1.0 / (s + 1), s) for s in range(n)))
        count = n
    elif case == "read":
        count = len(registry.metric_history(run, "loss"))
    elif case == "register":
        for version in range(1, n + 1):
            registry.insert_model_version(project_id=project, version=version, run_id=run,
                                          artifact_path=f"artifacts/bench/v{version}.skops", sha256="0" * 64,
                                          created_at=utc_now())
        count = n
    elif case == "list":
        count = len(registry.runs(project))
    else:
        count = len(registry.runs_with_metric(project, "accuracy", above=0.5))
    seconds = time.perf_counter() - started
    registry.close()
    return seconds, count


# --------------------------------------------------------------------------- MLflow's side (its own venv)
def mlflow_worker(case: str, n: int, folder: Path) -> tuple[float, int]:
    import logging

    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    run = client.create_run(experiment).info.run_id
    stamp = int(time.time() * 1000)
    if case == "read":
        for start in range(0, n, 1000):
            client.log_batch(run, metrics=[Metric("loss", 1.0 / (s + 1), stamp, s) for s in range(start, min(n, start + 1000))])
    if case in ("list", "filter"):
        for index in range(n):
            other = client.create_run(experiment).info.run_id
            client.log_metric(other, "accuracy", index / n)
    started = time.perf_counter()
    if case == "single":
        for step in range(n):
            client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
        count = n
    elif case == "batched":
        for start in range(0, n, 1000):
            client.log_batch(run, metrics=[Metric("loss", 1.0 / (s + 1), stamp, s) for s in range(start, min(n, start + 1000))])
        count = n
    elif case == "read":
        count = len(client.get_metric_history(run, "loss"))
    elif case == "register":
        client.create_registered_model("bench")
        for _ in range(n):
            client.create_model_version("bench", source=(folder / "artifacts" / "model").as_uri(), run_id=run)
        count = n
    elif case == "list":
        count = len(_all_runs(client, experiment, ""))
    else:
        count = len(_all_runs(client, experiment, "metrics.accuracy > 0.5"))
    return time.perf_counter() - started, count


def _all_runs(client, experiment: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# --------------------------------------------------------------------------- the driver
def run_worker(python: str, side: str, case: str, n: int, synchronous: str = "NORMAL") -> dict:
    with tempfile.TemporaryDirectory(prefix="keel-bench-tracking-") as folder:
        argv = [python, __file__, "--worker", side, "--worker-case", case, "--n", str(n), "--folder", folder,
                "--synchronous", synchronous]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if done.returncode != 0:
            raise RuntimeError(f"{side} {case} failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def measure(cases: list[str], repeats: int, mlflow_python: str | None, scale: float) -> list[dict]:
    sides = {"keel": (sys.executable, "keel", "NORMAL"), "keel synchronous=FULL": (sys.executable, "keel", "FULL")}
    if mlflow_python:
        sides["mlflow (sqlite)"] = (mlflow_python, "mlflow", "NORMAL")
    rows = []
    for label in cases:
        case = CASES[label]
        n = max(10, int(SIZES[case] * scale))
        times: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(repeats):  # interleaved: each round runs every side once
            for side, (python, worker, synchronous) in sides.items():
                result = run_worker(python, worker, case, n, synchronous)
                if case not in ("list", "filter") and result["count"] != n:
                    raise RuntimeError(f"{side} {case}: {result['count']} items, expected {n}")
                times[side].append(result["seconds"])
        row = {"case": label, "n": n, **{side: statistics.median(t) for side, t in times.items()},
               "runs": times}
        if mlflow_python:
            row["mlflow_over_keel"] = round(row["mlflow (sqlite)"] / row["keel"], 1)
            row["mlflow_over_keel_full"] = round(row["mlflow (sqlite)"] / row["keel synchronous=FULL"], 1)
        rows.append(row)
    return rows


def mlflow_version(python: str) -> str:
    done = subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True)
    return done.stdout.strip() or "unavailable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlflow-python", default=DEFAULT_MLFLOW_PYTHON)
    parser.add_argument("--keel-only", action="store_true", help="skip MLflow (the smoke test)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's size")
    parser.add_argument("--case", action="append", choices=list(CASES), help="run only these cases")
    parser.add_argument("--output")
    parser.add_argument("--worker", choices=["keel", "mlflow"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-case", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--synchronous", default="NORMAL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        work = keel_worker if args.worker == "keel" else mlflow_worker
        extra = (args.synchronous,) if args.worker == "keel" else ()
        seconds, count = work(args.worker_case, args.n, Path(args.folder), *extra)
        print(json.dumps({"seconds": seconds, "count": count}))
        return 0
    from harness import library_versions, print_table, write_report

    mlflow_python = None if args.keel_only or not Path(args.mlflow_python).exists() else args.mlflow_python
    if mlflow_python is None and not args.keel_only:
        print(f"note: no MLflow environment at {args.mlflow_python}; Keel only", file=sys.stderr)
    rows = measure(args.case or list(CASES), args.repeats, mlflow_python, args.scale)
    headers = ["case", "n", "keel s", "keel FULL s"] + (["mlflow s", "mlflow/keel", "mlflow/keel FULL"]
                                                        if mlflow_python else [])
    print_table(headers, [[r["case"], r["n"], r["keel"], r["keel synchronous=FULL"]]
                          + ([r["mlflow (sqlite)"], r["mlflow_over_keel"], r["mlflow_over_keel_full"]]
                             if mlflow_python else []) for r in rows])
    path = write_report("compare_tracking", {
        "repeats": args.repeats, "keel_libraries": library_versions(("sqlite_utils",)),
        "mlflow": mlflow_version(mlflow_python) if mlflow_python else None,
        "durability": "keel: WAL, synchronous=NORMAL (and FULL in its own column); mlflow: its SQLite defaults "
                      "(rollback journal, synchronous=FULL)",
        "cases": rows}, Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
