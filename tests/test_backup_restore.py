"""backup DEST / restore SRC: a consistent copy of a live workspace in one archive; a damaged
backup is refused before anything is written; restore needs --force over projects."""

import threading
import zipfile

import pytest
from cli_helpers import cli, deployed_loans_workspace, loans, refused, snapshot, write_csv

from app.core.services.lifecycle import Keel


@pytest.fixture
def ws(tmp_path):
    return deployed_loans_workspace(tmp_path, rows=160, seed=3)


def _status_and_history(capsys, workspace):
    _, status, _ = cli(capsys, workspace, "status", "loans")
    _, history, _ = cli(capsys, workspace, "history", "loans")
    return status, [(e["kind"], e["message"]) for e in history["events"]]


def test_backup_then_restore_into_an_empty_workspace_gives_the_same_projects(ws, tmp_path, capsys):
    (ws / "projects" / "loans" / "inbox" / "waiting.csv").write_text("a,b\n1,2\n")
    code, out, _ = cli(capsys, ws, "backup", str(tmp_path / "b.keel-backup"))
    assert code == 0 and out["projects"] == ["loans"] and out["warnings"] == []
    before = _status_and_history(capsys, ws)
    target = tmp_path / "restored"
    code, out, _ = cli(capsys, target, "restore", str(tmp_path / "b.keel-backup"))
    assert code == 0 and out["projects"] == ["loans"] and out["replaced"] == []
    status, history = _status_and_history(capsys, target)
    assert status == before[0]
    assert history == before[1]
    assert (target / "projects" / "loans" / "inbox" / "waiting.csv").read_text() == "a,b\n1,2\n"
    code, out, _ = cli(capsys, target, "verify")
    assert code == 0, out["problems"]
    code, out, _ = cli(capsys, target, "predict", "loans", "--input", str(write_csv(tmp_path / "in.csv", loans(20))),
                       "--output", str(tmp_path / "out.csv"))
    assert code == 0


def test_a_backup_taken_while_another_process_writes_is_consistent(ws, tmp_path, capsys):
    stop, errors = threading.Event(), []
    batches = [write_csv(tmp_path / f"batch{i}.csv", loans(40, seed=100 + i)) for i in range(30)]

    def keep_ingesting():
        keel = Keel.open(ws)
        try:
            for path in batches:
                if stop.is_set():
                    break
                keel.ingest("loans", path)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            keel.close()

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    try:
        code, out, err = cli(capsys, ws, "backup", str(tmp_path / "live.keel-backup"))
    finally:
        stop.set()
        writer.join()
    assert code == 0, err
    assert not errors
    target = tmp_path / "restored"
    assert cli(capsys, target, "restore", str(tmp_path / "live.keel-backup"))[0] == 0
    code, out, _ = cli(capsys, target, "verify")
    assert code == 0, out["problems"]
    _, status, _ = cli(capsys, target, "status", "loans")
    assert len(status["dataset_versions"]) >= 1


def _damage(path, member):
    with zipfile.ZipFile(path) as source:
        items = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for name, data in items:
            target.writestr(name, data[:-1] + bytes([data[-1] ^ 1]) if name == member else data)


def test_a_damaged_backup_is_refused_before_anything_is_written(ws, tmp_path, capsys):
    archive = tmp_path / "b.keel-backup"
    assert cli(capsys, ws, "backup", str(archive))[0] == 0
    _damage(archive, "datasets/loans/v1.parquet")
    assert refused(capsys, ws, "restore", str(archive), "--force") == \
        "b.keel-backup: member datasets/loans/v1.parquet is damaged (sha256 mismatch)"


def test_restore_over_projects_needs_force_and_keeps_the_replaced_files(ws, tmp_path, capsys):
    archive = tmp_path / "b.keel-backup"
    assert cli(capsys, ws, "backup", str(archive))[0] == 0
    assert cli(capsys, ws, "train", "loans")[0] == 0  # v2 exists only after the backup
    code, out, _ = cli(capsys, ws, "restore", str(archive))
    assert code == 2 and "add --force" in out["error"]["message"]
    code, out, _ = cli(capsys, ws, "restore", str(archive), "--force")
    assert code == 0 and out["replaced"] == ["loans"]
    _, status, _ = cli(capsys, ws, "status", "loans")
    assert [v["version"] for v in status["versions"]] == [1]
    aside = ws / "quarantine"
    assert list(aside.rglob("v2.skops")), "the replaced workspace's model files are kept"
    assert list(aside.rglob("registry.db"))
    assert cli(capsys, ws, "verify")[0] == 0


def test_backup_output_inside_the_workspace_is_refused(ws, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(ws / "artifacts")
    for path in (ws / "b.keel", ws / "artifacts" / "loans" / "v1.skops", link / "x.keel",
                 tmp_path / "elsewhere" / ".." / "workspace" / "registry.db"):
        before = snapshot(ws)
        code, out, _ = cli(capsys, ws, "backup", str(path))
        assert code == 2 and "is inside the workspace" in out["error"]["message"], path
        assert snapshot(ws) == before


def test_restore_of_something_that_is_not_a_backup_is_exit_2(ws, tmp_path, capsys):
    junk = tmp_path / "junk.keel-backup"
    junk.write_bytes(b"PK\x03\x04 not really")
    code, out, _ = cli(capsys, tmp_path / "other", "restore", str(junk))
    assert code == 2 and "not a Keel archive" in out["error"]["message"]


def test_restore_replaces_a_registry_that_cannot_be_opened(ws, tmp_path, capsys):
    archive = tmp_path / "b.keel-backup"
    assert cli(capsys, ws, "backup", str(archive))[0] == 0
    for suffix in ("-wal", "-shm"):
        (ws / f"registry.db{suffix}").unlink(missing_ok=True)
    (ws / "registry.db").write_bytes(b"this is not a database" * 100)
    code, out, _ = cli(capsys, ws, "status", "loans")
    assert code == 1 and "not a SQLite database" in out["error"]["message"]
    code, out, _ = cli(capsys, ws, "restore", str(archive))
    assert code == 2 and "--force" in out["error"]["message"]
    assert (ws / "registry.db").read_bytes().startswith(b"this is not")
    code, out, _ = cli(capsys, ws, "restore", str(archive), "--force")
    assert code == 0 and out["projects"] == ["loans"]
    assert list((ws / "quarantine").rglob("registry.db"))[0].read_bytes().startswith(b"this is not")
    assert cli(capsys, ws, "verify")[0] == 0
    _, status, _ = cli(capsys, ws, "status", "loans")
    assert status["production_version"] == 1
