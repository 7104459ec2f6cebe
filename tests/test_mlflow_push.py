"""`push`: versions as MLflow runs and registered model versions, through MLflow's REST API,
against a small fake MLflow server over real HTTP (tests/fake_mlflow_server.py)."""

import hashlib
import json

import pytest
import yaml
from cli_helpers import workspace_copy
from fake_mlflow_server import FakeMlflowServer
from loop_helpers import cli, make_project
from store_helpers import opened_store

from app.core.services.lifecycle import Keel


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A project with two trained versions, v2 in production."""
    workspace = tmp_path_factory.mktemp("push") / "workspace"
    keel = make_project(workspace)  # v1 deployed
    keel.deploy("loan", keel.train("loan").version)
    keel.close()
    return workspace


@pytest.fixture
def workspace(template, tmp_path):
    return workspace_copy(template, tmp_path)


@pytest.fixture
def server():
    with FakeMlflowServer() as fake:
        yield fake


def push(capsys, workspace, server_uri, *args):
    return cli(capsys, workspace, "push", "loan", "--tracking-uri", server_uri, *args)


def versions_of(workspace):
    keel = Keel.open(workspace)
    try:
        project = keel.project("loan")
        with opened_store(keel) as registry:
            return {mv.version: mv for mv in registry.model_versions(project.id)}, keel.status("loan")
    finally:
        keel.close()


def tags(entity) -> dict:
    return {t["key"]: t["value"] for t in entity.get("tags") or entity["data"]["tags"]}


def test_push_all_logs_runs_registers_versions_and_uploads_the_models(capsys, workspace, server):
    code, out = push(capsys, workspace, server.uri, "--all")
    assert code == 0, out
    stored, status = versions_of(workspace)
    assert [v["version"] for v in out["versions"]] == [1, 2] and out["added"] == 5  # 2 runs, 2 versions, 1 alias
    runs = {tags(r)["keel.version"]: r for r in server.active_runs()}
    assert set(runs) == {"1", "2"}
    for version, run in runs.items():
        run_tags = tags(run)
        assert run["info"]["status"] == "FINISHED"
        assert run_tags["keel.project"] == "loan" and run_tags["keel.sha256"] == stored[int(version)].sha256
        assert run_tags["keel.dataset_versions"] == "1"
        lineage = json.loads(run_tags["keel.training_data"])
        assert lineage[0]["source"] == "loan-initial.csv" and len(lineage[0]["sha256"]) == 64
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["C"] == "1.0" and int(params["test_rows"]) > 0  # logreg's own and Keel's
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["accuracy"] == pytest.approx(status.versions[int(version) - 1].metrics["accuracy"])
        root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
        uploaded = {path.rsplit("/", 1)[1]: data for path, data in server.artifacts.items()
                    if path.startswith(root + "/model/")}
        assert set(uploaded) >= {"MLmodel", "model.skops", "requirements.txt", "conda.yaml", "python_env.yaml"}
        assert hashlib.sha256(uploaded["model.skops"]).hexdigest() == stored[int(version)].sha256
        assert yaml.safe_load(uploaded["MLmodel"])["run_id"] == run["info"]["run_id"]
    model_versions = {tags(mv)["keel.version"]: mv for mv in server.versions["loan"]}
    for version, mv in model_versions.items():
        assert mv["run_id"] == runs[version]["info"]["run_id"]
        assert mv["source"] == runs[version]["info"]["artifact_uri"] + "/model"  # on the server, not this desktop
    assert server.registered["loan"]["aliases"] == [{"alias": "production", "version": model_versions["2"]["version"]}]


def test_a_second_push_adds_nothing(capsys, workspace, server):
    assert push(capsys, workspace, server.uri, "--all")[0] == 0
    before = (len(server.active_runs()), len(server.versions["loan"]), dict(server.artifacts))
    server.requests.clear()
    code, out = push(capsys, workspace, server.uri, "--all")
    assert code == 0 and out["added"] == 0
    assert not any(v["run_created"] or v["model_version_created"] for v in out["versions"])
    assert server.writes() == [] and server.requests  # it asked, and wrote nothing
    assert (len(server.active_runs()), len(server.versions["loan"]), server.artifacts) == before


def test_default_pushes_the_production_version_and_a_deploy_moves_only_the_alias(capsys, workspace, server):
    code, out = push(capsys, workspace, server.uri)
    assert code == 0 and [v["version"] for v in out["versions"]] == [2]
    assert out["alias"]["model_version"] == "1"  # v2 is the server's first version of the model
    keel = Keel.open(workspace)
    keel.rollback("loan")  # v1 in production again
    keel.close()
    assert push(capsys, workspace, server.uri, "--version", "1")[0] == 0
    server.requests.clear()
    code, out = push(capsys, workspace, server.uri, "--all")
    assert code == 0 and out["added"] == 0 and out["alias"]["keel_version"] == 1
    model_versions = {tags(mv)["keel.version"]: mv["version"] for mv in server.versions["loan"]}
    assert server.registered["loan"]["aliases"] == [{"alias": "production", "version": model_versions["1"]}]


def test_an_interrupted_push_is_finished_by_the_next_one(capsys, workspace, server):
    server.fail_upload_of = "model.skops"
    code, out = push(capsys, workspace, server.uri)
    assert code == 1 and "answered 500" in out["error"]["message"] and "disk full" in out["error"]["message"]
    assert [r["info"]["status"] for r in server.active_runs()] == ["RUNNING"]
    assert server.versions["loan"] == []  # never registered a half-uploaded model
    code, out = push(capsys, workspace, server.uri)
    assert code == 0 and out["versions"][0]["run_created"]
    assert [r["info"]["status"] for r in server.active_runs()] == ["FINISHED"]  # the broken run was deleted
    assert len(server.versions["loan"]) == 1


def test_a_server_without_the_artifact_proxy_is_refused_before_any_run(capsys, workspace):
    with FakeMlflowServer(artifact_root="/home/someone/mlruns") as server:
        code, out = push(capsys, workspace, server.uri)
        assert code == 2 and "--serve-artifacts" in out["error"]["message"]
        assert server.runs == {} and server.artifacts == {}


def test_another_project_of_the_same_name_is_left_alone(capsys, workspace, server, tmp_path):
    assert push(capsys, workspace, server.uri)[0] == 0
    other = tmp_path / "other"
    keel = make_project(other, rows=400)  # another "loan", trained on other rows
    keel.deploy("loan", keel.train("loan").version)  # its own v2, with another sha256
    keel.close()
    before = dict(server.runs)
    code, out = push(capsys, other, server.uri)
    assert code == 2 and "different project of the same name" in out["error"]["message"]
    assert server.runs.keys() == before.keys()


def test_bad_arguments_and_an_unreachable_server_are_one_line_errors(capsys, workspace, server):
    code, out = push(capsys, workspace, server.uri, "--version", "1", "--all")
    assert code == 2 and "not both" in out["error"]["message"]
    code, out = push(capsys, workspace, server.uri, "--version", "9")
    assert code == 2 and "unknown model version 9" in out["error"]["message"]
    code, out = push(capsys, workspace, "ftp://example")
    assert code == 2 and "http(s)" in out["error"]["message"]
    closed = f"http://127.0.0.1:{_closed_port()}"
    code, out = push(capsys, workspace, closed)
    assert code == 2 and "cannot reach the MLflow tracking server" in out["error"]["message"]
    assert server.requests == []


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
