"""No user action reaches into the workspace's own files: output paths, project names,
a stale production manifest, a full disk."""

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from app.core.services.lifecycle import Keel
from tests.cli_helpers import cli, deployed_loans_workspace, loans, snapshot, workspace_copy, write_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def deployed_template(tmp_path_factory):
    return deployed_loans_workspace(tmp_path_factory.mktemp("template"), rows=160, seed=3)


@pytest.fixture
def deployed(deployed_template, tmp_path):
    """A fresh copy of a workspace with project `loans`, v1 trained and in production, and v2 trained."""
    folder = workspace_copy(deployed_template, tmp_path)
    keel = Keel.open(folder)
    try:
        keel.train("loans")
    finally:
        keel.close()
    return folder


# --------------------------------------------------------------------------- output paths
def _outputs_inside(workspace: Path, outside: Path) -> list[str]:
    """Ways to name a file of the workspace: direct, new, through `..`, through a symlink."""
    link = outside / "link-to-workspace"
    link.symlink_to(workspace, target_is_directory=True)
    file_link = outside / "registry-link.db"
    file_link.symlink_to(workspace / "registry.db")
    return [
        str(workspace / "registry.db"),
        str(workspace / "artifacts" / "loans" / "v2.skops"),
        str(workspace / "datasets" / "loans" / "v1.parquet"),
        str(workspace / "not-yet-there.csv"),
        str(workspace / "new-folder" / "deeper" / "x.csv"),
        str(workspace),
        str(outside / ".." / workspace.name / "registry.db"),
        str(link / "registry.db"),
        str(link / "artifacts" / "loans" / "fresh.skops"),
        str(file_link),
    ]


@pytest.mark.parametrize("command", ["export", "predict"])
def test_an_output_path_inside_the_workspace_is_refused_and_nothing_is_written(capsys, deployed, tmp_path, command):
    outside = tmp_path / "outside"
    outside.mkdir()
    scoring_input = write_csv(outside / "score.csv", loans(20, seed=5).drop(columns=["default"]))
    for output in _outputs_inside(deployed, outside):
        before = snapshot(deployed)
        args = (["export", "loans", "--version", "1", "--output", output] if command == "export"
                else ["predict", "loans", "--input", str(scoring_input), "--output", output])
        code, out, err = cli(capsys, deployed, *args)
        assert code == 2, (output, out)
        assert "inside the workspace" in out["error"]["message"]
        assert len(err.strip().splitlines()) == 1
        assert snapshot(deployed) == before, output
    code, out, _ = cli(capsys, deployed, "status", "loans")  # the registry and every version still intact
    assert code == 0 and out["production_version"] == 1
    keel = Keel.open(deployed)
    try:
        keel.load_version("loans", 2)  # its sha256 still matches
        keel.training_frame("loans")  # every dataset version still reads
    finally:
        keel.close()


def test_an_output_path_outside_the_workspace_is_written_and_overwritten(capsys, deployed, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = outside / "model.skops"
    target.write_text("an older file")
    code, out, err = cli(capsys, deployed, "export", "loans", "--version", "1", "--output", str(target))
    assert code == 0, err
    assert target.read_bytes() == (deployed / "artifacts" / "loans" / "v1.skops").read_bytes()
    scoring_input = write_csv(outside / "score.csv", loans(15, seed=6).drop(columns=["default"]))
    scored = outside / "scored.csv"
    scored.write_text("old")
    code, out, err = cli(capsys, deployed, "predict", "loans", "--input", str(scoring_input), "--output", str(scored))
    assert code == 0, err
    assert len(pd.read_csv(scored)) == 15


def test_a_workspace_reached_through_a_symlink_is_still_the_workspace(capsys, deployed, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(deployed, target_is_directory=True)
    before = snapshot(deployed)
    code, out, _ = cli(capsys, alias, "export", "loans", "--version", "1", "--output", str(deployed / "registry.db"))
    assert code == 2 and "inside the workspace" in out["error"]["message"]
    assert snapshot(deployed) == before


# --------------------------------------------------------------------------- project names
@pytest.mark.parametrize("name", ["../../elsewhere/evil", "../keel", "ABSOLUTE", "loans\n", "a/../loans"])
def test_a_project_name_that_is_a_path_is_refused_before_any_file_is_touched(capsys, deployed, tmp_path, name):
    name = str(tmp_path / "absolute-evil") if name == "ABSOLUTE" else name
    before = snapshot(deployed)
    started = time.monotonic()
    code, out, _ = cli(capsys, deployed, "deploy", name, "--version", "1")
    assert time.monotonic() - started < 10  # no wait on any lock
    assert code == 2 and "invalid project name" in out["error"]["message"]
    assert snapshot(deployed) == before
    assert not list(tmp_path.rglob("*evil*")) and not list(deployed.parent.parent.rglob("*evil*"))
    assert not (deployed / "locks" / "loans\n.lock").exists()


def test_deploy_of_dotdot_keel_does_not_wait_on_the_workspace_lock(deployed):
    from app.core.store.workspace import FileLock

    held = FileLock(deployed / "keel.lock")  # as a window or `keel run` holds it
    assert held.try_acquire()
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--workspace", str(deployed),
                                 "deploy", "../keel", "--version", "1"], capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 30
        assert result.returncode == 2 and "invalid project name" in result.stderr
    finally:
        held.release()


def test_a_trailing_newline_is_not_a_valid_project_name(capsys, tmp_path, workspace):
    data = write_csv(tmp_path / "d.csv", loans(60, seed=2))
    code, out, _ = cli(capsys, workspace, "project", "create", "loans\n", "--data", str(data), "--target", "default")
    assert code == 2 and "invalid project name" in out["error"]["message"]
    assert not (workspace / "datasets").exists() or not any((workspace / "datasets").iterdir())


# --------------------------------------------------------------------------- production.json
def _manifest(workspace: Path) -> dict:
    return json.loads((workspace / "projects" / "loans" / "production.json").read_text())


def test_a_manifest_left_stale_by_a_killed_deploy_is_rewritten_when_the_workspace_opens(deployed, monkeypatch, store):
    keel = Keel.open(deployed)
    monkeypatch.setattr(Keel, "_install_manifest", lambda self, staged: None)  # the process dies right after the commit
    try:
        keel.deploy("loans", 2)
    finally:
        keel.close()
    monkeypatch.undo()
    assert _manifest(deployed)["version"] == 1  # stale: the registry says v2
    reopened = Keel.open(deployed)
    try:
        manifest = _manifest(deployed)
        model_version = store(reopened).model_version(reopened.project("loans").id, 2)
    finally:
        reopened.close()
    assert manifest["version"] == 2 and manifest["sha256"] == model_version.sha256


def test_a_damaged_manifest_is_rewritten_and_a_removed_one_restored(deployed):
    path = deployed / "projects" / "loans" / "production.json"
    path.write_text('{"version": 1, "sha')  # torn
    Keel.open(deployed).close()
    assert _manifest(deployed)["version"] == 1
    path.unlink()
    Keel.open(deployed).close()
    assert _manifest(deployed)["version"] == 1


def test_a_real_sigkill_between_commit_and_manifest_leaves_a_manifest_that_is_fixed_on_open(deployed, tmp_path):
    script = tmp_path / "die_after_commit.py"
    script.write_text(
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from app.core.services.lifecycle import Keel\n"
        "Keel._install_manifest = lambda self, staged: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"Keel.open({str(deployed)!r}).deploy('loans', 2)\n")
    result = subprocess.run([sys.executable, str(script)], timeout=60)
    assert result.returncode == -9
    assert _manifest(deployed)["version"] == 1
    Keel.open(deployed).close()
    assert _manifest(deployed)["version"] == 2


# --------------------------------------------------------------------------- disk full
def _fail_with_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _half_written_then_full(self, path, *args, **kwargs):
    Path(path).write_bytes(b"PAR1 partial")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("command", ["ingest", "train", "deploy", "export"])
def test_a_full_disk_leaves_the_workspace_as_it_was_and_says_disk_full(capsys, deployed, tmp_path, monkeypatch,
                                                                       command):
    batch = write_csv(tmp_path / "batch.csv", loans(40, seed=9))
    if command == "ingest":
        monkeypatch.setattr(pd.DataFrame, "to_parquet", _half_written_then_full)
        args = ["ingest", "loans", str(batch)]
    elif command == "train":
        import skops.io

        monkeypatch.setattr(skops.io, "dump", _fail_with_enospc)
        args = ["train", "loans"]
    elif command == "deploy":
        monkeypatch.setattr(os, "fsync", _fail_with_enospc)  # the manifest's write reaches the disk
        args = ["deploy", "loans", "--version", "2"]
    else:
        monkeypatch.setattr(shutil, "copyfile", _fail_with_enospc)
        args = ["export", "loans", "--version", "1", "--output", str(tmp_path / "out.skops")]
    before = snapshot(deployed)
    code, out, err = cli(capsys, deployed, *args, as_json=False)
    monkeypatch.undo()
    assert code == 2
    assert err.startswith("keel: error: disk full") and len(err.strip().splitlines()) == 1
    assert snapshot(deployed) == before
    assert not (tmp_path / "out.skops").exists()


def test_a_full_registry_database_says_disk_full_and_stores_nothing(capsys, deployed, tmp_path, monkeypatch):
    from app.core.store.registry import Registry

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Registry, "add_event", full)  # inside ingest's transaction, after its file is written
    batch = write_csv(tmp_path / "batch.csv", loans(50, seed=12))
    before = snapshot(deployed)
    code, out, err = cli(capsys, deployed, "ingest", "loans", str(batch), as_json=False)
    monkeypatch.undo()
    assert code == 2 and err.startswith("keel: error: disk full"), err
    assert snapshot(deployed) == before
