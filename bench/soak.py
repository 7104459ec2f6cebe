"""Soak: everything at once for a while, on one workspace, in real processes.

    .venv/bin/python bench/soak.py [--seconds 120] [--clients 2] [--warmup 30] [--json PATH]

- `keel run` with the project's monitoring schedule at every 1 s and the inbox swept
  every second (KEEL_INBOX_SWEEP_SECONDS=1);
- `keel serve` with --clients threads each POSTing 1-row and 20-row requests back to back;
- a CLI writer: `ingest` of a new batch, `deploy`/`rollback` between two versions,
  `status`, one process after another;
- inbox drops: a new labelled batch every --drop-every seconds, written under a
  temporary name and renamed (the README's safe way).

At the end the drops stop, the inbox is drained, the processes stop (SIGTERM), and it
counts: failed requests (anything but a 200, or a connection error), lock errors (a CLI
command refused as busy or locked), CLI failures, rows expected (the first training set,
every CLI ingest and inbox drop) vs rows found in the registry's dataset versions, inbox
files rejected or left, and the RSS of the server and of the runner sampled every
second: the growth from the end of --warmup to the end (median of the first and last
five samples) must stay flat (no leak). Prints a table; writes bench/results/soak.json
(or --json PATH).
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.services.lifecycle import Keel  # noqa: E402
from app.demo.simulator import make_batch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"
PROJECT = "soak"
INITIAL_ROWS = 600
BATCH_ROWS = 40
RSS_FLAT_MB = 25.0  # growth after warm-up above this is reported as a leak
FEATURES = ["income", "age", "debt_ratio", "tenure_months", "region", "has_mortgage"]


@dataclass
class Counts:
    requests: int = 0
    failed_requests: int = 0
    request_errors: list = field(default_factory=list)
    cli_commands: int = 0
    cli_failures: int = 0
    lock_errors: int = 0
    cli_errors: list = field(default_factory=list)
    rows_ingested_by_cli: int = 0
    inbox_drops: int = 0
    rows_dropped: int = 0
    latencies_ms: list = field(default_factory=list)
    cli_seconds: list = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **increments) -> None:
        with self.guard:
            for key, value in increments.items():
                current = getattr(self, key)
                if isinstance(current, list):
                    if len(current) < 2000:
                        current.append(value)
                else:
                    setattr(self, key, current + value)


# --------------------------------------------------------------------------- set-up
def make_workspace(folder: Path) -> Path:
    data = folder / "initial.csv"
    make_batch(INITIAL_ROWS, seed=1).to_csv(data, index=False)
    workspace = folder / "workspace"
    keel = Keel.open(workspace)
    try:
        keel.create_project(PROJECT, data, "default", "classification",
                            {"preset": "logreg", "schedule": "every 1s", "policy": "alert"})
        keel.train(PROJECT)
        keel.set_project(PROJECT, {"params": {"C": 0.05}})  # a second, different version to deploy back and forth
        keel.train(PROJECT)
        keel.deploy(PROJECT, 1)
    finally:
        keel.close()
    return workspace


def keel_command(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace), *args]


def child_environment() -> dict:
    env = dict(os.environ, KEEL_INBOX_SWEEP_SECONDS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("KEEL_WORKSPACE", None)
    return env


def start_server(workspace: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(keel_command(workspace, "serve", PROJECT, "--port", "0", "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_environment())
    first = process.stdout.readline()
    if not first:
        raise RuntimeError(f"serve did not start: {process.stderr.read()}")
    return process, json.loads(first)["port"]


def start_runner(workspace: Path) -> subprocess.Popen:
    process = subprocess.Popen(keel_command(workspace, "run"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=child_environment())
    first = process.stdout.readline()
    if "Keel runner" not in first:
        raise RuntimeError(f"run did not start: {first}{process.stdout.read()}")
    process.last_lines = []
    threading.Thread(target=_keep_last_lines, args=(process.stdout, process.last_lines), daemon=True).start()
    return process


def _keep_last_lines(stream, lines: list) -> None:
    """Drain a child's pipe (so it never blocks on a full one), keeping its last lines."""
    for line in stream:
        lines.append(line.rstrip())
        del lines[:-20]


# --------------------------------------------------------------------------- load
def score_client(port: int, stop: threading.Event, counts: Counts, seed: int) -> None:
    rows = make_batch(200, seed=100 + seed)[FEATURES]
    bodies = [json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows.iloc[i:i + size].values.tolist()}})
              for i, size in ((0, 1), (1, 20), (21, 1), (22, 20))]
    connection, index = None, 0
    while not stop.is_set():
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            payload = answer.read()
            if answer.status != 200:
                counts.add(requests=1, failed_requests=1, request_errors=f"{answer.status}: {payload[:200]!r}")
            else:
                counts.add(requests=1, latencies_ms=(time.perf_counter() - started) * 1000)
        except (OSError, http.client.HTTPException) as exc:
            counts.add(requests=1, failed_requests=1, request_errors=f"{type(exc).__name__}: {exc}")
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def cli_writer(workspace: Path, folder: Path, stop: threading.Event, counts: Counts) -> None:
    step = 0
    while not stop.is_set():
        step += 1
        kind = ("ingest", "deploy", "status", "rollback")[step % 4]
        if kind == "ingest":
            path = folder / f"cli-{step:05d}.csv"
            make_batch(BATCH_ROWS, seed=10_000 + step).to_csv(path, index=False)
            args = ("ingest", PROJECT, str(path))
        elif kind == "deploy":
            args = ("deploy", PROJECT, "--version", "2", "--reason", "soak")
        elif kind == "rollback":
            args = ("rollback", PROJECT, "--to", "1", "--reason", "soak")
        else:
            args = ("status", PROJECT)
        started = time.monotonic()
        result = subprocess.run(keel_command(workspace, *args, "--json"), capture_output=True, text=True,
                                env=child_environment(), timeout=300)
        counts.add(cli_commands=1, cli_seconds=(kind, round(time.monotonic() - started, 2)))
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
            lock = any(word in message.lower() for word in ("busy", "locked", "lock "))
            counts.add(cli_failures=1, lock_errors=1 if lock else 0, cli_errors=f"{' '.join(args[:2])}: {message}")
        elif kind == "ingest" and not json.loads(result.stdout).get("duplicate_of"):
            counts.add(rows_ingested_by_cli=BATCH_ROWS)


def inbox_dropper(workspace: Path, stop: threading.Event, counts: Counts, every: float) -> None:
    inbox = workspace / "projects" / PROJECT / "inbox"
    number = 0
    while not stop.wait(every):
        number += 1
        final = inbox / f"drop-{number:05d}.csv"
        temporary = inbox / f".{final.name}.tmp"
        make_batch(BATCH_ROWS, seed=50_000 + number).to_csv(temporary, index=False)
        os.replace(temporary, final)
        counts.add(inbox_drops=1, rows_dropped=BATCH_ROWS)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_rss(processes: dict, stop: threading.Event, samples: dict) -> None:
    started = time.monotonic()
    while not stop.wait(1.0):
        for name, process in processes.items():
            value = rss_mb(process.pid)
            if value is not None:
                samples[name].append((time.monotonic() - started, value))


def rss_growth(samples: list[tuple[float, float]], warmup: float) -> dict:
    after = [value for moment, value in samples if moment >= warmup]
    if len(after) < 4:
        return {"samples": len(after), "start_mb": None, "end_mb": None, "growth_mb": None}
    start, end = statistics.median(after[:5]), statistics.median(after[-5:])
    every_five = [[round(moment), round(value, 1)] for moment, value in samples[::5]]
    return {"samples": len(after), "start_mb": round(start, 1), "end_mb": round(end, 1),
            "growth_mb": round(end - start, 1), "max_mb": round(max(after), 1), "series": every_five}


# --------------------------------------------------------------------------- the run
def wait_for_empty_inbox(workspace: Path, timeout: float) -> list[str]:
    inbox = workspace / "projects" / PROJECT / "inbox"
    deadline = time.monotonic() + timeout
    while True:
        waiting = sorted(p.name for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
        if not waiting or time.monotonic() > deadline:
            return waiting
        time.sleep(0.5)


def stop_process(process: subprocess.Popen, timeout: float = 120) -> int:
    """SIGTERM, as a service manager stops Keel; SIGKILL only if it has not ended after timeout."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def soak(seconds: float, clients: int, warmup: float, drop_every: float, folder: Path) -> dict:
    workspace = make_workspace(folder)
    server, port = start_server(workspace)
    runner = start_runner(workspace)
    counts, stop, rss_stop = Counts(), threading.Event(), threading.Event()
    samples = {"server": [], "runner": []}
    threads = [threading.Thread(target=sample_rss, args=({"server": server, "runner": runner}, rss_stop, samples))]
    threads += [threading.Thread(target=score_client, args=(port, stop, counts, i)) for i in range(clients)]
    threads += [threading.Thread(target=cli_writer, args=(workspace, folder, stop, counts)),
                threading.Thread(target=inbox_dropper, args=(workspace, stop, counts, drop_every))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads[1:]:
            thread.join(300)
        left = wait_for_empty_inbox(workspace, timeout=30)
        rss_stop.set()
        threads[0].join()
        server_exit, runner_exit = stop_process(server), stop_process(runner)
    elapsed = time.monotonic() - started
    result = report(workspace, counts, samples, warmup, elapsed, left, server_exit, runner_exit, seconds, clients)
    result["stop_output"] = {"runner": runner.last_lines[-8:], "server": server.stderr.read()[-2000:].splitlines()}
    return result


def report(workspace, counts, samples, warmup, elapsed, left, server_exit, runner_exit, seconds, clients) -> dict:
    keel = Keel.open(workspace)
    try:
        found = sum(d.rows for d in keel.dataset_versions(PROJECT))
        rejected = sorted(p.name for p in keel.inbox_dir(PROJECT).joinpath("rejected").iterdir())
        cycles = len(keel.monitor_results(PROJECT))
    finally:
        keel.close()
    expected = INITIAL_ROWS + counts.rows_ingested_by_cli + counts.rows_dropped
    latencies = sorted(counts.latencies_ms)
    growth = {name: rss_growth(values, warmup) for name, values in samples.items()}
    leaks = [name for name, g in growth.items() if g["growth_mb"] is not None and g["growth_mb"] > RSS_FLAT_MB]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": seconds, "elapsed": round(elapsed, 1),
        "clients": clients, "requests": counts.requests, "failed_requests": counts.failed_requests,
        "request_p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "request_p99_ms": round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        "cli_commands": counts.cli_commands,
        "cli_seconds_max": max((s for _, s in counts.cli_seconds), default=None),
        "cli_seconds": counts.cli_seconds[:50], "cli_failures": counts.cli_failures, "lock_errors": counts.lock_errors,
        "inbox_drops": counts.inbox_drops, "rows_expected": expected, "rows_found": found,
        "inbox_rejected": rejected, "inbox_left": left, "monitoring_results": cycles,
        "server_exit": server_exit, "runner_exit": runner_exit, "rss": growth, "rss_flat_mb": RSS_FLAT_MB,
        "leaks": leaks, "errors": {"requests": counts.request_errors[:10], "cli": counts.cli_errors[:10]},
    }
    result["ok"] = (counts.failed_requests == 0 and counts.lock_errors == 0 and counts.cli_failures == 0
                    and expected == found and not rejected and not left and not leaks
                    and server_exit == 0 and runner_exit == 0)
    return result


def print_table(result: dict) -> None:
    rows = [
        ("duration", f"{result['elapsed']} s ({result['clients']} scoring clients)"),
        ("scoring requests", f"{result['requests']} ({result['failed_requests']} failed); "
                             f"p50 {result['request_p50_ms']} ms, p99 {result['request_p99_ms']} ms"),
        ("CLI commands", f"{result['cli_commands']} ({result['cli_failures']} failed, {result['lock_errors']} lock errors;"
                         f" slowest {result['cli_seconds_max']} s)"),
        ("inbox drops", f"{result['inbox_drops']} ({len(result['inbox_rejected'])} rejected, "
                        f"{len(result['inbox_left'])} left)"),
        ("rows expected / found", f"{result['rows_expected']} / {result['rows_found']}"),
        ("monitoring results", str(result["monitoring_results"])),
    ]
    for name, growth in result["rss"].items():
        rows.append((f"RSS {name}", f"{growth['start_mb']} -> {growth['end_mb']} MB after warm-up "
                                    f"(growth {growth['growth_mb']} MB, max {growth.get('max_mb')} MB)"))
    rows.append(("verdict", "OK" if result["ok"] else "FAILED"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for kind, errors in result["errors"].items():
        for error in errors:
            print(f"  {kind} error: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before RSS growth is measured")
    parser.add_argument("--drop-every", type=float, default=2.0, dest="drop_every")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the figures")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keel-soak-") as folder:
        result = soak(args.seconds, args.clients, min(args.warmup, args.seconds / 2), args.drop_every, Path(folder))
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
