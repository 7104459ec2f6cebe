"""The scoring server on loopback, next to calling the model's predict directly in the same run.

    .venv/bin/python bench/serve_bench.py [--preset hgb] [--requests 2000] [--big-requests 150]
                                          [--mlflow /tmp/mlflow-venv/bin/python]

For 1-row and 1,000-row requests at concurrency 1 and 8, three ways of getting predictions:

- direct:  model.predict(X) on the ready model frame, from `concurrency` threads (the floor);
- inproc:  Keel's request handling without HTTP: parse the JSON body, build the model frame
           with the project's cleaning rules, predict (where the overhead goes);
- http:    POST /invocations to `main.py serve` running in its own process, one keep-alive
           connection per client thread (the client is Python's http.client in this process).

Also: seconds from starting `main.py serve` to its first line and to the first 200 from /ping
(median of 3 starts). With --mlflow PYTHON (a virtualenv with mlflow and skops), the same
model saved with mlflow.sklearn is served by `mlflow models serve` and timed the same way;
it gets the model frame as its input, since MLflow does not apply Keel's cleaning.

Targets (issue 5): 1-row p50 overhead above direct predict <= 1 ms; /ping answers 200 within
1.5 s of start. Prints a table; writes bench/results/serve_bench.json.
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core import serving, serving_protocol as protocol  # noqa: E402
from app.core.fileio import write_text_atomic  # noqa: E402
from app.core.lifecycle import Keel  # noqa: E402
from app.core.simulator import make_batch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serve_bench.json"
PROJECT = "bench"


# --------------------------------------------------------------------------- set-up
def make_workspace(folder: Path, preset: str) -> Path:
    data = folder / "train.csv"
    make_batch(3000, seed=1).to_csv(data, index=False)
    keel = Keel.open(folder / "workspace")
    try:
        keel.create_project(PROJECT, data, "default", settings={"preset": preset})
        version = keel.train(PROJECT)["version"]
        keel.deploy(PROJECT, version)
    finally:
        keel.close()
    return folder / "workspace"


def request_body(rows: int) -> bytes:
    frame = make_batch(rows, seed=100 + rows).drop(columns=["default"])
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()


# --------------------------------------------------------------------------- load generation
def run_threads(call, concurrency: int, total: int) -> dict:
    """Run `call()` `total` times from `concurrency` threads; latencies in ms and overall rate."""
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

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    flat = np.concatenate([np.array(values) for values in latencies])
    return {"requests": int(total), "errors": len(errors), "first_error": errors[0] if errors else None,
            "rps": round(total / wall, 1), "p50_ms": round(float(np.percentile(flat, 50)), 3),
            "p99_ms": round(float(np.percentile(flat, 99)), 3), "mean_ms": round(float(flat.mean()), 3)}


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
    ready_seconds = wait_for_ping(port, started, process)
    return {"process": process, "port": port, "first_line_s": first_line_seconds, "ready_s": ready_seconds}


def wait_for_ping(port: int, started: float, process, timeout: float = 120.0) -> float:
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return time.perf_counter() - started
        except OSError:
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


def readiness(argv_factory, starts: int, **kwargs) -> dict:
    runs = []
    for _ in range(starts):
        started = start_process(argv_factory(), **kwargs)
        stop_process(started["process"])
        runs.append(started)
    first = [r["first_line_s"] for r in runs if r["first_line_s"] is not None]
    return {"ready_s": round(statistics.median(r["ready_s"] for r in runs), 3),
            "first_line_s": round(statistics.median(first), 3) if first else None,
            "all_ready_s": [round(r["ready_s"], 3) for r in runs]}


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
    parser.add_argument("--requests", type=int, default=2000, help="requests per 1-row case")
    parser.add_argument("--big-requests", type=int, default=150, help="requests per 1000-row case")
    parser.add_argument("--starts", type=int, default=3, help="server starts for the readiness time")
    parser.add_argument("--mlflow", help="python of a virtualenv with mlflow and skops: compare with `mlflow models serve`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keel-serve-bench-") as tmp:
        folder = Path(tmp)
        print(f"training a {args.preset} model for the benchmark...", flush=True)
        workspace = make_workspace(folder, args.preset)
        keel = Keel.open(workspace)
        loaded = keel.load_production(PROJECT)
        schema = loaded.project["schema"]
        artifact = workspace / loaded.model_version["artifact_path"]
        keel.close()

        bodies = {rows: request_body(rows) for rows in (1, 1000)}
        frames = {rows: protocol.model_frame(protocol.parse_body(body, "application/json", schema["features"]), schema)
                  for rows, body in bodies.items()}
        counts = {1: args.requests, 1000: args.big_requests}

        openmp_limit = serving.OpenMPLimit(serving.MODEL_THREADS)  # the floor runs as `serve` does

        def direct(rows):
            X = frames[rows]

            def call(state):
                openmp_limit.apply()
                loaded.model.predict(X)
            return call

        def inproc(rows):
            body = bodies[rows]

            def call(state):
                openmp_limit.apply()
                table = protocol.parse_body(body, "application/json", schema["features"])
                X = protocol.model_frame(table, schema)
                json.dumps(protocol.predictions_payload(loaded.model, "classification", X, False))
            return call

        results = []
        print("timing readiness...", flush=True)
        keel_ready = readiness(lambda: keel_serve_argv(workspace), args.starts, port_from_first_line=True)
        server = start_process(keel_serve_argv(workspace), port_from_first_line=True)
        mlflow = None
        try:
            keel_predictions = fetch_predictions(server["port"], bodies[1000])
            assert keel_predictions == loaded.model.predict(frames[1000]).tolist(), "served != direct predictions"
            for rows in (1, 1000):
                for concurrency in (1, 8):
                    n = counts[rows]
                    for way, call in (("direct", direct(rows)), ("inproc", inproc(rows)),
                                      ("http", http_call(server["port"], bodies[rows]))):
                        run_threads(call, concurrency, max(20, n // 20))  # warm-up
                        measured = run_threads(call, concurrency, n)
                        results.append({"server": "keel", "rows": rows, "concurrency": concurrency, "way": way,
                                        **measured})
                        print(f"  keel {way:<6} rows={rows:<5} c={concurrency}: p50 {measured['p50_ms']:.3f} ms",
                              flush=True)
        finally:
            stop_process(server["process"])
        time_sampling(workspace, bodies, counts, results)
        if args.mlflow:
            try:
                mlflow = run_mlflow(args, folder, artifact, frames, counts, results)
                mlflow["same_predictions_as_keel"] = mlflow.pop("predictions_1000") == keel_predictions
            except Exception as exc:  # the comparison is optional: keep Keel's figures
                print(f"mlflow comparison failed: {exc}", flush=True)

    table, verdicts = summarise(results, keel_ready, mlflow)
    print(table)
    payload = {"benchmark": "serve_bench", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "preset": args.preset,
               "client": "http.client keep-alive, one connection per thread, in the benchmark process",
               "readiness": keel_ready, "mlflow": mlflow, "results": results, "targets": verdicts}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS, json.dumps(payload, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def time_sampling(workspace: Path, bodies: dict, counts: dict, results: list) -> None:
    """The cost of --sample-rate 1 (every request logged to the registry), at concurrency 1."""
    server = start_process(keel_serve_argv(workspace) + ["--sample-rate", "1"], port_from_first_line=True)
    try:
        for rows in (1, 1000):
            call = http_call(server["port"], bodies[rows])
            run_threads(call, 1, max(20, counts[rows] // 20))
            measured = run_threads(call, 1, counts[rows])
            results.append({"server": "keel+samples", "rows": rows, "concurrency": 1, "way": "http", **measured})
            print(f"  keel+samples http rows={rows:<5} c=1: p50 {measured['p50_ms']:.3f} ms", flush=True)
    finally:
        stop_process(server["process"])


def run_mlflow(args, folder, artifact, frames, counts, results) -> dict:
    print("timing mlflow models serve...", flush=True)
    model_dir = mlflow_model(args.mlflow, artifact, folder)
    env = {**os.environ, "PATH": f"{Path(args.mlflow).parent}:{os.environ['PATH']}"}
    runs = []
    for _ in range(args.starts):
        port = free_port()
        started = start_process(mlflow_argv(args.mlflow, model_dir, port), port_from_first_line=False, port=port, env=env)
        runs.append(started)
        if len(runs) < args.starts:
            stop_process(started["process"])
    ready = {"ready_s": round(statistics.median(r["ready_s"] for r in runs), 3),
             "all_ready_s": [round(r["ready_s"], 3) for r in runs]}
    server = runs[-1]
    try:
        predictions = fetch_predictions(server["port"], json.dumps(
            {"dataframe_split": json.loads(frames[1000].to_json(orient="split", index=False))}).encode())
        for rows in (1, 1000):
            body = json.dumps({"dataframe_split": json.loads(frames[rows].to_json(orient="split", index=False))}).encode()
            for concurrency in (1, 8):
                call = http_call(server["port"], body)
                run_threads(call, concurrency, max(20, counts[rows] // 20))
                measured = run_threads(call, concurrency, counts[rows])
                results.append({"server": "mlflow", "rows": rows, "concurrency": concurrency, "way": "http", **measured})
                print(f"  mlflow http   rows={rows:<5} c={concurrency}: p50 {measured['p50_ms']:.3f} ms", flush=True)
    finally:
        stop_process(server["process"])
    return {"readiness": ready, "predictions_1000": predictions}



def summarise(results: list[dict], keel_ready: dict, mlflow: dict | None) -> tuple[str, dict]:
    def find(server, rows, concurrency, way):
        return next((r for r in results if (r["server"], r["rows"], r["concurrency"], r["way"])
                     == (server, rows, concurrency, way)), None)

    lines = [f"{'server':<12} {'way':<7} {'rows':>5} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'p50 over direct':>16} {'errors':>6}"]
    for r in results:
        floor = find("keel", r["rows"], r["concurrency"], "direct")
        over = r["p50_ms"] - floor["p50_ms"]
        lines.append(f"{r['server']:<12} {r['way']:<7} {r['rows']:>5} {r['concurrency']:>4} {r['rps']:>9.1f} "
                     f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {over:>+16.3f} {r['errors']:>6}")
    lines.append(f"keel serve: first line after {keel_ready['first_line_s']:.2f} s, /ping 200 after "
                 f"{keel_ready['ready_s']:.2f} s (median; runs {keel_ready['all_ready_s']})")
    one_row_http = find("keel", 1, 1, "http")
    one_row_direct = find("keel", 1, 1, "direct")
    overhead = round(one_row_http["p50_ms"] - one_row_direct["p50_ms"], 3)
    verdicts = {"one_row_p50_overhead_ms": overhead, "one_row_overhead_target_ms": 1.0,
                "one_row_overhead_met": overhead <= 1.0,
                "ready_s": keel_ready["ready_s"], "ready_target_s": 1.5, "ready_met": keel_ready["ready_s"] <= 1.5}
    if mlflow:
        lines.append(f"mlflow models serve: /ping 200 after {mlflow['readiness']['ready_s']:.2f} s "
                     f"(runs {mlflow['readiness']['all_ready_s']}); same 1000 predictions as Keel: "
                     f"{mlflow.get('same_predictions_as_keel')}")
        for rows in (1, 1000):
            for concurrency in (1, 8):
                ours, theirs = find("keel", rows, concurrency, "http"), find("mlflow", rows, concurrency, "http")
                if ours and theirs:
                    verdicts[f"mlflow_over_keel_p50_rows{rows}_c{concurrency}"] = round(theirs["p50_ms"] / ours["p50_ms"], 2)
        verdicts["mlflow_over_keel_ready"] = round(mlflow["readiness"]["ready_s"] / keel_ready["ready_s"], 2)
    lines.append(f"1-row p50 overhead over direct predict: {overhead:+.3f} ms (target <= 1 ms: "
                 f"{'met' if verdicts['one_row_overhead_met'] else 'NOT met'}); ready in {keel_ready['ready_s']:.2f} s "
                 f"(target <= 1.5 s: {'met' if verdicts['ready_met'] else 'NOT met'})")
    return "\n".join(lines), verdicts


if __name__ == "__main__":
    sys.exit(main())
