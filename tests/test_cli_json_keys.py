"""The --json documents of the lifecycle commands keep every key they have, in the order they have
it, with the values a small deterministic lifecycle gives (docs/cli.md, "JSON shapes": keys may be
added, never removed or renamed). The services hand typed results; these pin what the CLI prints."""

import dataclasses
import pickle

import pytest
from cli_helpers import cli, loans, write_csv
from loop_helpers import batch, drop, make_project

from app.core.domain.results import (
    IngestResult,
    MonitorOutcome,
    ProductionChange,
    ProductionOverview,
    ProjectCreated,
    ProjectStatus,
    TrainResult,
)
from app.core.domain.settings import ProjectSettings
from app.core.services.lifecycle import Keel

INGEST_KEYS = ["dataset_version", "rows", "labelled", "labelled_rows", "warnings", "duplicate_of"]
TRAIN_KEYS = ["version", "metrics", "run_id", "seconds"]
PRODUCTION_MOVE_KEYS = ["production_version", "previous_version"]  # deploy, rollback, approve
PREDICT_KEYS = ["rows", "output", "version", "warnings", "id_column", "assigned_ids", "logged_rows"]
STATUS_KEYS = ["project", "task", "target", "metric", "production_version", "versions", "dataset_versions",
               "last_monitoring", "open_alerts", "settings", "prediction_log", "versions_total",
               "dataset_versions_total"]
STATUS_VERSION_KEYS = ["version", "created_at", "metrics", "aliases", "in_production", "archived", "notes"]
STATUS_DATASET_KEYS = ["version", "rows", "labelled_rows", "source", "created_at"]
STATUS_LAST_MONITORING_KEYS = ["at", "metric", "value", "estimated_value"]
STATUS_PREDICTION_LOG_KEYS = ["rows", "oldest_at", "newest_at", "share", "max_rows", "max_days"]
ALERT_HEADLINE_KEYS = ["id", "rule", "severity", "opened_at", "message"]
HISTORY_KEYS = ["project", "events"]
EVENT_KEYS = ["id", "at", "kind", "by", "message", "details"]
PROJECT_LIST_ITEM_KEYS = ["name", "task", "target", "metric", "production_version", "open_alerts"]
PROJECT_CREATE_KEYS = ["project", "task", "target", "dataset_version", "rows", "labelled_rows", "warnings", "schema",
                       "settings"]
EXPORT_KEYS = ["version", "path", "sha256"]
IMPORT_KEYS = ["version", "metrics", "accepted_types"]
MONITOR_KEYS = ["project", "batches", "alerts_opened", "alerts_recovered", "decision", "message",
                "production_version", "challenger_version", "challenger_waiting", "inbox", "details",
                "change_detected", "traffic", "late_labels"]
MONITOR_BATCH_KEYS = ["dataset_version", "rows", "labelled", "labelled_rows", "metric", "value", "estimated_value",
                      "drifted_features", "drift_share", "prediction_drift"]

DECISIONS = ("none", "alert", "retrained_waiting", "retrained_deployed", "retrained_rejected", "restored",
             "restore_waiting", "held")


def json_of(capsys, workspace, *args):
    code, out, err = cli(capsys, workspace, *args)
    assert code == 0, err
    return out


def test_the_lifecycle_commands_print_the_keys_and_values_they_always_have(capsys, workspace, tmp_path):
    initial = write_csv(tmp_path / "initial.csv", loans(200, seed=1))
    batch = write_csv(tmp_path / "batch.csv", loans(100, seed=2))
    later = write_csv(tmp_path / "later.csv", loans(80, seed=3))
    to_score = write_csv(tmp_path / "to_score.csv", loans(20, seed=4).drop(columns="default"))

    created = json_of(capsys, workspace, "project", "create", "loans", "--data", str(initial), "--target", "default",
                      "--model", "logreg", "--threshold", "0.999")
    assert list(created) == PROJECT_CREATE_KEYS
    assert [created[key] for key in PROJECT_CREATE_KEYS[:7]] == [
        "loans", "classification", "default", 1, 200, 200, []]
    assert list(created["settings"]) == list(ProjectSettings().to_json())

    ingested = json_of(capsys, workspace, "ingest", "loans", str(batch))
    assert ingested == {"dataset_version": 2, "rows": 100, "labelled": True, "labelled_rows": 100, "warnings": [],
                        "duplicate_of": None}
    assert list(ingested) == INGEST_KEYS
    again = json_of(capsys, workspace, "ingest", "loans", str(batch))
    assert list(again) == INGEST_KEYS
    assert again == {"dataset_version": 2, "rows": 100, "labelled": True, "labelled_rows": 100,
                     "warnings": ["batch.csv: same content as dataset version 2; nothing stored"], "duplicate_of": 2}

    trained = json_of(capsys, workspace, "train", "loans")
    assert list(trained) == TRAIN_KEYS
    assert (trained["version"], trained["run_id"]) == (1, 1) and isinstance(trained["seconds"], float)
    assert list(trained["metrics"]) == ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"]

    deployed = json_of(capsys, workspace, "deploy", "loans", "--version", "1")
    assert list(deployed) == PRODUCTION_MOVE_KEYS and deployed == {"production_version": 1, "previous_version": None}
    assert json_of(capsys, workspace, "train", "loans")["version"] == 2
    assert json_of(capsys, workspace, "deploy", "loans", "--version", "2") == {
        "production_version": 2, "previous_version": 1}
    rolled = json_of(capsys, workspace, "rollback", "loans")
    assert list(rolled) == PRODUCTION_MOVE_KEYS and rolled == {"production_version": 1, "previous_version": 2}

    output = tmp_path / "scored.csv"
    predicted = json_of(capsys, workspace, "predict", "loans", "--input", str(to_score), "--output", str(output))
    assert list(predicted) == PREDICT_KEYS
    assert predicted == {"rows": 20, "output": str(output), "version": 1, "warnings": [], "id_column": None,
                         "assigned_ids": 0, "logged_rows": 0}

    json_of(capsys, workspace, "ingest", "loans", str(later))
    monitored = json_of(capsys, workspace, "monitor", "loans", "--once")
    assert list(monitored) == MONITOR_KEYS
    assert [list(item) for item in monitored["batches"]] == [MONITOR_BATCH_KEYS]
    assert (monitored["project"], monitored["decision"], monitored["production_version"]) == ("loans", "alert", 1)
    assert [alert["rule"] for alert in monitored["alerts_opened"]] == ["metric_threshold"]
    assert [(b["dataset_version"], b["rows"], b["labelled"], b["metric"]) for b in monitored["batches"]] == [
        (3, 80, True, "accuracy")]

    status = json_of(capsys, workspace, "status", "loans")
    assert list(status) == STATUS_KEYS
    assert [status[key] for key in STATUS_KEYS[:5]] == ["loans", "classification", "default", "accuracy", 1]
    assert [list(v) for v in status["versions"]] == [STATUS_VERSION_KEYS] * 2
    assert [(v["version"], v["aliases"], v["in_production"], v["archived"], v["notes"]) for v in status["versions"]] == [
        (1, ["champion"], True, False, ""), (2, [], False, False, "")]
    assert status["versions"][0]["metrics"] == trained["metrics"]
    assert [list(d) for d in status["dataset_versions"]] == [STATUS_DATASET_KEYS] * 3
    assert [(d["version"], d["rows"], d["labelled_rows"], d["source"]) for d in status["dataset_versions"]] == [
        (1, 200, 200, "initial.csv"), (2, 100, 100, "batch.csv"), (3, 80, 80, "later.csv")]
    assert list(status["last_monitoring"]) == STATUS_LAST_MONITORING_KEYS
    assert status["last_monitoring"]["value"] == monitored["batches"][0]["value"]
    assert [list(alert) for alert in status["open_alerts"]] == [ALERT_HEADLINE_KEYS]
    assert status["open_alerts"][0]["rule"] == "metric_threshold"
    assert list(status["settings"]) == list(ProjectSettings().to_json())
    assert status["prediction_log"] == {"rows": 0, "oldest_at": None, "newest_at": None, "share": 0.0,
                                        "max_rows": 1_000_000, "max_days": 90.0}
    assert (status["versions_total"], status["dataset_versions_total"]) == (2, 3)
    limited = json_of(capsys, workspace, "status", "loans", "--limit", "1")
    assert [v["version"] for v in limited["versions"]] == [2] and limited["versions_total"] == 2

    history = json_of(capsys, workspace, "history", "loans", "--limit", "1")
    assert list(history) == HISTORY_KEYS and [list(e) for e in history["events"]] == [EVENT_KEYS]
    assert [(e["kind"], e["by"]) for e in history["events"]] == [("monitored", "user")]

    listed = json_of(capsys, workspace, "project", "list")
    assert listed == {"projects": [{"name": "loans", "task": "classification", "target": "default",
                                    "metric": "accuracy", "production_version": 1, "open_alerts": 1}]}
    assert list(listed["projects"][0]) == PROJECT_LIST_ITEM_KEYS

    exported = json_of(capsys, workspace, "export", "loans", "--version", "1", "--output", str(tmp_path / "m.skops"))
    assert list(exported) == EXPORT_KEYS
    assert (exported["version"], exported["path"]) == (1, str(tmp_path / "m.skops"))
    imported = json_of(capsys, workspace, "import", "loans", str(tmp_path / "m.skops"))
    assert list(imported) == IMPORT_KEYS and (imported["version"], imported["accepted_types"]) == (3, [])



def test_the_services_hand_frozen_typed_results_that_pickle_and_print_as_the_cli_shows(capsys, workspace, tmp_path):
    keel = Keel.open(workspace)
    try:
        created = keel.create_project("loans", write_csv(tmp_path / "initial.csv", loans(120, seed=1)), "default",
                                      settings={"preset": "logreg"})
        results = {"create": created, "ingest": keel.ingest("loans", write_csv(tmp_path / "batch.csv", loans(60, seed=2))),
                   "train": keel.train("loans")}
        keel.train("loans")
        results["deploy"] = keel.deploy("loans", 2)
        keel.deploy("loans", 1)
        results["rollback"] = keel.rollback("loans")  # back to v2
        keel.ingest("loans", write_csv(tmp_path / "later.csv", loans(60, seed=3)))
        drop(keel, "loans", loans(40, seed=5), "dropped.csv")
        results["monitor"] = keel.policy.monitor("loans")
        results["status"] = keel.status("loans")
        to_score = write_csv(tmp_path / "to_score.csv", loans(10, seed=4).drop(columns="default"))
        results["predict"] = keel.predict("loans", to_score, tmp_path / "scored.csv")
        results["history"] = keel.history("loans", limit=2)
        results["overview"] = keel.production_overview("loans")
    finally:
        keel.close()
    assert isinstance(created, ProjectCreated) and (created.dataset_version, created.rows) == (1, 120)
    assert list(created.to_json()) == PROJECT_CREATE_KEYS and created.schema.target == "default"
    assert isinstance(results["ingest"], IngestResult) and isinstance(results["status"], ProjectStatus)
    assert (results["ingest"].dataset_version, results["ingest"].labelled) == (2, True)
    assert isinstance(results["train"], TrainResult) and (results["train"].version, results["train"].run_id) == (1, 1)
    assert results["deploy"] == ProductionChange(production_version=2, previous_version=None)
    assert results["rollback"] == ProductionChange(production_version=2, previous_version=1)
    assert isinstance(results["monitor"], MonitorOutcome)
    assert [(b.dataset_version, b.labelled) for b in results["monitor"].batches] == [(3, True), (4, True)]
    assert [(f.file, f.status, f.dataset_version) for f in results["monitor"].inbox] == [("dropped.csv", "processed", 4)]
    assert results["monitor"].production_version == 2 and results["monitor"].decision in DECISIONS
    assert [d.version for d in results["status"].dataset_versions] == [1, 2, 3, 4]
    assert (results["predict"].rows, results["predict"].version) == (10, 2)
    assert [event.kind for event in results["history"].events] == ["monitored", "batch_scored"]
    assert results["overview"] == ProductionOverview(project="loans", production_version=2, deployments=3,
                                                     rollback_version=None, challenger_waiting=False)
    assert [(v.version, v.in_production) for v in results["status"].versions] == [(1, False), (2, True)]
    for result in results.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.project = "changed"  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(result)) == result  # crosses the window's child process as it is
    assert results["status"].to_json() == json_of(capsys, workspace, "status", "loans")
    assert results["history"].to_json() == json_of(capsys, workspace, "history", "loans", "--limit", "2")


SWEPT_KEYS = ["file", "status", "moved_to", "dataset_version", "rows", "labelled", "warnings", "duplicate_of", "sha256"]
REJECTED_KEYS = ["file", "status", "moved_to", "reason", "dataset_version", "rows", "labelled", "warnings",
                 "duplicate_of"]


def test_monitor_lists_the_inbox_files_it_took_and_rejected_under_their_keys(capsys, workspace):
    keel = make_project(workspace, rows=200, settings={"policy": "off"})
    try:
        drop(keel, "loan", batch(1, rows=100), "a-good.csv")
        drop(keel, "loan", batch(1, rows=100), "b-same.csv")
        drop(keel, "loan", batch(2, rows=100).drop(columns=["income"]), "c-bad.csv")
    finally:
        keel.close()
    monitored = json_of(capsys, workspace, "monitor", "loan", "--once")
    assert [(item["file"], item["status"]) for item in monitored["inbox"]] == [
        ("a-good.csv", "processed"), ("b-same.csv", "duplicate"), ("c-bad.csv", "rejected")]
    good, same, bad = monitored["inbox"]
    assert list(good) == list(same) == SWEPT_KEYS and list(bad) == REJECTED_KEYS
    assert (good["dataset_version"], good["rows"], good["labelled"], good["duplicate_of"]) == (2, 100, True, None)
    assert (same["dataset_version"], same["duplicate_of"]) == (2, 2) and len(same["sha256"]) == 64
    assert (bad["dataset_version"], bad["rows"], bad["labelled"], bad["warnings"]) == (None, 0, False, [])
    assert "income" in bad["reason"] and bad["moved_to"].endswith("c-bad.csv")
