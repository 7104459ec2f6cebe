"""Every time Keel stores or compares comes from the workspace's clock (Keel.open(clock=...)):
with a fixed clock, the stored times are the clock's, never the machine's."""

import json
import os
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from cli_helpers import deployed_loans_workspace, workspace_copy
from store_helpers import sql_rows, workspace_of

from app.core.domain.cards import AlertsSince
from app.core.domain.clock import fixed_clock, iso_utc
from app.core.domain.upkeep import UpkeepDone
from app.core.services.lifecycle import Keel
from app.core.services.project_data import ProjectData
from app.core.services.traffic import TrafficService
from app.core.store import maintenance
from app.core.store.policy_state import PolicyState, read_policy_state, write_policy_state
from app.core.store.registry import Registry

SECONDS = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()  # long before any test runs
NOW = iso_utc(SECONDS)
CLOCK = fixed_clock(SECONDS)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return deployed_loans_workspace(tmp_path_factory.mktemp("clock"), rows=160, seed=5)


@pytest.fixture
def keel(template, tmp_path):
    keel = Keel.open(workspace_copy(template, tmp_path), clock=CLOCK)
    yield keel
    keel.close()


def test_a_training_run_its_version_and_its_event_are_stamped_by_the_clock(keel, store):
    version = keel.train("loans").version
    registry = store(keel)
    model = registry.model_version(keel.project("loans").id, version)
    run = registry.run(model.run_id)
    assert (run.started_at, run.finished_at, model.created_at) == (NOW, NOW, NOW)
    assert keel.events("loans")[-1].kind == "model_trained" and keel.events("loans")[-1].at == NOW


def test_an_imported_models_run_is_stamped_by_the_clock(keel, store, tmp_path):
    exported = keel.export_model("loans", 1, tmp_path / "v1.skops").path
    version = keel.import_model("loans", exported).version
    registry = store(keel)
    run = registry.run(registry.model_version(keel.project("loans").id, version).run_id)
    assert (run.kind, run.started_at, run.finished_at) == ("import", NOW, NOW)


def test_verify_ages_temporaries_by_the_clock_and_names_the_quarantine_by_it(keel):
    temporary = keel.root / "datasets" / "loans" / ".v9.parquet.xyz.tmp"
    temporary.write_bytes(b"left by an interrupted write")
    os.utime(temporary, (SECONDS - 5, SECONDS - 5))  # young by the clock, years old by the machine's
    problems = keel.verifier.verify().problems
    assert [(p.check, p.error) for p in problems] == [("temporary", False)]

    orphan = keel.root / "artifacts" / "loans" / "v9.skops"
    orphan.write_bytes(b"no row names it")
    os.utime(orphan, (SECONDS - 3600, SECONDS - 3600))
    keel.verifier.verify(repair=True)
    assert (keel.root / "quarantine" / CLOCK.local_stamp() / "artifacts" / "loans" / "v9.skops").exists()


def test_retention_ages_inbox_files_by_the_clock(keel):
    processed = keel.inbox_dir("loans") / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    kept, old = processed / "kept.csv", processed / "old.csv"
    for path, age_days in ((kept, 6), (old, 8)):
        path.write_text("x\n")
        stamp = SECONDS - age_days * 86400
        os.utime(path, (stamp, stamp))
    assert keel.upkeep.prune(inbox_days=7).removed_inbox_files == ("projects/loans/inbox/processed/old.csv",)
    assert kept.exists() and not old.exists()


def test_a_scheduled_backup_is_named_and_recorded_by_the_clock(keel, tmp_path):
    keel.upkeep.set_backup_schedule(every="every 1d", keep=3, folder=str(tmp_path / "backups"))
    done = keel.upkeep.run_due()
    assert done.backup is not None and done.retention is None and not done.failed
    assert os.path.basename(done.backup.backup.path) == "keel-20250304T050607Z.keel-backup"
    assert keel.upkeep.backup_schedule().last_backup_at == CLOCK.moment().isoformat()
    with zipfile.ZipFile(done.backup.backup.path) as archive:
        assert json.loads(archive.read("manifest.json"))["created_at"] == NOW
    assert keel.upkeep.run_due() == UpkeepDone(), "a day has not passed by the clock"


def test_an_mlflow_model_directory_is_created_at_the_clocks_time(keel, tmp_path):
    keel.mlflow.export_mlflow("loans", 1, tmp_path / "mlflow-model")
    document = yaml.safe_load((tmp_path / "mlflow-model" / "MLmodel").read_text())
    assert document["utc_time_created"] == "2025-03-04 05:06:07.000000"


def test_the_scheduler_catches_up_by_the_clock(keel):
    from app.adapters.scheduling import MonitorScheduler

    keel.set_project("loans", {"schedule": "every 1h"})
    keel.record_scheduled_run("loans")  # last run: the clock's now
    submitted: list[str] = []
    scheduler = MonitorScheduler(keel, submitted.append)
    assert scheduler.catch_up() == [] and submitted == [], "not due by the clock (years ago by the machine's)"
    assert scheduler.catch_up(CLOCK.moment() + timedelta(hours=2)) == ["loans"]


def test_late_labels_are_late_by_the_clock(keel, store):
    registry = store(keel)
    project = keel.project("loans")
    model_version_id = registry.model_version(project.id, 1).id
    registry.insert_traffic_window(project_id=project.id, model_version_id=model_version_id, first_prediction_id=1,
                                   last_prediction_id=10, started_at=NOW, ended_at=NOW, monitored_at=NOW, rows=10,
                                   metric=project.metric)
    settings = keel.settings("loans")  # label delay 7d, coverage 0.5
    for seconds, late in ((SECONDS + 86400, False), (SECONDS + 8 * 86400, True)):
        clock = fixed_clock(seconds)
        traffic = TrafficService(registry=registry, data=ProjectData(registry, workspace_of(keel)), clock=clock)
        assert bool(traffic.late_labels_message(project, settings)) is late, seconds


def test_the_stores_own_stamps_come_from_its_clock(keel, store, tmp_path):
    fresh = Registry(tmp_path / "registry.db", clock=CLOCK)
    try:
        assert {row["applied_at"] for row in sql_rows(fresh, "SELECT applied_at FROM schema_version")} == {NOW}
    finally:
        fresh.close()
    registry = store(keel)  # stamps by keel's clock
    project_id = keel.project("loans").id
    alert_id = registry.insert_alert(project_id=project_id, rule="metric", severity="warning", message="m")
    registry.close_alert(alert_id, "recovered")
    alert = registry.alerts(project_id)[-1]
    assert (alert.opened_at, alert.closed_at) == (NOW, NOW)
    with registry.transaction():
        write_policy_state(registry, project_id, PolicyState(backoff_unseen_rows=3))
        maintenance.mark_pruned(registry, registry.model_version(project_id, 1).id)
    assert sql_rows(registry, "SELECT updated_at FROM policy_state")[0]["updated_at"] == NOW
    assert read_policy_state(registry, project_id).backoff_unseen_rows == 3
    assert registry.model_version(project_id, 1).pruned_at == NOW


def test_the_system_clock_is_the_default(tmp_path):
    before = time.time()
    keel = Keel.open(tmp_path / "workspace")
    try:
        assert before - 1 <= keel.clock.seconds() <= time.time() + 1
    finally:
        keel.close()


def test_the_window_counts_alerts_since_the_user_looked_by_the_workspace_clock(keel):
    from app.frontends.gui.main_window import read_project_list

    later = Registry(workspace_of(keel).registry_path, clock=fixed_clock(SECONDS + 10))
    try:
        later.insert_alert(project_id=keel.project("loans").id, rule="metric", severity="warning", message="m")
    finally:
        later.close()
    listed = read_project_list(keel, {}, None)  # first seen: "looked" now, by the clock
    assert listed.first_seen == ("loans",)
    assert listed.health[0].since == AlertsSince(opened=1, recovered=0), "opened 10 s after the clock's now"
