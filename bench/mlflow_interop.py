"""Keel -> MLflow, checked with MLflow itself: a real `mlflow server`, MLflow's client, pyfunc.

    .venv/bin/python bench/mlflow_interop.py [--mlflow-venv /tmp/mlflow-venv] [--batches 12]
                                             [--smoke]

1. MLflow in its own virtualenv (created with `pip install mlflow skops` when missing; Keel
   itself never imports MLflow).
2. The demo project, with the first --batches batches of its stream monitored (a concept
   change, a policy retrain and redeploy: several versions).
3. `mlflow server` on 127.0.0.1 with a SQLite backend store and --serve-artifacts.
4. `keel push demo-credit --all`, then the same push again (it must add nothing), timed.
   The reference: MLflow's own client logging and registering the same models
   (mlflow.sklearn.log_model(serialization_format="skops", registered_model_name=...)) on a
   second, fresh server, timed in the same run; both as whole commands from process start.
5. MLflow's client reads everything back (runs, params, metrics, tags, model versions, the
   `production` alias), loads `models:/demo-credit@production` (downloaded through the
   artifact proxy) and the directory of `keel export --format mlflow` with
   mlflow.pyfunc.load_model, and predicts; the predictions must equal Keel's.
6. `mlflow models serve -m DIR --env-manager local` answers the directory's
   serving_input_example.json with Keel's predictions.

Prints what it did and writes bench/results/mlflow_interop.json. Exit 1 if a check fails.
--smoke: 2 batches and no reference timing (for a quick look).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.domain.results import ProjectStatus  # noqa: E402  (after the path is set)

RESULTS = ROOT / "bench" / "results" / "mlflow_interop.json"
PROJECT = "demo-credit"

# Runs in the MLflow virtualenv: read back through MLflow's client, load with pyfunc, predict.
MLFLOW_SIDE = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import mlflow, pandas as pd
from mlflow import MlflowClient

uri, project, export_dir, frame_path = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
client = MlflowClient(uri)
experiment = client.get_experiment_by_name(project)
runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
versions = client.search_model_versions(f"name = '{project}'")
production = client.get_model_version_by_alias(project, "production")
frame = pd.read_parquet(frame_path)
started = time.perf_counter()
registered = mlflow.pyfunc.load_model(f"models:/{project}@production")
load_registered = time.perf_counter() - started
exported = mlflow.pyfunc.load_model(export_dir)
print(json.dumps({
    "mlflow_version": mlflow.__version__,
    "experiment": {"id": experiment.experiment_id, "artifact_location": experiment.artifact_location},
    "runs": [{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
              "artifact_uri": r.info.artifact_uri, "params": len(r.data.params), "metrics": r.data.metrics,
              "keel_version": r.data.tags.get("keel.version"), "keel_sha256": r.data.tags.get("keel.sha256"),
              "lineage": r.data.tags.get("keel.dataset_versions")} for r in runs],
    "model_versions": sorted([{"version": v.version, "run_id": v.run_id, "source": v.source, "status": v.status,
                               "keel_version": v.tags.get("keel.version")} for v in versions],
                             key=lambda v: int(v["version"])),
    "production": {"version": production.version, "keel_version": production.tags.get("keel.version")},
    "registered_flavors": sorted(registered.metadata.flavors),
    "load_registered_seconds": load_registered,
    "predictions_registered": [x.item() if hasattr(x, "item") else x for x in registered.predict(frame)],
    "predictions_exported": [x.item() if hasattr(x, "item") else x for x in exported.predict(frame)],
}))
'''

# Runs in the MLflow virtualenv: MLflow's own way to log and register the same models (the reference).
MLFLOW_REFERENCE = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import mlflow, skops.io
from mlflow.models import infer_signature
import pandas as pd

uri, name, frame_path = sys.argv[1:4]
models = json.loads(sys.argv[4])
mlflow.set_tracking_uri(uri)
mlflow.set_experiment(name)
frame = pd.read_parquet(frame_path).head(5)
started = time.perf_counter()
for item in models:
    model = skops.io.load(item["path"], trusted=item["trusted"])
    with mlflow.start_run(run_name=f"{name}-v{item['version']}"):
        mlflow.log_params(item["params"])
        mlflow.log_metrics(item["metrics"])
        mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                 skops_trusted_types=item["trusted"], input_example=frame,
                                 registered_model_name=name, pip_requirements=item["requirements"])
print(json.dumps({"logging_seconds": time.perf_counter() - started}))
'''


# --------------------------------------------------------------------------- set-up
def ensure_mlflow(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not (python.exists() and subprocess.run([python, "-c", "import mlflow, skops"], capture_output=True).returncode == 0):
        print(f"installing MLflow into {venv} (pip install mlflow skops; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "mlflow", "skops"], check=True)
    return python


def build_demo(workspace: Path, batches: int):
    from app.core.services.lifecycle import Keel
    from app.demo.demo_project import create_demo
    from app.demo.demo_stream import demo_batch

    keel = Keel.open(workspace)
    create_demo(keel)
    for index in range(batches):
        path = workspace / "demo" / f"demo-batch-{index + 1:03d}.csv"
        demo_batch(index).to_csv(path, index=False)
        keel.ingest(PROJECT, path, by="scheduler")
        keel.policy.monitor(PROJECT, by="scheduler")
    return keel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float, process: subprocess.Popen) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start(command: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def keel_command(workspace: Path, *args: str) -> tuple[dict, float]:
    """`python main.py ... --json` in its own process: (its JSON, wall seconds from start to exit)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace), *args, "--json"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"keel {' '.join(args)} failed ({done.returncode}): {done.stdout} {done.stderr[-2000:]}")
    return json.loads(done.stdout), seconds


def keel_cli(workspace: Path, *args: str) -> dict:
    import contextlib
    import io

    from app.frontends.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--workspace", str(workspace), *args, "--json"])
    result = json.loads(out.getvalue())
    if code != 0:
        raise RuntimeError(f"keel {' '.join(args)} failed ({code}): {result}")
    return result


# --------------------------------------------------------------------------- the run
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-venv", default="/tmp/mlflow-venv")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    batches = 2 if args.smoke else args.batches
    python = ensure_mlflow(Path(args.mlflow_venv))
    folder = Path(tempfile.mkdtemp(prefix="keel-mlflow-interop-"))
    checks: dict[str, bool] = {}
    processes = []
    try:
        workspace = folder / "workspace"
        keel = build_demo(workspace, batches)
        status = keel.status(PROJECT)
        print(f"demo project: {len(status.versions)} version(s), production v{status.production_version}, "
              f"{batches} monitored batch(es)")

        port = free_port()
        server_log = folder / "mlflow-server.log"
        server = start([str(python), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--serve-artifacts",
                        "--artifacts-destination", str(folder / "mlflow-artifacts"), "--workers", "1"],
                       server_log, {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})
        processes.append(server)
        uri = f"http://127.0.0.1:{port}"
        startup = wait_for(uri + "/health", 180, server)
        print(f"mlflow server {uri} (SQLite backend, --serve-artifacts) ready in {startup:.1f} s")

        first, push_seconds = keel_command(workspace, "push", PROJECT, "--tracking-uri", uri, "--all")
        second, second_seconds = keel_command(workspace, "push", PROJECT, "--tracking-uri", uri, "--all")
        print(f"keel push --all (the whole command, from process start): {len(first['versions'])} version(s), "
              f"{first['added']} change(s) in {push_seconds:.2f} s; again: {second['added']} change(s) in "
              f"{second_seconds:.2f} s")
        checks["first push registers every version"] = len(first["versions"]) == len(status.versions)
        checks["second push adds nothing"] = second["added"] == 0

        export_dir = folder / "exported-production"
        keel_cli(workspace, "export", PROJECT, "--version", str(status.production_version), "--format", "mlflow",
                 "--output", str(export_dir))
        from app.core.ml import datasets

        loaded = keel.load_version(PROJECT, status.production_version)
        frame = datasets.to_model_frame(keel.dataset_frame(PROJECT, batches + 1), loaded.project.schema)
        frame_path = folder / "frame.parquet"
        frame.to_parquet(frame_path)
        expected = [x.item() if hasattr(x, "item") else x for x in loaded.model.predict(frame)]

        side = folder / "mlflow_side.py"
        side.write_text(MLFLOW_SIDE)
        read = subprocess.run([str(python), str(side), uri, PROJECT, str(export_dir), str(frame_path)],
                              capture_output=True, text=True, env={**os.environ,
                                                                   "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})
        if read.returncode != 0:
            raise RuntimeError(f"MLflow's client failed:\n{read.stderr[-3000:]}")
        seen = json.loads(read.stdout.strip().splitlines()[-1])
        report_mlflow_side(seen, status, expected, checks)

        served = serve_directory(python, export_dir, folder, processes)
        checks["mlflow models serve -m DIR predicts what Keel predicts"] = served["predictions"] == [
            x.item() if hasattr(x, "item") else x for x in loaded.model.predict(served["frame"])]
        print(f"mlflow models serve -m {export_dir.name} --env-manager local: ready in {served['startup']:.1f} s, "
              f"predictions {served['predictions']} (Keel: the same: "
              f"{checks['mlflow models serve -m DIR predicts what Keel predicts']})")

        reference = None if args.smoke else reference_timing(python, keel, folder, frame_path, status)
        if reference is not None:
            print(f"reference, MLflow's own client (a script: log_model skops + register the same "
                  f"{len(status.versions)} models, from process start) on a second server: {reference:.2f} s; "
                  f"keel push: {push_seconds:.2f} s (ratio {push_seconds / reference:.2f})")
        keel.close()
        write_results(status, batches, seen, first, second, push_seconds, second_seconds, reference, served, checks)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)
    failed = [name for name, ok in checks.items() if not ok]
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    return 1 if failed else 0


def report_mlflow_side(seen: dict, status: ProjectStatus, expected: list, checks: dict) -> None:
    print(f"MLflow {seen['mlflow_version']} client reads back: experiment {seen['experiment']['id']} "
          f"(artifacts at {seen['experiment']['artifact_location']}), {len(seen['runs'])} run(s), "
          f"{len(seen['model_versions'])} model version(s), alias production -> version "
          f"{seen['production']['version']} (Keel v{seen['production']['keel_version']})")
    for run in seen["runs"]:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run["metrics"].items()))
        print(f"  run {run['name']} {run['status']}: {run['params']} params, {metrics}; "
              f"keel.dataset_versions={run['lineage']}, artifacts {run['artifact_uri']}")
    for version in seen["model_versions"]:
        print(f"  model version {version['version']} (Keel v{version['keel_version']}) {version['status']} "
              f"source {version['source']}")
    checks["every run finished, with params and metrics"] = all(
        r["status"] == "FINISHED" and r["params"] and r["metrics"] for r in seen["runs"])
    checks["model sources are on the server (mlflow-artifacts)"] = all(
        v["source"].startswith("mlflow-artifacts:") for v in seen["model_versions"])
    checks["production alias names Keel's production version"] = \
        seen["production"]["keel_version"] == str(status.production_version)
    checks["pyfunc flavors of the registered model"] = seen["registered_flavors"] == ["python_function", "sklearn"]
    checks["models:/NAME@production predicts what Keel predicts"] = seen["predictions_registered"] == expected
    checks["pyfunc.load_model(exported DIR) predicts what Keel predicts"] = seen["predictions_exported"] == expected
    print(f"predictions on {len(expected)} rows: registered model == Keel: "
          f"{checks['models:/NAME@production predicts what Keel predicts']}; exported directory == Keel: "
          f"{checks['pyfunc.load_model(exported DIR) predicts what Keel predicts']}")


def serve_directory(python: Path, export_dir: Path, folder: Path, processes: list) -> dict:
    import pandas as pd

    port = free_port()
    process = start([str(python), "-m", "mlflow", "models", "serve", "-m", str(export_dir), "--env-manager", "local",
                     "-h", "127.0.0.1", "-p", str(port)], folder / "mlflow-serve.log",
                    {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",  # its scoring server runs the venv's uvicorn
                     "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    processes.append(process)
    startup = wait_for(f"http://127.0.0.1:{port}/ping", 180, process)
    body = (export_dir / "serving_input_example.json").read_bytes()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.loads(response.read())["predictions"]
    split = json.loads(body)["dataframe_split"]
    stop(process)
    return {"startup": startup, "predictions": predictions,
            "frame": pd.DataFrame(split["data"], columns=split["columns"])}


def reference_timing(python: Path, keel, folder: Path, frame_path: Path, status: dict) -> float:
    """MLflow's own client logging and registering the same models, on a fresh server."""
    from app.core.services import mlflow_model

    port = free_port()
    process = start([str(python), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                     "--backend-store-uri", f"sqlite:///{folder / 'reference.db'}", "--serve-artifacts",
                     "--artifacts-destination", str(folder / "reference-artifacts"), "--workers", "1"],
                    folder / "reference-server.log")
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for(uri + "/health", 180, process)
        models = []
        for entry in status.versions:
            facts = keel.mlflow.version_facts(PROJECT, entry.version)
            record = keel.mlflow.run_record(PROJECT, entry.version)
            models.append({"version": entry.version, "path": str(facts.artifact), "trusted": list(facts.trusted_types),
                           "params": record.params, "metrics": record.metrics,
                           "requirements": mlflow_model.pinned_requirements(facts.library_versions)})
        script = folder / "mlflow_reference.py"
        script.write_text(MLFLOW_REFERENCE)
        started = time.perf_counter()  # the whole script, from process start, as for `keel push`
        done = subprocess.run([str(python), str(script), uri, PROJECT, str(frame_path), json.dumps(models)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"MLflow's reference logging failed:\n{done.stderr[-3000:]}")
        return time.perf_counter() - started
    finally:
        stop(process)


def write_results(status, batches, seen, first, second, push_seconds, second_seconds, reference, served, checks):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "mlflow_version": seen["mlflow_version"],
        "keel_versions": len(status.versions), "monitored_batches": batches,
        "push_seconds": round(push_seconds, 3), "push_changes": first["added"],
        "second_push_seconds": round(second_seconds, 3), "second_push_changes": second["added"],
        "mlflow_client_reference_seconds": None if reference is None else round(reference, 3),
        "push_over_reference": None if reference is None else round(push_seconds / reference, 3),
        "runs": len(seen["runs"]), "model_versions": len(seen["model_versions"]),
        "production_alias": seen["production"], "serve_startup_seconds": round(served["startup"], 2),
        "checks": checks,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
