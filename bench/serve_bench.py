"""The scoring server on loopback, next to calling the model's predict directly in the same run.

    .venv/bin/python bench/serve_bench.py [--preset hgb] [--requests 1000] [--big-requests 100]
                                          [--mlflow /tmp/mlflow-venv/bin/python]

For 1-row and 1,000-row requests at concurrency 1 and 8, these ways of getting predictions:

- direct:        model.predict(X) on the ready model frame, from `concurrency` threads (the floor);
- inproc:        Keel's request handling without HTTP: parse the JSON body, build the model
                 frame with the project's cleaning rules, predict (where the overhead goes);
- keel http:     POST /invocations to `main.py serve` in its own process, one keep-alive
                 connection per client thread (Python's http.client, in this process);
- keel+log:      the same with `--sample-rate 1`: every scored row recorded in the prediction log
                 (what a project with an ID column does by default); its added p50 over `keel http`
                 is the logging cost (target: <= 10 % at 1-row requests);
- mlflow http:   with --mlflow PYTHON (a virtualenv with mlflow and skops), the same model saved
                 with mlflow.sklearn and served by `mlflow models serve`; it gets the model frame
                 as input, since MLflow does not apply Keel's cleaning.

The machine is shared, so the ways are interleaved: each case runs in rounds, and every
round runs a block of each way in turn; all ways see the same load. Also: seconds from
starting each server to the first 200 from /ping (median of --starts starts, interleaved).

Targets: 1-row p50 overhead above direct predict <= 1 ms; /ping answers 200 within
1.5 s of start; full prediction logging adds <= 10 % to the 1-row p50.
--logging-only runs the 1-row cases of keel, keel+log and direct only (no readiness, no MLflow).
Prints a table; writes bench/results/serve_bench.json (serve_bench_logging.json with --logging-only).
"""

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.adapters import serving  # noqa: E402
from app.adapters import serving_protocol as protocol  # noqa: E402
from app.core.fileio import write_text_atomic  # noqa: E402
from app.core.services import prediction_log  # noqa: E402
from app.core.services.lifecycle import Keel  # noqa: E402
from app.demo.simulator import make_batch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serve_bench.json"
PROJECT = "bench"


# --------------------------------------------------------------------------- set-up
def make_workspace(folder: Path, preset: str) -> Path:
    data = folder / "train.csv"
    make_batch(3000, seed=1).to_csv(data, index=False)
    keel = Keel.open(folder / "workspace")
    try:
        keel.create_project(PROJECT, data, "default", settings={"preset": preset})
        version = keel.train(PROJECT).version
        keel.deploy(PROJECT, version)
    finally:
        keel.close()
    return folder / "workspace"


def request_body(rows: int) -> bytes:
    frame = make_batch(rows, seed=100 + rows).drop(columns=["default"])
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()


# --------------------------------------------------------------------------- load generation
def run_block(call, concurrency: int, total: int) -> tuple[list[float], float, list[str]]:
    """Run `call(state)` `total` times from `concurrency` threads: latencies (ms), wall seconds, errors."""
    per_thread = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(index: int):
        state = {}
        barrier.wait()
        for _ in range(per_thread[index]):
            started = time.perf_counter()
            try:
                call(state)
            except Exception as exc:  # counted and reported, never hidden
                errors.append(repr(exc))
            latencies[index].append((time.perf_counter() - started) * 1000)
        if "connection" in state:
            state["connection"].close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return [x for values in latencies for x in values], time.perf_counter() - started, errors


def run_interleaved(calls: dict, concurrency: int, total: int, rounds: int = 10) -> dict[str, dict]:
    block = max(concurrency, total // rounds)
    for call in calls.values():
        run_block(call, concurrency, max(concurrency, block // 4))  # warm-up
    samples = {name: ([], 0.0, []) for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            latencies, wall, errors = run_block(call, concurrency, block)
            kept = samples[name]
            samples[name] = (kept[0] + latencies, kept[1] + wall, kept[2] + errors)
    return {name: summary(*values) for name, values in samples.items()}


def summary(latencies: list[float], wall: float, errors: list[str]) -> dict:
    values = np.array(latencies)
    return {"requests": int(values.size), "errors": len(errors), "first_error": errors[0] if errors else None,
            "rps": round(values.size / wall, 1), "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3), "mean_ms": round(float(values.mean()), 3)}


def fetch_predictions(port: int, body: bytes) -> list:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())["predictions"]
    finally:
        connection.close()


def http_call(port: int, body: bytes, content_type: str = "application/json"):
    headers = {"Content-Type": content_type}

    def call(state):
        connection = state.get("connection")
        if connection is None:
            connection = state["connection"] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        except Exception:
            connection.close()
            state.pop("connection", None)
            raise
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {payload[:200]!r}")

    return call


# --------------------------------------------------------------------------- servers
def start_process(argv: list[str], port_from_first_line: bool, port: int | None = None, env=None) -> dict:
    """Start a server process; seconds to its first line (Keel) and to the first 200 from /ping."""
    started = time.perf_counter()
    # a pipe nobody reads would fill with a server's access log and stall it: only Keel's first line is read
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE if port_from_first_line else subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    first_line_seconds = None
    if port_from_first_line:
        line = process.stdout.readline()
        first_line_seconds = time.perf_counter() - started
        if not line.startswith("Serving"):
            process.kill()
            raise RuntimeError(f"serve did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
    first_answer_seconds, ready_seconds = wait_for_ping(port, started, process)
    return {"process": process, "port": port, "first_line_s": first_line_seconds,
            "first_answer_s": first_answer_seconds, "ready_s": ready_seconds}


def wait_for_ping(port: int, started: float, process, timeout: float = 120.0) -> tuple[float, float]:
    """Seconds to the first answer from /ping (any status: 503 while loading) and to the first 200."""
    first_answer = None
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            status = connection.getresponse().status
            connection.close()
            first_answer = first_answer or time.perf_counter() - started
            if status == 200:
                return first_answer, time.perf_counter() - started
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    raise RuntimeError("server not ready in time")


def stop_process(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def keel_serve_argv(workspace: Path) -> list[str]:
    return [sys.executable, "main.py", "--workspace", str(workspace), "serve", PROJECT, "--port", "0"]


def readiness(starters: dict, starts: int) -> dict:
    """Start each server `starts` times, taking turns; median seconds to a 200 from /ping."""
    runs = {name: [] for name in starters}
    for _ in range(starts):
        for name, start in starters.items():
            started = start()
            stop_process(started["process"])
            runs[name].append(started)
    out = {}
    for name, started in runs.items():
        first = [r["first_line_s"] for r in started if r["first_line_s"] is not None]
        out[name] = {"ready_s": round(statistics.median(r["ready_s"] for r in started), 3),
                     "first_answer_s": round(statistics.median(r["first_answer_s"] for r in started), 3),
                     "first_line_s": round(statistics.median(first), 3) if first else None,
                     "all_ready_s": [round(r["ready_s"], 3) for r in started]}
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- MLflow (optional)
MLFLOW_SAVE = """
import sys, skops.io as sio, mlflow.sklearn
path, out = sys.argv[1], sys.argv[2]
trusted = sio.get_untrusted_types(file=path)  # the benchmark's own freshly trained file
mlflow.sklearn.save_model(sio.load(path, trusted=trusted), out, skops_trusted_types=trusted)
"""


def mlflow_model(python: str, artifact: Path, folder: Path) -> Path:
    out = folder / "mlflow-model"
    done = subprocess.run([python, "-c", MLFLOW_SAVE, str(artifact), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"saving the model for MLflow failed: {done.stderr.strip().splitlines()[-1:]}")
    return out


def mlflow_argv(python: str, model_dir: Path, port: int) -> list[str]:
    mlflow = str(Path(python).with_name("mlflow"))
    return [mlflow, "models", "serve", "-m", str(model_dir), "--env-manager", "local", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="hgb")
    parser.add_argument("--requests", type=int, default=1000, help="requests per way in each 1-row case")
    parser.add_argument("--big-requests", type=int, default=100, help="requests per way in each 1000-row case")
    parser.add_argument("--starts", type=int, default=3, help="server starts for the readiness time")
    parser.add_argument("--mlflow", help="python of a virtualenv with mlflow and skops: compare with `mlflow models serve`")
    parser.add_argument("--logging-only", action="store_true", dest="logging_only",
                        help="only the 1-row cases of direct, keel and keel+log: the prediction log's cost")
    args = parser.parse_args()
    if args.logging_only:
        args.mlflow = None

    with tempfile.TemporaryDirectory(prefix="keel-serve-bench-") as tmp:
        folder = Path(tmp)
        print(f"training a {args.preset} model for the benchmark...", flush=True)
        workspace = make_workspace(folder, args.preset)
        keel = Keel.open(workspace)
        loaded = keel.load_production(PROJECT)
        schema = loaded.project.schema
        artifact = workspace / loaded.model_version.artifact_path
        keel.close()

        bodies = {rows: request_body(rows) for rows in (1, 1000)}
        frames = {rows: protocol.model_frame(protocol.parse_body(body, "application/json", schema.features), schema)
                  for rows, body in bodies.items()}
        mlflow_bodies = {rows: json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
                         for rows, frame in frames.items()}
        counts = {1: args.requests, 1000: args.big_requests}
        openmp_limit = serving.OpenMPLimit(serving.MODEL_THREADS)  # the floor runs as `serve` does

        def direct(rows):
            X = frames[rows]

            def call(state):
                openmp_limit.apply()
                loaded.model.predict(X)
            return call

        log_keel = Keel.open(workspace)  # the in-process way with the prediction log: a real writer thread
        writer = log_keel.prediction_log_writer()
        log_policy = prediction_log.LogPolicy(1.0, 1_000_000, 90.0, None)
        model_version_id = loaded.model_version.id

        def inproc(rows, logged: bool = False):
            """A request handled as the server does, without HTTP; logged: every row also goes to
            the prediction log's writer, as `serve --sample-rate 1` does."""
            body = bodies[rows]

            def call(state):
                openmp_limit.apply()
                table = protocol.parse_body(body, "application/json", schema.features)
                X = protocol.model_frame(table, schema)
                payload = protocol.predictions_payload(loaded.model, "classification", X, False)
                if logged:
                    payload["ids"] = prediction_log.complete_ids(None, len(X))
                    writer.add(loaded.project.id, model_version_id, loaded.model, True, payload["ids"], X,
                               payload["predictions"], None, log_policy)
                json.dumps(payload)
            return call

        mlflow_model_dir = mlflow_model(args.mlflow, artifact, folder) if args.mlflow else None
        def start_keel():  # a known port, so /ping can be polled before the first line
            port = free_port()
            argv = keel_serve_argv(workspace)[:-1] + [str(port)]
            return start_process(argv, port_from_first_line=False, port=port)
        starters = {"keel": start_keel}
        if mlflow_model_dir:
            env = {**os.environ, "PATH": f"{Path(args.mlflow).parent}:{os.environ['PATH']}"}

            def start_mlflow():
                port = free_port()
                return start_process(mlflow_argv(args.mlflow, mlflow_model_dir, port), False, port, env)
            starters["mlflow"] = start_mlflow
        ready = {}
        if not args.logging_only:
            print("timing readiness...", flush=True)
            ready = readiness(starters, args.starts)

        servers = {"keel": start_process(keel_serve_argv(workspace), True),
                   "keel+log": start_process(keel_serve_argv(workspace) + ["--sample-rate", "1"], True)}
        if mlflow_model_dir:
            servers["mlflow"] = starters["mlflow"]()
        results, checks = [], {}
        try:
            keel_predictions = fetch_predictions(servers["keel"]["port"], bodies[1000])
            checks["keel_same_as_direct"] = keel_predictions == loaded.model.predict(frames[1000]).tolist()
            if "mlflow" in servers:
                checks["mlflow_same_as_keel"] = fetch_predictions(servers["mlflow"]["port"], mlflow_bodies[1000]) \
                    == keel_predictions
            for rows in (1,) if args.logging_only else (1, 1000):
                for concurrency in (1, 8):
                    calls = {("keel", "direct"): direct(rows), ("keel", "inproc"): inproc(rows),
                             ("keel", "http"): http_call(servers["keel"]["port"], bodies[rows]),
                             ("keel+log", "inproc"): inproc(rows, logged=True),
                             ("keel+log", "http"): http_call(servers["keel+log"]["port"], bodies[rows])}
                    if "mlflow" in servers:
                        calls[("mlflow", "http")] = http_call(servers["mlflow"]["port"], mlflow_bodies[rows])
                    measured = run_interleaved(calls, concurrency, counts[rows])
                    for (server, way), figures in measured.items():
                        results.append({"server": server, "way": way, "rows": rows, "concurrency": concurrency,
                                        **figures})
                    print(f"  rows={rows} c={concurrency}: " + ", ".join(
                        f"{s} {w} {f['p50_ms']:.2f} ms" for (s, w), f in measured.items()), flush=True)
        finally:
            for server in servers.values():
                stop_process(server["process"])
            writer.stop()
            log_keel.close()
        checks["inproc_writer_rows"] = writer.written
        checks["logged_rows"], checks["rows_sent_to_keel_log"] = logged_rows(workspace), sent_to_log(results)
        checks["log_complete"] = checks["logged_rows"] >= checks["rows_sent_to_keel_log"]

    table, verdicts = summarise(results, ready)
    print(table)
    print(f"checks: {checks}")
    payload = {"benchmark": "serve_bench", "at": datetime.now(UTC).isoformat(timespec="seconds"),
               "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_average_1m": round(os.getloadavg()[0], 2), "preset": args.preset,
               "client": "http.client keep-alive, one connection per thread, in the benchmark process",
               "readiness": ready, "checks": checks, "results": results, "targets": verdicts}
    results_path = RESULTS.with_name("serve_bench_logging.json") if args.logging_only else RESULTS
    results_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results_path, json.dumps(payload, indent=2))
    print(f"wrote {results_path.relative_to(ROOT)}")
    return 0


def logged_rows(workspace: Path) -> int:
    """Rows the keel+log server recorded (its stop flushed them all)."""
    keel = Keel.open(workspace)
    try:
        return keel.status(PROJECT).prediction_log.rows
    finally:
        keel.close()


def sent_to_log(results: list[dict]) -> int:
    """Rows the benchmark sent to keel+log: over HTTP and to the in-process writer, errors excluded."""
    return sum((r["requests"] - r["errors"]) * r["rows"] for r in results if r["server"] == "keel+log")


def summarise(results: list[dict], ready: dict) -> tuple[str, dict]:
    def find(server, rows, concurrency, way):
        return next((r for r in results if (r["server"], r["rows"], r["concurrency"], r["way"])
                     == (server, rows, concurrency, way)), None)

    lines = [f"{'server':<12} {'way':<7} {'rows':>5} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'p50 over direct':>16} {'errors':>6}"]
    for r in results:
        over = r["p50_ms"] - find("keel", r["rows"], r["concurrency"], "direct")["p50_ms"]
        lines.append(f"{r['server']:<12} {r['way']:<7} {r['rows']:>5} {r['concurrency']:>4} {r['rps']:>9.1f} "
                     f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {over:>+16.3f} {r['errors']:>6}")
    logging = {}
    for concurrency in (1, 8):
        plain, logged = find("keel", 1, concurrency, "http"), find("keel+log", 1, concurrency, "http")
        plain_in, logged_in = find("keel", 1, concurrency, "inproc"), find("keel+log", 1, concurrency, "inproc")
        logging[f"c{concurrency}"] = {"keel_p50_ms": plain["p50_ms"], "keel_log_p50_ms": logged["p50_ms"],
                                      "added_ms": round(logged["p50_ms"] - plain["p50_ms"], 3),
                                      "added_pct": round(100 * (logged["p50_ms"] / plain["p50_ms"] - 1), 1),
                                      "inproc_added_ms": round(logged_in["p50_ms"] - plain_in["p50_ms"], 3),
                                      "inproc_added_pct": round(100 * (logged_in["p50_ms"] / plain_in["p50_ms"] - 1),
                                                                1)}
    for name, figures in ready.items():
        first = f"first line after {figures['first_line_s']:.2f} s, " if figures.get("first_line_s") else ""
        lines.append(f"{name} serve: {first}/ping first answered after {figures['first_answer_s']:.2f} s, "
                     f"200 after {figures['ready_s']:.2f} s "
                     f"(median of runs {figures['all_ready_s']})")
    overhead = round(find("keel", 1, 1, "http")["p50_ms"] - find("keel", 1, 1, "direct")["p50_ms"], 3)
    verdicts = {"one_row_p50_overhead_ms": overhead, "one_row_overhead_target_ms": 1.0,
                "one_row_overhead_met": overhead <= 1.0,
                "prediction_log_added_p50": logging, "prediction_log_target_pct": 10.0,
                "prediction_log_met": logging["c1"]["added_pct"] <= 10.0}
    if "keel" in ready:
        verdicts.update(ready_s=ready["keel"]["ready_s"], ready_target_s=1.5, ready_met=ready["keel"]["ready_s"] <= 1.5)
    if "mlflow" in ready:
        for rows in (1, 1000):
            for concurrency in (1, 8):
                ours, theirs = find("keel", rows, concurrency, "http"), find("mlflow", rows, concurrency, "http")
                verdicts[f"mlflow_over_keel_p50_rows{rows}_c{concurrency}"] = round(theirs["p50_ms"] / ours["p50_ms"], 2)
        verdicts["mlflow_over_keel_ready"] = round(ready["mlflow"]["ready_s"] / ready["keel"]["ready_s"], 2)
    lines.append(f"1-row p50 overhead over direct predict: {overhead:+.3f} ms (target <= 1 ms: "
                 f"{'met' if verdicts['one_row_overhead_met'] else 'NOT met'})" +
                 (f"; ready in {verdicts['ready_s']:.2f} s (target <= 1.5 s: "
                  f"{'met' if verdicts['ready_met'] else 'NOT met'})" if "ready_s" in verdicts else ""))
    for key, figures in logging.items():
        lines.append(f"prediction log (every row recorded), 1-row p50 at {key}: {figures['keel_p50_ms']:.3f} -> "
                     f"{figures['keel_log_p50_ms']:.3f} ms over HTTP ({figures['added_ms']:+.3f} ms, "
                     f"{figures['added_pct']:+.1f} %), {figures['inproc_added_ms']:+.3f} ms "
                     f"({figures['inproc_added_pct']:+.1f} %) in-process; target <= 10 % at c1: "
                     f"{'met' if verdicts['prediction_log_met'] else 'NOT met'}")
    return "\n".join(lines), verdicts


if __name__ == "__main__":
    sys.exit(main())
