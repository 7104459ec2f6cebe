"""A workspace written by Keel 0.1.0 (before the service layer and the typed entities) opens
after every migration and keeps working: status, a new batch, training, deploying, monitoring.

tests/fixtures/workspace_from_keel_0_1_0.zip was written by that release's CLI: project
`loans` (logreg, threshold 0.9), datasets v1-v3, models v1-v2 with v2 in production, one
monitoring cycle on a drifted batch that opened alerts 1 and 2."""

import json
import sqlite3
import time
import zipfile
from pathlib import Path

from cli_helpers import cli, loans, write_csv

from app.core.domain.settings import ProjectSettings
from app.core.services.lifecycle import Keel

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_from_keel_0_1_0.zip"


def unpack_fixture(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    with zipfile.ZipFile(FIXTURE) as archive:
        archive.extractall(folder)
    return folder


def test_status_of_a_workspace_from_keel_0_1_0(capsys, tmp_path):
    workspace = unpack_fixture(tmp_path)
    code, status, err = cli(capsys, workspace, "status", "loans")
    assert code == 0, err
    assert (status["project"], status["task"], status["target"], status["metric"]) == (
        "loans", "classification", "default", "accuracy")
    assert status["production_version"] == 2
    assert [version["version"] for version in status["versions"]] == [1, 2]
    assert [dataset["rows"] for dataset in status["dataset_versions"]] == [80, 60, 60]
    assert sorted(alert["id"] for alert in status["open_alerts"]) == [1, 2]
    assert status["settings"]["threshold"] == 0.9 and status["settings"]["preset"] == "logreg"
    # every setting 0.1.0 stored, as stored; the settings added since, with their defaults
    stored = json.loads(sqlite3.connect(workspace / "registry.db").execute("SELECT settings_json FROM projects")
                        .fetchone()[0])
    assert {key: status["settings"][key] for key in stored} == stored
    assert list(status["settings"]) == list(ProjectSettings().to_json())

    code, history, err = cli(capsys, workspace, "history", "loans")
    assert code == 0, err
    kinds = [event["kind"] for event in history["events"]]
    assert kinds.count("deployed") == 2 and "monitored" in kinds


def test_a_workspace_from_keel_0_1_0_trains_deploys_and_monitors(capsys, tmp_path):
    workspace = unpack_fixture(tmp_path)
    batch = write_csv(tmp_path / "batch.csv", loans(60, seed=21))

    code, ingested, err = cli(capsys, workspace, "ingest", "loans", str(batch))
    assert code == 0, err
    assert ingested["dataset_version"] == 4

    code, trained, err = cli(capsys, workspace, "train", "loans")
    assert code == 0, err
    assert trained["version"] == 3

    code, deployed, err = cli(capsys, workspace, "deploy", "loans", "--version", "3")
    assert code == 0, err
    assert deployed == {"production_version": 3, "previous_version": 2}

    write_csv(workspace / "projects" / "loans" / "inbox" / "fresh.csv", loans(50, seed=22))
    keel = Keel.open(workspace)
    try:  # the inbox reads only files that sweeps have seen unchanged: record an earlier sighting
        keel.inbox.record_sightings("loans", now=time.time() - 120)
    finally:
        keel.close()
    code, monitored, err = cli(capsys, workspace, "monitor", "loans", "--once")
    assert code == 0, err
    assert [batch["dataset_version"] for batch in monitored["batches"]] == [5]
    assert monitored["production_version"] == 3

    code, rolled, err = cli(capsys, workspace, "rollback", "loans")
    assert code == 0, err
    assert rolled == {"production_version": 2, "previous_version": 3}
