"""Retention prunes archived versions beyond the newest N and old processed/rejected inbox
files — never production, a deployed or aliased version, or a dataset; scheduled backups
keep the last N."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import cli, deployed_loans_workspace

from app.core.services import upkeep
from app.core.services.lifecycle import Keel


@pytest.fixture
def ws(tmp_path):
    return deployed_loans_workspace(tmp_path, rows=160, seed=3)


def test_retention_prunes_old_archived_versions_but_never_a_deployed_one(ws, capsys):
    for _ in range(4):
        assert cli(capsys, ws, "train", "loans")[0] == 0  # v2..v5
    assert cli(capsys, ws, "deploy", "loans", "--version", "2")[0] == 0
    assert cli(capsys, ws, "deploy", "loans", "--version", "5")[0] == 0  # v2 was in production once
    for version in (1, 2, 3, 4):  # v1 and v2 were in production: never pruned
        assert cli(capsys, ws, "archive", "loans", "--version", str(version))[0] == 0
    code, out, _ = cli(capsys, ws, "retention", "--keep-archived", "0", "--apply", "--dry-run")
    assert code == 0 and [v["version"] for v in out["pruned_versions"]] == [3, 4]
    assert all(list(v) == ["project", "version", "artifact_path"] for v in out["pruned_versions"])
    assert (ws / "artifacts" / "loans" / "v3.skops").exists()

    code, out, _ = cli(capsys, ws, "retention", "--keep-archived", "1", "--apply")
    assert code == 0 and out["retention"]["keep_archived"] == 1
    assert [v["version"] for v in out["pruned_versions"]] == [3]  # v4: the newest archived one is kept
    assert not (ws / "artifacts" / "loans" / "v3.skops").exists()
    for kept in (1, 2, 4, 5):
        assert (ws / "artifacts" / "loans" / f"v{kept}.skops").exists()
    assert cli(capsys, ws, "verify")[0] == 0, "a pruned version's missing file is no error"
    _, history, _ = cli(capsys, ws, "history", "loans")
    assert any(e["kind"] == "model_pruned" and e["details"]["version"] == 3 for e in history["events"])
    _, status, _ = cli(capsys, ws, "status", "loans")
    assert 3 in [v["version"] for v in status["versions"]], "the registry row stays"


def test_retention_removes_old_processed_and_rejected_files_only(ws, capsys):
    inbox = ws / "projects" / "loans" / "inbox"
    old, recent = inbox / "processed" / "old.csv", inbox / "rejected" / "new.csv"
    waiting = inbox / "waiting.csv"
    for path in (old, recent, waiting):
        path.write_text("x\n")
    ten_days_ago = time.time() - 10 * 86400
    for path in (old, waiting):
        os.utime(path, (ten_days_ago, ten_days_ago))
    code, out, _ = cli(capsys, ws, "retention", "--inbox-days", "7", "--apply")
    assert code == 0 and out["removed_inbox_files"] == ["projects/loans/inbox/processed/old.csv"]
    assert not old.exists() and recent.exists() and waiting.exists()


def test_retention_settings_are_validated_and_shown(ws, capsys):
    assert cli(capsys, ws, "retention", "--keep-archived", "-1")[0] == 2
    assert cli(capsys, ws, "retention", "--inbox-days", "soon")[0] == 2
    code, out, _ = cli(capsys, ws, "retention", "--inbox-days", "30")
    assert code == 0 and out["retention"]["inbox_days"] == 30 and out["retention"]["keep_archived"] is None
    code, out, _ = cli(capsys, ws, "retention", "--inbox-days", "off")
    assert out["retention"]["inbox_days"] is None


def test_scheduled_backups_run_when_due_and_keep_the_last_n(ws, tmp_path, capsys):
    folder = tmp_path / "backups"
    code, out, _ = cli(capsys, ws, "backup", "--schedule", "every 1h", "--keep", "2", "--folder", str(folder))
    assert code == 0 and out["schedule"]["enabled"] and out["schedule"]["keep"] == 2
    assert cli(capsys, ws, "backup", "--folder", str(ws / "inside"))[0] == 2
    keel = Keel.open(ws)
    try:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        assert keel.upkeep.run_due(start).backup is not None
        assert keel.upkeep.run_due(start + timedelta(minutes=30)).backup is None
        for hours in (1, 2, 3):
            assert keel.upkeep.run_due(start + timedelta(hours=hours)).backup is not None
        names = upkeep.backup_files(folder)
    finally:
        keel.close()
    assert names == ["keel-20260101T020000Z.keel-backup", "keel-20260101T030000Z.keel-backup"]
    (folder / "mine.keel-backup").write_text("the user's own file")
    code, out, _ = cli(capsys, ws, "backup", "--schedule", "off")
    assert code == 0 and not out["schedule"]["enabled"]
    assert (folder / "mine.keel-backup").exists()
