"""Registry metric logging and history reads, next to raw sqlite3 in the same run.

    .venv/bin/python bench/registry_bench.py [--points 100000] [--single 20000] [--repeats 3]

Three cases, each timed for Keel's Registry and for raw sqlite3 (the floor) on the same
schema with the same pragmas (WAL, synchronous=NORMAL, foreign keys on):

- one point per call: Registry.log_metric (one commit each) vs execute + commit;
- batched: Registry.log_metrics (one transaction) vs executemany in one transaction;
- read a 100,000-point history: Registry.metric_history vs the same SELECT.

Targets: batched within 2x of raw; one-per-call at least 20,000 points/s;
the history read within 2x of raw. Prints a table; writes bench/results/registry_bench.json.
"""

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.domain.clock import utc_now  # noqa: E402
from app.core.fileio import write_text_atomic  # noqa: E402
from app.core.store.registry import Registry, migrate  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "registry_bench.json"
INSERT = "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
SELECT = "SELECT step, value, timestamp FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, id"
WARM_UP = "SELECT COUNT(*) FROM sqlite_master"


def new_database(folder: Path, name: str) -> Path:
    path = folder / f"{name}.db"
    migrate(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO projects (id, name, task, target, metric, schema_json, settings_json, created_at) "
                     "VALUES (1, 'bench', 'classification', 'y', 'accuracy', '{}', '{}', ?)", (utc_now(),))
        conn.execute("INSERT INTO runs (id, project_id, kind, started_at) VALUES (1, 1, 'train', ?)", (utc_now(),))
    conn.close()
    return path


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


# --------------------------------------------------------------------------- the cases
def keel_single(path: Path, points: int) -> float:
    registry = Registry(path)
    try:
        started = time.perf_counter()
        for step in range(points):
            registry.log_metric(1, "loss", 1.0 / (step + 1), step)
        return time.perf_counter() - started
    finally:
        registry.close()


def raw_single(path: Path, points: int) -> float:
    conn = raw_connection(path)
    try:
        started = time.perf_counter()
        for step in range(points):
            conn.execute(INSERT, (1, "loss", 1.0 / (step + 1), step, utc_now()))
            conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def keel_batched(path: Path, points: int) -> float:
    registry = Registry(path)
    try:
        started = time.perf_counter()
        registry.log_metrics(1, (("loss", 1.0 / (step + 1), step) for step in range(points)))
        return time.perf_counter() - started
    finally:
        registry.close()


def raw_batched(path: Path, points: int) -> float:
    conn = raw_connection(path)
    try:
        started = time.perf_counter()
        stamp = utc_now()
        with conn:
            conn.executemany(INSERT, [(1, "loss", 1.0 / (step + 1), step, stamp) for step in range(points)])
        return time.perf_counter() - started
    finally:
        conn.close()


def keel_read(path: Path, points: int) -> float:
    registry = Registry(path)
    try:
        registry.conn.execute(WARM_UP).fetchall()  # a long-lived app has its connection and schema ready
        started = time.perf_counter()
        history = registry.metric_history(1, "loss")
        elapsed = time.perf_counter() - started
        assert len(history) == points, len(history)
        return elapsed
    finally:
        registry.close()


def raw_read(path: Path, points: int) -> float:
    conn = raw_connection(path)
    try:
        conn.execute(WARM_UP).fetchall()
        started = time.perf_counter()
        history = conn.execute(SELECT, (1, "loss")).fetchall()
        elapsed = time.perf_counter() - started
        assert len(history) == points, len(history)
        return elapsed
    finally:
        conn.close()


def best_of(repeats: int, folder: Path, keel_case, raw_case, points: int, filled: bool = False) -> tuple[float, float]:
    """The fastest of `repeats` runs of each side, alternating keel and raw (the machine is shared,
    so its load drifts), each run on a fresh database, filled with `points` points first if asked."""
    times = {keel_case: [], raw_case: []}
    for index in range(repeats):
        for case in (keel_case, raw_case):
            path = new_database(folder, f"{case.__name__}-{index}")
            if filled:
                raw_batched(path, points)
            times[case].append(case(path, points))
    return min(times[keel_case]), min(times[raw_case])


# --------------------------------------------------------------------------- report
def measure(points: int, single_points: int, repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        folder = Path(tmp)
        rows = []
        single = best_of(repeats, folder, keel_single, raw_single, single_points)
        rows.append(row("log_metric, one point per call", single_points, *single,
                        target="keel >= 20,000 points/s", passed=single_points / single[0] >= 20_000))
        batched = best_of(repeats, folder, keel_batched, raw_batched, points)
        rows.append(row("log_metrics, batched", points, *batched,
                        target="keel within 2x of raw", passed=batched[0] <= 2 * batched[1]))
        read = best_of(repeats, folder, keel_read, raw_read, points, filled=True)
        rows.append(row(f"metric_history, {points:,} points", points, *read,
                        target="keel within 2x of raw", passed=read[0] <= 2 * read[1]))
    return rows


def row(case: str, points: int, keel_seconds: float, raw_seconds: float, target: str, passed: bool) -> dict:
    return {"case": case, "points": points, "keel_seconds": round(keel_seconds, 5), "raw_seconds": round(raw_seconds, 5),
            "keel_points_per_s": round(points / keel_seconds), "raw_points_per_s": round(points / raw_seconds),
            "keel_over_raw": round(keel_seconds / raw_seconds, 3), "target": target, "met": passed}


def print_table(rows: list[dict]) -> None:
    header = f"{'case':<34} {'points':>8} {'keel s':>9} {'raw s':>9} {'keel pts/s':>11} {'raw pts/s':>11} {'keel/raw':>8}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<34} {r['points']:>8,} {r['keel_seconds']:>9.4f} {r['raw_seconds']:>9.4f} "
              f"{r['keel_points_per_s']:>11,} {r['raw_points_per_s']:>11,} {r['keel_over_raw']:>8.2f}  "
              f"{r['target']}: {'met' if r['met'] else 'MISSED'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="points for the batched and read cases")
    parser.add_argument("--single", type=int, default=20_000, help="points for the one-per-call case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    rows = measure(args.points, args.single, args.repeats)
    print_table(rows)
    report = {
        "benchmark": "registry_bench",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "machine": platform.machine(),
        "repeats": args.repeats, "pragmas": "WAL, synchronous=NORMAL, foreign_keys=ON (both sides)",
        "results": rows, "all_targets_met": all(r["met"] for r in rows),
    }
    write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
