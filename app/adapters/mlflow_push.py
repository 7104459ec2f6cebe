"""`push NAME --tracking-uri URI [--version N | --all]`: Keel's versions on a team's MLflow server.

Each version becomes one MLflow run in the experiment named after the project (params,
metrics, tags with Keel's lineage) whose artifacts hold its MLflow model directory,
uploaded through the server's artifact proxy (so the server holds the model, never a
path on this desktop), and one version of the registered model of the same name. The
production version gets the `production` alias.

Idempotent: a version whose finished run (same project, version and sha256) and model
version are on the server already adds nothing; a run left unfinished by an interrupted
push is deleted and made again. A second push sends only reads.
"""

from __future__ import annotations

import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from app.adapters.mlflow_rest import MlflowRestClient, tags_of
from app.core.domain.errors import KeelError
from app.core.domain.handoff import ProductionAlias, PushedVersion, PushResult, RunRecord, VersionFacts
from app.core.domain.results import ProjectStatus

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel

PRODUCTION_ALIAS = "production"
MODEL_ARTIFACT_DIR = "model"
READY_TIMEOUT_SECONDS = 60


def push(keel: Keel, name: str, tracking_uri: str, version: int | None = None, all_versions: bool = False,
         client: MlflowRestClient | None = None) -> PushResult:
    status = keel.status(name)
    production = status.production_version
    versions = _versions_to_push(status, version, all_versions)
    client = client or MlflowRestClient(tracking_uri)
    experiment = _experiment(client, name)
    _registered_model(client, name)
    registered = {tags_of(mv).get("keel.version"): mv for mv in client.search_model_versions(name)}
    pushed = tuple(_push_version(keel, client, name, experiment, v, registered) for v in versions)
    alias = _production_alias(client, name, production, registered)
    added = sum(p.run_created + p.model_version_created for p in pushed) + int(alias.changed)
    return PushResult(project=name, tracking_uri=client.base, experiment_id=experiment["experiment_id"],
                      registered_model=name, versions=pushed, alias=alias, added=added)


def _versions_to_push(status: ProjectStatus, version: int | None, all_versions: bool) -> list[int]:
    known = [v.version for v in status.versions]
    if version is not None and all_versions:
        raise KeelError("give --version N or --all, not both")
    if all_versions:
        if not known:
            raise KeelError(f"project {status.project!r} has no model versions yet")
        return known
    if version is not None:
        if version not in known:
            raise KeelError(f"unknown model version {version} (versions: {known or 'none yet'})")
        return [version]
    if status.production_version is None:
        raise KeelError(f"project {status.project!r} has no production model yet: give --version N or --all")
    return [status.production_version]


def _experiment(client: MlflowRestClient, name: str) -> dict:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        client.create_experiment(name, {"keel.project": name})
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise KeelError(f"the MLflow server at {client.base} did not create the experiment {name!r}")
    if experiment.get("lifecycle_stage") == "deleted":
        raise KeelError(f"the MLflow experiment {name!r} is deleted on {client.base}: restore it "
                        "(or delete it for good) and push again")
    _artifact_proxy_path(client, experiment["artifact_location"])  # refuse before writing anything
    return experiment


def _artifact_proxy_path(client: MlflowRestClient, artifact_uri: str) -> str:
    """The path under the server's artifact proxy, or a clear refusal when the server does not proxy."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "mlflow-artifacts":
        return parsed.path.strip("/")
    anchor = "/api/2.0/mlflow-artifacts/artifacts/"
    if parsed.scheme in ("http", "https") and anchor in parsed.path:
        return parsed.path.split(anchor, 1)[1].strip("/")
    raise KeelError(f"the MLflow server at {client.base} stores artifacts at {artifact_uri!r}, not through its "
                    "artifact proxy; start it with `mlflow server --serve-artifacts` (an mlflow-artifacts:/ "
                    "artifact root) so that it holds the models")


def _registered_model(client: MlflowRestClient, name: str) -> dict:
    model = client.get_registered_model(name)
    if model is None:
        model = client.create_registered_model(name, f"Models of the Keel project {name}", {"keel.project": name})
    return model


def _push_version(keel: Keel, client: MlflowRestClient, name: str, experiment: dict, version: int,
                  registered: dict) -> PushedVersion:
    record = keel.mlflow.run_record(name, version)  # registry reads only: a push with nothing to do is quick
    sha256 = record.sha256
    run, created = _finished_run(keel, client, name, experiment, version, record)
    model_version = registered.get(str(version))
    model_version_created = model_version is None
    if model_version is None:
        source = run["info"]["artifact_uri"].rstrip("/") + "/" + MODEL_ARTIFACT_DIR
        model_version = client.create_model_version(
            name, source, run["info"]["run_id"], {"keel.version": str(version), "keel.sha256": sha256},
            record.description)
        model_version = _wait_ready(client, name, model_version)
        registered[str(version)] = model_version
    elif tags_of(model_version).get("keel.sha256") != sha256:
        raise KeelError(f"the registered model {name!r} on {client.base} has another v{version} "
                        f"(sha256 {tags_of(model_version).get('keel.sha256', '?')[:12]}…): a different project "
                        "of the same name; nothing of it was changed")
    return PushedVersion(version=version, run_id=run["info"]["run_id"], model_version=model_version["version"],
                         run_created=created, model_version_created=model_version_created)


def _finished_run(keel: Keel, client: MlflowRestClient, name: str, experiment: dict, version: int,
                  record: RunRecord) -> tuple[dict, bool]:
    """The version's finished run on the server, made (with its model uploaded) when missing."""
    existing = client.search_runs(experiment["experiment_id"], {"keel.project": name, "keel.version": str(version)})
    for run in existing:
        if tags_of(run).get("keel.sha256") != record.sha256:
            raise KeelError(f"the MLflow experiment {name!r} on {client.base} has a run for another v{version} "
                            "(different sha256): a different project of the same name; nothing was pushed")
        if run["info"].get("status") == "FINISHED":
            return run, False
        client.delete_run(run["info"]["run_id"])  # left by an interrupted push: made again below
    facts = keel.mlflow.version_facts(name, version)  # verifies the model file before it leaves
    run = client.create_run(experiment["experiment_id"], f"{name}-v{version}", record.start_ms,
                            {**record.tags, "mlflow.note.content": record.description})
    run_id = run["info"]["run_id"]
    _upload_model(keel, client, name, version, facts, run, run_id)
    client.log_batch(run_id, record.params, record.metrics, record.end_ms)
    client.finish_run(run_id, record.end_ms)
    return run, True


def _upload_model(keel: Keel, client: MlflowRestClient, name: str, version: int, facts: VersionFacts, run: dict,
                  run_id: str) -> None:
    root = _artifact_proxy_path(client, run["info"]["artifact_uri"])
    with tempfile.TemporaryDirectory(prefix="keel-mlflow-") as folder:
        directory = Path(folder) / MODEL_ARTIFACT_DIR
        keel.mlflow.write_model_directory(name, version, directory, facts.in_run(run_id))
        for path in sorted(directory.iterdir()):
            client.upload(f"{root}/{MODEL_ARTIFACT_DIR}/{path.name}", path.read_bytes())


def _wait_ready(client: MlflowRestClient, name: str, model_version: dict) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while model_version.get("status", "READY") == "PENDING_REGISTRATION" and time.monotonic() < deadline:
        time.sleep(0.5)
        model_version = client.get_model_version(name, model_version["version"])
    if model_version.get("status", "READY") != "READY":
        raise KeelError(f"MLflow did not finish registering {name} version {model_version['version']}: "
                        f"{model_version.get('status')} {model_version.get('status_message', '')}".strip())
    return model_version


def _production_alias(client: MlflowRestClient, name: str, production: int | None,
                      registered: dict) -> ProductionAlias:
    """Point the `production` alias at the production version's model version (if it is on the server)."""
    target = registered.get(str(production)) if production is not None else None
    if target is None:
        return ProductionAlias(alias=PRODUCTION_ALIAS, keel_version=production, model_version=None, changed=False)
    current = {a["alias"]: a["version"] for a in (client.get_registered_model(name) or {}).get("aliases", [])}
    changed = current.get(PRODUCTION_ALIAS) != str(target["version"])
    if changed:
        client.set_alias(name, PRODUCTION_ALIAS, str(target["version"]))
    return ProductionAlias(alias=PRODUCTION_ALIAS, keel_version=production, model_version=str(target["version"]),
                           changed=changed)
