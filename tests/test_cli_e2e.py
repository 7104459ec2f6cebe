"""The CLI end to end, in-process: create -> train -> deploy -> predict -> ingest -> train ->
deploy -> rollback -> status/history, asserting the registry contents and the --json
shapes of docs/cli.md. Plus the failure contract: one JSON error document, exit codes,
tracebacks only in logs/keel.log."""

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, loans, snapshot, write_csv

from app.core.fileio import sha256_file
from app.core.services.lifecycle import Keel
from app.core.store.registry import Registry
from app.frontends.cli import main

ROOT = Path(__file__).resolve().parents[1]


def is_utc_iso(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset().total_seconds() == 0


def test_the_whole_lifecycle(capsys, workspace, tmp_path):
    initial = write_csv(tmp_path / "initial.csv", loans(300, seed=1))
    batch = write_csv(tmp_path / "batch.csv", loans(150, seed=2, concept=0.5))
    to_score = write_csv(tmp_path / "to_score.csv", loans(40, seed=3).drop(columns="default"))
    scored = tmp_path / "scored.csv"

    code, created, _ = cli(capsys, workspace, "project", "create", "loans", "--data", str(initial), "--target",
                           "default", "--model", "logreg", "--window", "400", "--threshold", "0.7")
    assert code == 0
    assert (created["project"], created["task"], created["target"], created["dataset_version"], created["rows"]) == (
        "loans", "classification", "default", 1, 300)
    assert created["settings"]["preset"] == "logreg" and created["settings"]["window"] == 400

    code, listed, _ = cli(capsys, workspace, "project", "list")
    assert listed["projects"] == [{"name": "loans", "task": "classification", "target": "default",
                                   "metric": "accuracy", "production_version": None, "open_alerts": 0}]

    code, trained1, _ = cli(capsys, workspace, "train", "loans")
    assert code == 0 and set(trained1) == {"version", "metrics", "run_id", "seconds"}
    assert trained1["version"] == 1 and 0.5 < trained1["metrics"]["accuracy"] <= 1.0
    assert {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(trained1["metrics"])

    code, deployed1, _ = cli(capsys, workspace, "deploy", "loans", "--version", "1")
    assert deployed1 == {"production_version": 1, "previous_version": None}

    code, predicted, _ = cli(capsys, workspace, "predict", "loans", "--input", str(to_score), "--output", str(scored))
    assert code == 0 and predicted["rows"] == 40 and predicted["version"] == 1
    output = pd.read_csv(scored)
    assert list(output.columns) == [*pd.read_csv(to_score).columns, "prediction", "proba_0", "proba_1"]
    assert output["prediction"].isin([0, 1]).all()
    assert ((output["proba_1"] > 0.5).astype(int) == output["prediction"]).all()

    code, ingested, _ = cli(capsys, workspace, "ingest", "loans", str(batch))
    assert code == 0 and set(ingested) >= {"dataset_version", "rows", "labelled", "warnings", "duplicate_of"}
    assert (ingested["dataset_version"], ingested["rows"], ingested["labelled"], ingested["duplicate_of"]) == (
        2, 150, True, None)
    assert isinstance(ingested["warnings"], list)

    code, trained2, _ = cli(capsys, workspace, "train", "loans")
    assert trained2["version"] == 2 and trained2["run_id"] != trained1["run_id"]
    code, deployed2, _ = cli(capsys, workspace, "deploy", "loans", "--version", "2", "--reason", "fresher data")
    assert deployed2 == {"production_version": 2, "previous_version": 1}
    code, rolled, _ = cli(capsys, workspace, "rollback", "loans")
    assert code == 0 and rolled == {"production_version": 1, "previous_version": 2}

    code, status, _ = cli(capsys, workspace, "status", "loans")
    assert {"project", "task", "target", "metric", "production_version", "versions", "open_alerts",
            "settings"} <= set(status)
    assert (status["project"], status["task"], status["target"], status["metric"]) == (
        "loans", "classification", "default", "accuracy")
    assert status["production_version"] == 1 and status["open_alerts"] == []
    assert status["settings"]["threshold"] == 0.7
    for version in status["versions"]:
        assert {"version", "created_at", "metrics", "aliases", "in_production"} <= set(version)
        assert is_utc_iso(version["created_at"])
    assert [(v["version"], v["in_production"], v["aliases"]) for v in status["versions"]] == [
        (1, True, ["champion"]), (2, False, [])]
    assert status["versions"][1]["metrics"] == trained2["metrics"]

    code, history, _ = cli(capsys, workspace, "history", "loans")
    events = history["events"]
    assert [e["kind"] for e in events] == ["project_created", "model_trained", "deployed", "batch_scored",
                                           "data_ingested", "model_trained", "deployed", "rolled_back"]
    assert all(set(e) == {"id", "at", "kind", "by", "message", "details"} for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["by"] == "user" and is_utc_iso(e["at"]) for e in events)
    assert events[-1]["details"] == {"version": 1, "previous_version": 2}
    assert "rolled back from v2 to v1" in events[-1]["message"]

    check_registry_contents(workspace, trained1, trained2)


def check_registry_contents(workspace: Path, trained1: dict, trained2: dict):
    registry = Registry(workspace / "registry.db")
    try:
        project = registry.project("loans")
        datasets_rows = registry.dataset_versions(project.id)
        assert [(d.version, d.rows, d.labelled_rows, d.source) for d in datasets_rows] == [
            (1, 300, 300, "initial.csv"), (2, 150, 150, "batch.csv")]
        for row in datasets_rows:
            assert (workspace / row.path).is_file()

        models = registry.model_versions(project.id)
        assert [m.version for m in models] == [1, 2]
        for model in models:
            path = workspace / model.artifact_path
            assert path == workspace / "artifacts" / "loans" / f"v{model.version}.skops"
            assert sha256_file(path) == model.sha256

        runs = [registry.run(m.run_id) for m in models]
        assert [r.id for r in runs] == [trained1["run_id"], trained2["run_id"]]
        assert [r.dataset_versions for r in runs] == [(1,), (1, 2)]
        assert all(r.kind == "train" and r.preset == "logreg" and r.seed == 42 for r in runs)
        assert registry.run_metrics(trained2["run_id"]) == trained2["metrics"]
        assert registry.run_params(trained2["run_id"])["train_rows"] == 320  # window: newest 400 of 450, 80%

        deployments = registry.deployments(project.id)
        assert [(d.version, d.by, d.is_rollback) for d in deployments] == [
            (1, "user", 0), (2, "user", 0), (1, "user", 1)]
        assert [d.reason for d in deployments] == ["deployed by the user", "fresher data", "rolled back from v2"]
        assert deployments[1].replaced_deployment_id == deployments[0].id
        assert registry.current_deployment(project.id).id == deployments[2].id
        assert registry.aliases(project.id) == {"champion": models[0].id}
    finally:
        registry.close()
    manifest = json.loads((workspace / "projects" / "loans" / "production.json").read_text())
    assert (manifest["version"], manifest["sha256"]) == (1, models[0].sha256)
    previous = json.loads((workspace / "projects" / "loans" / "production.previous.json").read_text())
    assert previous["version"] == 2
    assert not list(workspace.rglob("*.tmp")) and not list(workspace.rglob("*.partial"))


def test_rollback_walks_back_the_chain_of_deployments(capsys, workspace, tmp_path):
    data = write_csv(tmp_path / "initial.csv", loans(100, seed=7))
    assert cli(capsys, workspace, "project", "create", "rb", "--data", str(data), "--target", "default",
               "--model", "logreg")[0] == 0
    for version in (1, 2, 3):
        assert cli(capsys, workspace, "train", "rb")[1]["version"] == version
        assert cli(capsys, workspace, "deploy", "rb", "--version", str(version))[0] == 0
    assert cli(capsys, workspace, "rollback", "rb")[1] == {"production_version": 2, "previous_version": 3}
    assert cli(capsys, workspace, "rollback", "rb")[1] == {"production_version": 1, "previous_version": 2}
    code, out, _ = cli(capsys, workspace, "rollback", "rb")
    assert code == 2 and "v1 is the first production model" in out["error"]["message"]
    assert cli(capsys, workspace, "rollback", "rb", "--to", "3")[1] == {"production_version": 3, "previous_version": 1}
    code, out, _ = cli(capsys, workspace, "rollback", "rb", "--to", "9")
    assert code == 2 and "v9 was never in production" in out["error"]["message"]
    assert cli(capsys, workspace, "status", "rb")[1]["production_version"] == 3


def test_every_other_lifecycle_action_writes_an_event(capsys, workspace, tmp_path):
    data = write_csv(tmp_path / "initial.csv", loans(120, seed=6))
    assert cli(capsys, workspace, "project", "create", "ev", "--data", str(data), "--target", "default",
               "--model", "logreg")[0] == 0
    code, changed, _ = cli(capsys, workspace, "project", "set", "ev", "--max-drop", "0.1", "--policy", "approve")
    assert code == 0 and changed["settings"]["max_drop"] == 0.1 and changed["settings"]["policy"] == "approve"
    assert cli(capsys, workspace, "project", "set", "ev", "--policy", "approve")[0] == 0  # no change: no event
    assert cli(capsys, workspace, "train", "ev")[0] == 0
    assert cli(capsys, workspace, "train", "ev")[0] == 0
    assert cli(capsys, workspace, "deploy", "ev", "--version", "2")[0] == 0
    code, out, _ = cli(capsys, workspace, "archive", "ev", "--version", "2")
    assert code == 2 and "production model" in out["error"]["message"]
    assert cli(capsys, workspace, "archive", "ev", "--version", "1")[1] == {"version": 1, "archived": True}
    assert cli(capsys, workspace, "archive", "ev", "--version", "1", "--restore")[0] == 0
    code, history, _ = cli(capsys, workspace, "history", "ev")
    assert [e["kind"] for e in history["events"]] == [
        "project_created", "settings_changed", "model_trained", "model_trained", "deployed", "model_archived",
        "model_unarchived"]
    assert history["events"][1]["details"]["changed"] == {"max_drop": 0.1, "policy": "approve"}

    code, out, _ = cli(capsys, workspace, "project", "delete", "ev")
    assert code == 2 and "--yes" in out["error"]["message"]
    assert cli(capsys, workspace, "project", "delete", "ev", "--yes")[1] == {"deleted": "ev"}
    assert cli(capsys, workspace, "project", "list")[1] == {"projects": []}
    assert not (workspace / "artifacts" / "ev").exists() and not (workspace / "datasets" / "ev").exists()
    assert not list((workspace / "projects" / "ev").glob("production*.json"))
    registry = Registry(workspace / "registry.db")
    try:
        kept = registry.events()
        assert kept[-1].kind == "project_deleted" and len(kept) == 8
        assert {(e.project_id, e.project_name) for e in kept} == {(None, "ev")}
        assert {name: n for name, n in registry.table_counts().items() if n} == {
            "events": 8, "schema_version": registry.table_counts()["schema_version"]}
    finally:
        registry.close()


def test_human_output_is_readable(capsys, workspace, tmp_path):
    data = write_csv(tmp_path / "initial.csv", loans(120, seed=4))
    assert cli(capsys, workspace, "project", "create", "h", "--data", str(data), "--target", "default",
               "--model", "logreg", as_json=False)[0] == 0
    assert cli(capsys, workspace, "train", "h", as_json=False)[1].startswith("Trained v1 in ")
    assert cli(capsys, workspace, "deploy", "h", "--version", "1", as_json=False)[1] == "Production model is now v1\n"
    code, out, _ = cli(capsys, workspace, "status", "h", as_json=False)
    assert out.splitlines()[0] == "h: classification, target default, metric accuracy, production v1"
    assert out.splitlines()[1].startswith(" * v1") and "[champion]" in out


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn: a single label in the hold-out
def test_json_output_is_strict_json_even_when_a_metric_is_undefined(capsys, workspace, tmp_path):
    """One positive among 30 rows: the hold-out has a single class, so ROC AUC is undefined.
    --json must say null (NaN is not JSON; jq and browsers reject it)."""
    rare = loans(30, seed=5).assign(default=0)
    rare.loc[0, "default"] = 1
    data = write_csv(tmp_path / "rare.csv", rare)
    assert cli(capsys, workspace, "project", "create", "rare", "--data", str(data), "--target", "default",
               "--model", "logreg")[0] == 0
    code, trained, _ = cli(capsys, workspace, "train", "rare")  # cli() parses strictly
    assert code == 0 and trained["metrics"]["roc_auc"] is None
    code, status, _ = cli(capsys, workspace, "status", "rare")
    assert status["versions"][0]["metrics"]["roc_auc"] is None
    code, out, _ = cli(capsys, workspace, "status", "rare", as_json=False)
    assert "accuracy=1.0000" in out


def test_help_returns_0_instead_of_exiting(capsys, workspace):
    assert main(["--workspace", str(workspace), "status", "--help"]) == 0
    assert "usage: keel status" in capsys.readouterr().out


def test_a_json_failure_is_one_document_with_the_code(capsys, workspace):
    code, out, err = cli(capsys, workspace, "status", "nosuch")
    assert code == 2
    assert out == {"error": {"code": 2, "message": "unknown project 'nosuch' (projects: none yet)"}}
    assert err == "keel: error: unknown project 'nosuch' (projects: none yet)\n"


def test_an_unexpected_error_exits_1_with_the_traceback_only_in_the_log(capsys, workspace, monkeypatch):
    def broken_status(self, name, limit=None):
        raise ZeroDivisionError("synthetic failure deep in the core")

    monkeypatch.setattr(Keel, "status", broken_status)
    code, out, err = cli(capsys, workspace, "status", "anything")
    assert code == 1
    assert out["error"]["code"] == 1
    message = out["error"]["message"]
    assert message.startswith("internal error: ZeroDivisionError: synthetic failure deep in the core")
    assert str(workspace / "logs" / "keel.log") in message
    assert "Traceback" not in err and err.count("\n") == 1
    log = (workspace / "logs" / "keel.log").read_text()
    assert "Traceback (most recent call last)" in log and "broken_status" in log

    code, out, err = cli(capsys, workspace, "status", "anything", as_json=False)
    assert code == 1 and out == "" and "Traceback" not in err and err.count("\n") == 1


def test_main_py_runs_as_a_real_process(tmp_path):
    """The one subprocess test: the exit code and the streams of a real `python main.py`."""
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--workspace", str(tmp_path / "ws"),
                             "train", "nosuch", "--json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    message = "unknown project 'nosuch' (projects: none yet)"
    assert result.returncode == 2
    assert json.loads(result.stdout) == {"error": {"code": 2, "message": message}}
    assert result.stderr == f"keel: error: {message}\n"


# --------------------------------------------------------------------------- interrupted work
@pytest.mark.parametrize("command", ["ingest", "train", "deploy", "create"])
def test_ctrl_c_at_the_last_moment_leaves_nothing_half_written(capsys, workspace, tmp_path, monkeypatch, command):
    """Ctrl-C after the files are written but before the registry commits: exit 130 and the
    workspace exactly as before (the new files removed, the transaction rolled back)."""
    data = write_csv(tmp_path / "initial.csv", loans(120, seed=8))
    assert cli(capsys, workspace, "project", "create", "loans", "--data", str(data), "--target", "default",
               "--model", "logreg")[0] == 0
    assert cli(capsys, workspace, "train", "loans")[0] == 0
    argv = {"ingest": ["ingest", "loans", str(write_csv(tmp_path / "b.csv", loans(30, seed=9)))],
            "train": ["train", "loans"],
            "deploy": ["deploy", "loans", "--version", "1"],
            "create": ["project", "create", "second", "--data", str(data), "--target", "default"]}[command]
    before = snapshot(workspace)
    original_add_event = Registry.add_event

    def add_event_then_interrupt(self, *args, **kwargs):
        original_add_event(self, *args, **kwargs)  # the rows are in the open transaction...
        raise KeyboardInterrupt  # ...and the user presses Ctrl-C before it commits

    monkeypatch.setattr(Registry, "add_event", add_event_then_interrupt)
    code, out, err = cli(capsys, workspace, *argv)
    assert code == 130 and out == {"error": {"code": 130, "message": "interrupted; nothing was written"}}
    assert snapshot(workspace) == before
    assert not list(workspace.rglob("*.tmp")) and not list(workspace.rglob("*.partial"))


# --------------------------------------------------------------------------- a workspace that cannot be opened
def test_a_workspace_that_is_a_file(capsys, tmp_path):
    path = tmp_path / "not_a_folder"
    path.write_text("x")
    code, out, err = cli(capsys, path, "project", "list")
    assert code == 2 and out["error"]["message"] == f"workspace {path} is a file, not a folder"


def test_a_registry_that_is_not_a_database(capsys, workspace):
    (workspace / "registry.db").write_bytes(b"this is not sqlite" * 100)
    code, out, err = cli(capsys, workspace, "project", "list")
    assert code == 1
    assert out["error"]["message"] == f"{workspace / 'registry.db'} is not a SQLite database: damaged, or not a Keel registry"
    assert "Traceback" not in err


def test_a_failure_while_opening_the_registry_keeps_the_traceback_off_the_terminal(capsys, workspace, monkeypatch):
    def broken_init(self, path, clock=None):
        raise RuntimeError("cannot open")

    monkeypatch.setattr(Registry, "__init__", broken_init)
    code, out, err = cli(capsys, workspace, "status", "x")
    assert code == 1 and out["error"]["message"].startswith("internal error: RuntimeError: cannot open (details in ")
    assert "Traceback" not in err and err.count("\n") == 1
    assert "Traceback (most recent call last)" in (workspace / "logs" / "keel.log").read_text()


def test_library_warnings_go_to_the_log_not_the_terminal(capsys, tmp_path):
    import logging
    import warnings

    from app.logs import setup_logging

    log_path = tmp_path / "logs" / "keel.log"
    logging.captureWarnings(False)  # earlier in-process CLI calls turned it on under pytest's own capture
    try:
        setup_logging(log_path)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("A single label was found in 'y_true' and 'y_pred'", UserWarning)
    finally:
        logging.captureWarnings(False)
    assert capsys.readouterr().err == ""
    assert "UserWarning: A single label was found" in log_path.read_text()


def test_preset_parameters_merge_and_clear_params_replaces_them(capsys, tmp_path):
    from cli_helpers import cli, create_project

    workspace = tmp_path / "ws"
    create_project(capsys, workspace, tmp_path, extra=("--model", "hgb", "--param", "max_depth=3"))
    code, out, _ = cli(capsys, workspace, "project", "set", "loans", "--param", "learning_rate=0.05")
    assert code == 0 and out["settings"]["params"] == {"max_depth": 3, "learning_rate": 0.05}
    code, out, _ = cli(capsys, workspace, "project", "set", "loans", "--clear-params", "--param", "max_iter=50")
    assert code == 0 and out["settings"]["params"] == {"max_iter": 50}
    code, out, _ = cli(capsys, workspace, "project", "set", "loans", "--clear-params")
    assert code == 0 and out["settings"]["params"] == {}
