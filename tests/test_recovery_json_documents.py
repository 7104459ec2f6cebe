"""The --json documents (and the lines printed without --json) of the commands that keep a workspace
whole: verify (quick and full, a problem found and repaired), backup, the backup schedule, retention
(show, set, prune dry run and real), bundle export/import, restore (into an empty workspace, over
projects, over a damaged registry) and the demo. Every key in the order it has today, with the values
a small deterministic workspace gives (docs/cli.md: keys may be added, never removed or renamed)."""

import dataclasses
import hashlib
import json
import os
import pickle
import re
import time

import pytest
from cli_helpers import cli, deployed_loans_workspace
from store_helpers import opened_store

from app.core.domain.upkeep import (
    ArchiveMember,
    BackupMade,
    BackupSchedule,
    BackupScheduleSetting,
    BundleExported,
    BundleImported,
    DemoStreamState,
    FilesChecked,
    Finding,
    PruneResult,
    Repair,
    Restored,
    RetentionRules,
    RetentionSettings,
    UpkeepDone,
    VerifyReport,
)
from app.core.services.lifecycle import Keel
from app.core.store import maintenance
from app.core.store.archive import ArchiveReader, write_archive
from app.demo import demo_project, demo_stream
from app.demo.simulator import make_batch

VERIFY_KEYS = ["healthy", "quick", "workspace", "checked", "problems", "repaired"]
CHECKED_KEYS = ["projects", "model_files", "dataset_files", "hashed"]
PROBLEM_KEYS = ["check", "path", "message", "error", "repair"]
REPAIRED_KEYS = ["path", "action", "check"]
BACKUP_KEYS = ["path", "projects", "members", "size", "seconds", "warnings"]
SCHEDULE_KEYS = ["enabled", "every", "keep", "folder", "last_backup_at"]
RETENTION_KEYS = ["keep_archived", "inbox_days", "last_applied_at"]
PRUNE_KEYS = ["retention", "dry_run", "keep_archived", "inbox_days", "pruned_versions", "removed_inbox_files"]
PRUNED_VERSION_KEYS = ["project", "version", "artifact_path"]
EXPORT_KEYS = ["project", "path", "members", "size", "model_versions", "dataset_versions"]
IMPORT_KEYS = ["project", "imported_from", "original_name", "model_versions", "dataset_versions"]
RESTORE_KEYS = ["restored_from", "projects", "replaced", "set_aside"]
DEMO_KEYS = ["project", "version", "metrics"]
METRIC_NAMES = ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"]


def _ok(capsys, workspace, *args):
    code, out, err = cli(capsys, workspace, *args)
    assert code == 0, (out, err)
    return out


def _text(capsys, workspace, *args):
    code, out, err = cli(capsys, workspace, *args, as_json=False)
    assert code in (0, 1), err
    return out.rstrip("\n")


def _aged(path, data: bytes, days: float = 0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time() - days * 86400
    os.utime(path, (past, past))


def test_verify_prints_its_findings_and_repairs_under_the_keys_it_always_had(tmp_path, capsys):
    ws = deployed_loans_workspace(tmp_path, rows=160, seed=3)
    healthy = _ok(capsys, ws, "verify")
    assert list(healthy) == VERIFY_KEYS and list(healthy["checked"]) == CHECKED_KEYS
    assert healthy == {"healthy": True, "quick": False, "workspace": str(ws),
                       "checked": {"projects": 1, "model_files": 1, "dataset_files": 1, "hashed": True},
                       "problems": [], "repaired": []}

    _aged(ws / "artifacts" / "loans" / ".v3.skops.x.tmp", b"half a model")
    _aged(ws / "datasets" / "loans" / "v9.parquet", b"rows")
    code, found, _ = cli(capsys, ws, "verify", "--quick")
    assert code == 1 and list(found) == VERIFY_KEYS and [list(p) for p in found["problems"]] == [PROBLEM_KEYS] * 2
    assert found == {"healthy": False, "quick": True, "workspace": str(ws),
                     "checked": {"projects": 1, "model_files": 1, "dataset_files": 1, "hashed": False},
                     "problems": [
                         {"check": "temporary", "path": "artifacts/loans/.v3.skops.x.tmp",
                          "message": "temporary file of an interrupted write", "error": True, "repair": "remove"},
                         {"check": "orphan", "path": "datasets/loans/v9.parquet",
                          "message": "file no registry row names", "error": True, "repair": "quarantine"}],
                     "repaired": []}
    assert _text(capsys, ws, "verify", "--quick") == (
        "error: temporary: artifacts/loans/.v3.skops.x.tmp: temporary file of an interrupted write [--repair: remove]\n"
        "error: orphan: datasets/loans/v9.parquet: file no registry row names [--repair: quarantine]\n"
        f"Workspace {ws} is NOT healthy: 1 project(s), 1 model file(s), 1 dataset file(s) checked, "
        "presence only (--quick)")

    repaired = _ok(capsys, ws, "verify", "--repair")
    assert list(repaired) == VERIFY_KEYS and [list(r) for r in repaired["repaired"]] == [REPAIRED_KEYS] * 2
    assert repaired == {"healthy": True, "quick": False, "workspace": str(ws),
                        "checked": {"projects": 1, "model_files": 1, "dataset_files": 1, "hashed": True},
                        "problems": [],
                        "repaired": [{"path": "artifacts/loans/.v3.skops.x.tmp", "action": "remove", "check": "temporary"},
                                     {"path": "datasets/loans/v9.parquet", "action": "quarantine", "check": "orphan"}]}

    (ws / "artifacts" / "loans" / "v1.skops").write_bytes(b"not the model")
    code, damaged, _ = cli(capsys, ws, "verify")
    assert code == 1 and [(p["check"], p["path"], p["error"], p["repair"]) for p in damaged["problems"]] == [
        ("artifact", "artifacts/loans/v1.skops", True, None), ("production", "artifacts/loans/v1.skops", True, None)]
    assert damaged["problems"][0]["message"] == ("loans v1: model file does not match its recorded sha256 "
                                                 "(damaged or replaced)")


def test_backup_schedule_retention_and_prune_print_the_keys_they_always_had(tmp_path, capsys):
    ws = deployed_loans_workspace(tmp_path, rows=160, seed=3)
    _ok(capsys, ws, "train", "loans")
    _ok(capsys, ws, "archive", "loans", "--version", "2")
    _aged(ws / "projects" / "loans" / "inbox" / "processed" / "old.csv", b"a,b\n", days=10)

    destination = tmp_path / "b.keel-backup"
    backed_up = _ok(capsys, ws, "backup", str(destination))
    assert list(backed_up) == BACKUP_KEYS
    assert {key: backed_up[key] for key in ("path", "projects", "members", "size", "warnings")} == {
        "path": str(destination), "projects": ["loans"], "members": 8, "size": destination.stat().st_size,
        "warnings": []}
    assert isinstance(backed_up["seconds"], float)
    assert _text(capsys, ws, "backup", str(tmp_path / "c.keel-backup")) == (
        f"Backed up 1 project(s), 8 files, {(tmp_path / 'c.keel-backup').stat().st_size / 1e6:.1f} MB -> "
        f"{tmp_path / 'c.keel-backup'}")

    assert _ok(capsys, ws, "backup") == {"schedule": {
        "enabled": False, "every": None, "keep": 7, "folder": str(tmp_path / "workspace-backups"),
        "last_backup_at": None}}
    folder = tmp_path / "backups"
    scheduled = _ok(capsys, ws, "backup", "--schedule", "every 1d", "--keep", "3", "--folder", str(folder))
    assert list(scheduled) == ["schedule"] and list(scheduled["schedule"]) == SCHEDULE_KEYS
    assert scheduled["schedule"] == {"enabled": True, "every": "every 1d", "keep": 3, "folder": str(folder),
                                     "last_backup_at": None}
    both = _ok(capsys, ws, "backup", str(tmp_path / "d.keel-backup"), "--keep", "4")
    assert list(both) == ["schedule", *BACKUP_KEYS] and both["schedule"]["keep"] == 4
    assert _text(capsys, ws, "backup", "--schedule", "off") == "Scheduled backup: off"
    assert _ok(capsys, ws, "backup")["schedule"] == {"enabled": False, "every": None, "keep": 4, "folder": str(folder),
                                                     "last_backup_at": None}

    assert _ok(capsys, ws, "retention") == {"retention": {"keep_archived": None, "inbox_days": None,
                                                          "last_applied_at": None}}
    rules = _ok(capsys, ws, "retention", "--keep-archived", "0", "--inbox-days", "7")
    assert list(rules) == ["retention"] and list(rules["retention"]) == RETENTION_KEYS
    assert rules == {"retention": {"keep_archived": 0, "inbox_days": 7.0, "last_applied_at": None}}
    planned = _ok(capsys, ws, "retention", "--apply", "--dry-run")
    assert list(planned) == PRUNE_KEYS and [list(v) for v in planned["pruned_versions"]] == [PRUNED_VERSION_KEYS]
    assert planned == {"retention": {"keep_archived": 0, "inbox_days": 7.0, "last_applied_at": None},
                       "dry_run": True, "keep_archived": 0, "inbox_days": 7.0,
                       "pruned_versions": [{"project": "loans", "version": 2, "artifact_path": "artifacts/loans/v2.skops"}],
                       "removed_inbox_files": ["projects/loans/inbox/processed/old.csv"]}
    assert _text(capsys, ws, "retention", "--apply", "--dry-run") == (
        "Retention: keep 0 archived version(s) per project; inbox files kept 7 day(s)\n"
        "would remove: loans v2 (artifacts/loans/v2.skops)\n"
        "would remove: projects/loans/inbox/processed/old.csv")
    pruned = _ok(capsys, ws, "retention", "--apply")
    assert list(pruned) == PRUNE_KEYS
    assert {key: pruned[key] for key in PRUNE_KEYS[1:]} == {
        "dry_run": False, "keep_archived": 0, "inbox_days": 7.0,
        "pruned_versions": [{"project": "loans", "version": 2, "artifact_path": "artifacts/loans/v2.skops"}],
        "removed_inbox_files": ["projects/loans/inbox/processed/old.csv"]}
    applied = _ok(capsys, ws, "retention")["retention"]
    assert (applied["keep_archived"], applied["inbox_days"]) == (0, 7.0) and isinstance(applied["last_applied_at"], str)
    assert _text(capsys, ws, "retention", "--keep-archived", "off", "--inbox-days", "off") == (
        "Retention: keep all archived version(s) per project; inbox files kept forever")


def test_bundles_and_restores_print_the_keys_they_always_had(tmp_path, capsys):
    ws = deployed_loans_workspace(tmp_path, rows=160, seed=3)
    bundle = tmp_path / "loans.keel"
    exported = _ok(capsys, ws, "bundle", "export", "loans", "--output", str(bundle))
    assert list(exported) == EXPORT_KEYS
    assert exported == {"project": "loans", "path": str(bundle), "members": exported["members"],
                        "size": bundle.stat().st_size, "model_versions": 1, "dataset_versions": 1}
    assert exported["members"] > 3  # the rows of each table, the model, its reference, the dataset
    imported = _ok(capsys, tmp_path / "other", "bundle", "import", str(bundle), "--as", "copy")
    assert list(imported) == IMPORT_KEYS
    assert imported == {"project": "copy", "imported_from": str(bundle), "original_name": "loans",
                        "model_versions": 1, "dataset_versions": 1}
    assert _text(capsys, tmp_path / "other", "bundle", "import", str(bundle), "--as", "again") == (
        f"Imported project again from {bundle}: 1 model version(s), 1 dataset version(s)")

    archive = tmp_path / "b.keel-backup"
    _ok(capsys, ws, "backup", str(archive))
    restored = _ok(capsys, tmp_path / "empty", "restore", str(archive))
    assert list(restored) == RESTORE_KEYS
    assert restored == {"restored_from": str(archive), "projects": ["loans"], "replaced": [], "set_aside": None}
    assert _text(capsys, tmp_path / "fresh", "restore", str(archive)) == f"Restored 1 project(s) from {archive}"

    over = _ok(capsys, ws, "restore", str(archive), "--force")
    assert list(over) == RESTORE_KEYS
    assert (over["restored_from"], over["projects"], over["replaced"]) == (str(archive), ["loans"], ["loans"])
    assert re.fullmatch(re.escape(str(ws / "quarantine" / "replaced-")) + r"\d{8}T\d{6}", over["set_aside"])

    for suffix in ("-wal", "-shm"):
        (ws / f"registry.db{suffix}").unlink(missing_ok=True)
    (ws / "registry.db").write_bytes(b"this is not a database" * 100)
    damaged = _ok(capsys, ws, "restore", str(archive), "--force")
    assert list(damaged) == RESTORE_KEYS
    assert (damaged["restored_from"], damaged["projects"], damaged["replaced"]) == (str(archive), ["loans"], None)
    assert re.fullmatch(re.escape(str(ws / "quarantine" / "replaced-")) + r"\d{8}T\d{6}", damaged["set_aside"])


def test_the_demo_command_prints_its_project_version_and_metrics(tmp_path, capsys, monkeypatch):
    # a small, fast demo: the document is the same whatever the data and the model
    monkeypatch.setattr(demo_project, "initial_training_data", lambda: make_batch(200, seed=7000))
    monkeypatch.setitem(demo_project.DEMO_SETTINGS, "preset", "logreg")
    created = _ok(capsys, tmp_path / "ws", "demo")
    assert list(created) == DEMO_KEYS and list(created["metrics"]) == METRIC_NAMES
    assert (created["project"], created["version"]) == ("demo-credit", 1)
    assert all(isinstance(value, float) for value in created["metrics"].values())
    status = _ok(capsys, tmp_path / "ws", "status", "demo-credit")
    assert status["production_version"] == 1 and status["versions"][0]["metrics"] == created["metrics"]


def test_the_services_hand_frozen_typed_results_that_pickle_and_print_as_the_cli_shows(tmp_path, capsys):
    ws = deployed_loans_workspace(tmp_path, rows=160, seed=3)
    _aged(ws / "datasets" / "loans" / "v9.parquet", b"rows")
    keel = Keel.open(ws)
    try:
        results = {"found": keel.verifier.verify(quick=True), "repaired": keel.verifier.verify(repair=True),
                   "backup": keel.backup.backup(tmp_path / "b.keel-backup"),
                   "schedule": keel.upkeep.set_backup_schedule(every="every 1d", folder=str(tmp_path / "backups")),
                   "rules": keel.upkeep.set_retention(keep_archived=2),
                   "prune": keel.upkeep.prune(dry_run=True),
                   "upkeep": keel.upkeep.run_due(),
                   "export": keel.bundle.export_bundle("loans", tmp_path / "loans.keel"),
                   "import": keel.bundle.import_bundle(tmp_path / "loans.keel", new_name="copy"),
                   "restore": keel.backup.restore(tmp_path / "b.keel-backup", force=True),
                   "stream": demo_stream.demo_state(keel)}
    finally:
        keel.close()
    assert isinstance(results["found"], VerifyReport) and not results["found"].healthy
    assert results["found"].errors == (Finding("orphan", "datasets/loans/v9.parquet", "file no registry row names",
                                               True, "quarantine"),)
    assert results["repaired"].healthy and results["repaired"].repaired == (
        Repair("datasets/loans/v9.parquet", "quarantine", "orphan"),)
    assert results["repaired"].checked == FilesChecked(projects=1, model_files=1, dataset_files=1, hashed=True)
    assert isinstance(results["backup"], BackupMade) and results["backup"].projects == ("loans",)
    assert results["schedule"] == BackupSchedule(every="every 1d", keep=7, folder=str(tmp_path / "backups"),
                                                 last_backup_at=None)
    assert results["rules"] == RetentionSettings(keep_archived=2, inbox_days=None, last_applied_at=None)
    assert results["prune"] == PruneResult(dry_run=True, keep_archived=2, inbox_days=None, pruned_versions=(),
                                           removed_inbox_files=())
    upkeep_done = results["upkeep"]
    assert isinstance(upkeep_done, UpkeepDone) and upkeep_done.backup is not None and not upkeep_done.failed
    assert upkeep_done.retention == PruneResult(dry_run=False, keep_archived=2, inbox_days=None, pruned_versions=(),
                                                removed_inbox_files=())
    assert list(upkeep_done.to_json()) == ["backup", "retention"]
    assert list(upkeep_done.to_json()["backup"]) == [*BACKUP_KEYS, "removed_old_backups"]
    assert isinstance(results["export"], BundleExported) and results["import"] == BundleImported(
        project="copy", imported_from=str(tmp_path / "loans.keel"), original_name="loans", model_versions=1,
        dataset_versions=1)
    assert isinstance(results["restore"], Restored) and results["restore"].replaced == ("copy", "loans")
    assert results["stream"] == DemoStreamState(next=0, batches=demo_stream.DEMO_STREAM.batches,
                                                project_created_at=None)
    for result in results.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.path = "changed"  # type: ignore[union-attr]
        assert pickle.loads(pickle.dumps(result)) == result  # crosses the window's child process as it is
    assert results["repaired"].to_json() == {**_ok(capsys, ws, "verify"), "repaired": [
        {"path": "datasets/loans/v9.parquet", "action": "quarantine", "check": "orphan"}]}
    assert results["import"].to_json() == _ok(capsys, tmp_path / "other", "bundle", "import",
                                              str(tmp_path / "loans.keel"), "--as", "copy")
    assert {"retention": RetentionSettings(keep_archived=None, inbox_days=None, last_applied_at=None).to_json()} == _ok(
        capsys, ws, "retention"), "the restored workspace's settings are the backup's"


def test_an_archive_lists_its_members_as_typed_entries_and_its_manifest_keeps_its_json(tmp_path):
    with write_archive(tmp_path / "a.keel", "bundle", {"schema_version": 3}) as writer:
        added = writer.add_bytes("rows/one.json", b"[]")
    assert added == ArchiveMember(name="rows/one.json", size=2, sha256=hashlib.sha256(b"[]").hexdigest())
    with ArchiveReader(tmp_path / "a.keel", expected_kind="bundle") as reader:
        assert reader.entries == {"rows/one.json": added} and reader.schema_version == 3
        assert reader.manifest["members"] == [{"name": "rows/one.json", "size": 2, "sha256": added.sha256}]


def test_the_backup_schedule_and_retention_rules_an_earlier_keel_stored_read_back_typed(tmp_path, capsys):
    ws = tmp_path / "ws"
    _ok(capsys, ws, "retention")  # creates the workspace
    with opened_store(ws) as registry:  # as an earlier Keel stored them: only the keys it was given
        registry.conn.execute("INSERT INTO workspace_settings (key, value_json) VALUES "
                              "('scheduled_backup', '{\"every\": \"every 2h\"}'), ('retention', '{\"inbox_days\": 3}')")
        assert maintenance.scheduled_backup(registry) == BackupScheduleSetting(every="every 2h", keep=7, folder=None)
        assert maintenance.retention_rules(registry) == RetentionRules(keep_archived=None, inbox_days=3)
    assert _ok(capsys, ws, "backup") == {"schedule": {"enabled": True, "every": "every 2h", "keep": 7,
                                                      "folder": str(tmp_path / "ws-backups"), "last_backup_at": None}}
    assert _ok(capsys, ws, "retention") == {"retention": {"keep_archived": None, "inbox_days": 3,
                                                          "last_applied_at": None}}
    _ok(capsys, ws, "backup", "--keep", "2")
    with opened_store(ws) as registry:
        stored = dict(registry.conn.execute("SELECT key, value_json FROM workspace_settings"))
    assert json.loads(stored["scheduled_backup"]) == {"every": "every 2h", "keep": 2, "folder": None}
