"""All-or-nothing writes and the locks that keep one writer at a time: a failed commit rolls back,
racing creators and deploys wait for the project lock, a locked registry is a user error, the
runner frees the workspace lock when it cannot start."""

import sqlite3
import threading
from contextlib import contextmanager

import pandas as pd
import pytest
from cli_helpers import loans_csv
from store_helpers import workspace_of

from app.core.store.registry import Registry


def test_failed_commit_does_not_leave_the_transaction_open(tmp_path):
    """A COMMIT that fails (here: a deferred foreign key) must roll back; a connection left inside
    the transaction would nest every later write of that thread in it, never commit, and hold the
    write lock against every other connection."""
    registry = Registry(tmp_path / "registry.db")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            with registry.transaction():
                registry.conn.execute("PRAGMA defer_foreign_keys=ON")
                registry.conn.execute("INSERT INTO params (run_id, key, value) VALUES (999, 'k', 'v')")
        assert not registry.conn.in_transaction
        with registry.transaction():
            registry.add_event(None, "probe", "a later write commits")
        other = Registry(tmp_path / "registry.db")
        try:
            assert [e.kind for e in other.events()] == ["probe"]
        finally:
            other.close()
    finally:
        registry.close()


# --------------------------------------------------------------------------- lifecycle


def test_create_project_racing_another_creator_leaves_its_data_alone(tmp_path, monkeypatch, store):
    """Two `project create NAME` at once: the loser passes the existence check and waits for
    the project lock; it must check again under the lock, or it would overwrite the winner's datasets/NAME/v1.parquet, fail on the UNIQUE
    constraint (an internal error, exit 1) and then delete the winner's v1.parquet."""
    from app.core.domain.errors import KeelError
    from app.core.services import lifecycle

    data = loans_csv(tmp_path / "loans.csv")
    winner = lifecycle.Keel.open(tmp_path / "ws")
    loser = lifecycle.Keel.open(tmp_path / "ws")
    real_lock = lifecycle.project_lock

    @contextmanager
    def lock_won_by_the_other_process(workspace, project, timeout=600.0):
        # the other creator gets the lock first and finishes while this one waits for it
        monkeypatch.setattr(lifecycle, "project_lock", real_lock)
        winner.create_project(project, data, "default", "classification", {"preset": "logreg"})
        with real_lock(workspace, project, timeout):
            yield

    monkeypatch.setattr(lifecycle, "project_lock", lock_won_by_the_other_process)
    try:
        stored = workspace_of(winner).dataset_dir("p") / "v1.parquet"
        with pytest.raises(KeelError, match="already exists"):
            loser.create_project("p", data, "default", "classification", {"preset": "logreg"})
        assert stored.is_file(), "the winner's dataset file was deleted"
        assert len(pd.read_parquet(stored)) == store(winner).dataset_versions(winner.project("p").id)[0].rows
    finally:
        winner.close()
        loser.close()


def test_archive_waits_for_the_project_lock(tmp_path, store):
    """archive checks "not the production model" then writes: without the project lock a deploy
    of that version in another process could land in between (an archived production model)."""
    from app.core.services.lifecycle import Keel
    from app.core.store.workspace import FileLock

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        keel.train("p")
        keel.train("p")
        keel.deploy("p", 1)
        other_process = FileLock(workspace_of(keel).project_lock_path("p"))  # a deploy elsewhere holds it
        assert other_process.try_acquire()
        done = threading.Event()
        worker = threading.Thread(target=lambda: (keel.archive_version("p", 2), done.set()))
        worker.start()
        try:
            assert not done.wait(0.4), "archive did not wait for the project lock"
        finally:
            other_process.release()
        worker.join(10)
        assert done.is_set()
        assert store(keel).model_version(keel.project("p").id, 2).archived is True
    finally:
        keel.close()


def test_a_registry_locked_by_another_process_is_a_user_error_that_writes_nothing(tmp_path, capsys, monkeypatch):
    """Past the busy timeout, SQLite says "database is locked": exit 2 with a plain message,
    not exit 1 "internal error"."""
    from cli_helpers import cli, create_project

    from app.core.store import registry as registry_module

    workspace = tmp_path / "ws"
    create_project(capsys, workspace, tmp_path)
    blocker = sqlite3.connect(str(workspace / "registry.db"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        monkeypatch.setattr(registry_module, "BUSY_TIMEOUT_MS", 200)
        code, out, err = cli(capsys, workspace, "project", "set", "loans", "--threshold", "0.7")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert code == 2
    assert "registry is busy" in out["error"]["message"] and "Traceback" not in err
    code, out, _ = cli(capsys, workspace, "status", "loans")
    assert code == 0 and out["settings"]["threshold"] is None


def test_the_runner_frees_the_workspace_lock_when_it_fails_to_start(tmp_path, capsys, monkeypatch):
    from cli_helpers import create_project

    from app.core.services.lifecycle import Keel
    from app.frontends import runner

    workspace = tmp_path / "ws"
    create_project(capsys, workspace, tmp_path)
    keel = Keel.open(workspace)
    try:
        def broken_handlers(stop_event):
            raise RuntimeError("cannot install signal handlers")

        monkeypatch.setattr(runner, "_install_signal_handlers", broken_handlers)
        with pytest.raises(RuntimeError) as failure:  # keeps the failed frame (and any lock it holds) alive
            runner.run(keel, stop_event=threading.Event(), echo=lambda line: None)
        runner.acquire_workspace_lock(keel).release()  # not "already in use" until the process exits
        assert "signal handlers" in str(failure.value)
    finally:
        keel.close()
