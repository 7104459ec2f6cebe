"""Workspace resolution order and the cross-process locks."""

import subprocess
import sys
import time
from pathlib import Path

import platformdirs
import pytest

from app.core.domain.errors import BusyError, KeelError
from app.core.domain.project_name import check_project_name
from app.core.store import workspace as workspace_module
from app.core.store.workspace import (
    FileLock,
    Workspace,
    project_lock,
    resolve_workspace,
)
from app.frontends.cli import main


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A fake source checkout (main.py beside models_store/), with no $KEEL_WORKSPACE."""
    root = tmp_path / "checkout"
    (root / "models_store").mkdir(parents=True)
    (root / "main.py").write_text("")
    monkeypatch.setattr(workspace_module, "SOURCE_ROOT", root)
    monkeypatch.delenv("KEEL_WORKSPACE", raising=False)
    return root


def test_the_explicit_folder_comes_first(checkout, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_WORKSPACE", str(tmp_path / "from_env"))
    assert resolve_workspace(tmp_path / "given") == (tmp_path / "given").resolve()


def test_then_the_environment_variable(checkout, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_WORKSPACE", str(tmp_path / "from_env"))
    assert resolve_workspace() == (tmp_path / "from_env").resolve()
    assert resolve_workspace(None) == resolve_workspace("")


def test_then_models_store_in_a_source_checkout(checkout):
    assert resolve_workspace() == checkout / "models_store"


def test_then_the_user_data_folder_when_installed(checkout, monkeypatch, tmp_path):
    (checkout / "main.py").unlink()  # an installed package has no main.py beside it
    assert resolve_workspace() == Path(platformdirs.user_data_dir("keel", appauthor=False))
    monkeypatch.setattr(workspace_module, "SOURCE_ROOT", tmp_path / "site-packages")
    assert resolve_workspace() == Path(platformdirs.user_data_dir("keel", appauthor=False))


def test_a_checkout_without_models_store_uses_the_user_data_folder(checkout):
    (checkout / "models_store").rmdir()
    assert resolve_workspace() == Path(platformdirs.user_data_dir("keel", appauthor=False))


def test_the_real_checkout_resolves_to_its_models_store(monkeypatch):
    monkeypatch.delenv("KEEL_WORKSPACE", raising=False)
    root = Path(__file__).resolve().parents[1]
    assert workspace_module.SOURCE_ROOT == root
    assert resolve_workspace() == root / "models_store"


def test_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_workspace("~/keel-data") == tmp_path / "keel-data"
    monkeypatch.setenv("KEEL_WORKSPACE", "~/from-env")
    assert resolve_workspace() == tmp_path / "from-env"


def test_the_cli_follows_the_same_order(checkout, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KEEL_WORKSPACE", str(tmp_path / "from_env"))
    assert main(["--workspace", str(tmp_path / "given"), "project", "list", "--json"]) == 0
    assert (tmp_path / "given" / "registry.db").is_file() and not (tmp_path / "from_env").exists()
    assert main(["project", "list", "--json"]) == 0
    assert (tmp_path / "from_env" / "registry.db").is_file()
    monkeypatch.delenv("KEEL_WORKSPACE")
    assert main(["project", "list", "--json"]) == 0
    assert (checkout / "models_store" / "registry.db").is_file()
    capsys.readouterr()


def test_workspace_layout(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    assert ws.root.is_dir()
    assert ws.registry_path == ws.root / "registry.db"
    assert ws.log_path == ws.root / "logs" / "keel.log"
    assert ws.artifact_dir("p") == ws.root / "artifacts" / "p"
    assert ws.inbox_dir("p") == ws.root / "projects" / "p" / "inbox"


@pytest.mark.parametrize("name", ["", "a b", "../up", "x/y", ".hidden", "-dash", "a" * 65])
def test_project_names_that_could_escape_or_confuse_are_refused(name):
    with pytest.raises(KeelError, match="invalid project name"):
        check_project_name(name)


def test_good_project_names():
    for name in ("loans", "Loans_2026", "a.b-c", "9lives"):
        assert check_project_name(name) == name


# --------------------------------------------------------------------------- locks
def test_a_lock_is_held_against_a_second_holder(tmp_path):
    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    assert first.try_acquire() and first.held
    assert not second.try_acquire()
    assert first.holder_pid() is not None
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_dead_holder_does_not_leave_the_lock_stuck(tmp_path):
    path = tmp_path / "keel.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         f"h = open({str(path)!r}, 'a+'); fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not FileLock(path).try_acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = FileLock(path)
    assert lock.acquire(timeout=5)
    lock.release()


def test_project_lock_times_out_with_a_busy_error(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    holder = FileLock(ws.project_lock_path("loans"))
    assert holder.try_acquire()
    try:
        started = time.monotonic()
        with pytest.raises(BusyError, match="'loans' is busy"):
            with project_lock(ws, "loans", timeout=0.2):
                pass
        assert time.monotonic() - started < 2
        with project_lock(ws, "other", timeout=0.2):  # another project is not blocked
            pass
    finally:
        holder.release()
    with project_lock(ws, "loans", timeout=0.2):
        pass
