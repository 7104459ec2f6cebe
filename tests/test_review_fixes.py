"""Regression tests for defects found in the review of the non-GUI code (each failed before its fix)."""

import sqlite3
import threading
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest

from app.core.domain.errors import BusyError
from app.core.store.registry import Registry


# --------------------------------------------------------------------------- registry
def test_failed_commit_does_not_leave_the_transaction_open(tmp_path):
    """A COMMIT that fails (here: a deferred foreign key) must roll back; before the fix the
    connection stayed inside the transaction, so every later write of that thread nested in
    it, never committed, and held the write lock against every other connection."""
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
def _loans_csv(path, rows=120, seed=11):
    from app.demo.simulator import make_batch

    make_batch(rows, seed=seed).to_csv(path, index=False)
    return path


def test_create_project_racing_another_creator_leaves_its_data_alone(tmp_path, monkeypatch):
    """Two `project create NAME` at once: the loser used to pass the existence check, wait for
    the project lock, overwrite the winner's datasets/NAME/v1.parquet, fail on the UNIQUE
    constraint (an internal error, exit 1) and then delete the winner's v1.parquet."""
    from app.core.domain.errors import KeelError
    from app.core.services import lifecycle

    data = _loans_csv(tmp_path / "loans.csv")
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
        stored = winner.workspace.dataset_dir("p") / "v1.parquet"
        with pytest.raises(KeelError, match="already exists"):
            loser.create_project("p", data, "default", "classification", {"preset": "logreg"})
        assert stored.is_file(), "the winner's dataset file was deleted"
        assert len(pd.read_parquet(stored)) == winner.registry.dataset_versions(winner.project("p")["id"])[0]["rows"]
    finally:
        winner.close()
        loser.close()


def test_predict_and_export_to_an_unwritable_output_are_user_errors(tmp_path, capsys):
    """--output naming a folder, or a path in a folder that cannot be created, is the user's to
    fix: exit 2 and a message naming the path. Before: exit 1, "internal error: IsADirectoryError"."""
    from app.frontends.cli import main

    workspace, data = tmp_path / "ws", _loans_csv(tmp_path / "loans.csv")
    base = ["--workspace", str(workspace)]
    assert main(base + ["project", "create", "p", "--data", str(data), "--target", "default", "--model", "logreg"]) == 0
    assert main(base + ["train", "p"]) == 0
    assert main(base + ["deploy", "p", "--version", "1"]) == 0
    capsys.readouterr()
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(base + ["predict", "p", "--input", str(data), "--output", str(folder)]) == 2
    assert str(folder) in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert main(base + ["predict", "p", "--input", str(data), "--output", str(blocked / "scores.csv")]) == 2
    assert "scores.csv" in capsys.readouterr().err
    assert main(base + ["export", "p", "--version", "1", "--output", str(blocked / "m.skops")]) == 2
    assert "m.skops" in capsys.readouterr().err


# --------------------------------------------------------------------------- policy gate
@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_gate_when_the_challenger_learned_a_new_class(metric):
    """A labelled batch brings a class the champion never saw; the challenger learns it. The
    bootstrap read the champion's probability columns with the challenger's classes_: an
    IndexError that failed the monitoring cycle after the challenger was registered, so every
    cycle retrained again."""
    from sklearn.linear_model import LogisticRegression

    from app.core.services import policy

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    features = pd.DataFrame({"x": x})
    champion = LogisticRegression().fit(features, (x > 0).astype(int))
    three_classes = np.digitize(x, [-0.5, 0.5])
    challenger = LogisticRegression().fit(features, three_classes)
    schema = {"target": "y", "task": "classification", "target_kind": "integer", "features": ["x"],
              "columns": [{"name": "x", "kind": "numeric"}]}
    project = {"schema": schema, "task": "classification", "metric": metric}
    gate_frame = pd.DataFrame({"x": x[:120], "y": pd.array(three_classes[:120], dtype="Int64")})
    verdict = policy.gate(project, champion, challenger, gate_frame, 0.01, 0.05)
    assert verdict["test"] == "paired_bootstrap"
    assert verdict["accepted"] and verdict["better_by_margin"]


# --------------------------------------------------------------------------- monitoring
def test_drift_reference_cache_is_per_project_not_per_file_hash(monkeypatch, tmp_path):
    """The same skops file imported into two projects has one sha256; the cache keyed by the
    hash alone gave the second project the first project's drift reference."""
    from types import SimpleNamespace

    from app.core.services import monitoring
    from app.core.services.cache import BoundedCache

    monkeypatch.setattr(monitoring, "prepare_reference", lambda keel, loaded: ("reference of", loaded.project["name"]))
    keel = SimpleNamespace(drift_references=BoundedCache(8))
    same_file = "ab" * 32
    first = SimpleNamespace(project={"name": "a"}, model_version=SimpleNamespace(id=1, version=1, sha256=same_file))
    second = SimpleNamespace(project={"name": "b"}, model_version=SimpleNamespace(id=2, version=1, sha256=same_file))
    assert monitoring.reference_for(keel, first) == ("reference of", "a")
    assert monitoring.reference_for(keel, second) == ("reference of", "b")
    assert monitoring.reference_for(keel, first) == ("reference of", "a")


def test_archive_waits_for_the_project_lock(tmp_path):
    """archive checks "not the production model" then writes: without the project lock a deploy
    of that version in another process could land in between (an archived production model)."""
    from app.core.services.lifecycle import Keel
    from app.core.store.workspace import FileLock

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        keel.train("p")
        keel.train("p")
        keel.deploy("p", 1)
        other_process = FileLock(keel.workspace.project_lock_path("p"))  # a deploy elsewhere holds it
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
        assert keel.registry.model_version(keel.project("p")["id"], 2).archived is True
    finally:
        keel.close()


def test_train_after_an_interrupted_train_left_an_unregistered_model_file(tmp_path):
    """A train killed between writing vN.skops and committing its row (a GUI cancel terminates the
    child process) left a file no row names; every later train refused with "already exists ...
    (run verify)" (no verify command exists), so the project could never be trained again."""
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        orphan = keel.workspace.artifact_dir("p") / "v1.skops"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"half-written by a killed process")
        assert keel.train("p")["version"] == 1
        kept = [p for p in orphan.parent.iterdir() if p.name.startswith("v1.skops.orphan-")]
        assert len(kept) == 1 and kept[0].read_bytes() == b"half-written by a killed process"  # never deleted
        keel.load_version("p", 1)  # the registered file is the new model, hash-checked
    finally:
        keel.close()


def test_monitoring_a_labelled_batch_made_only_of_a_class_the_model_never_saw(tmp_path):
    """A small labelled batch whose every label is new (ingest accepts it with a warning): the
    confusion matrix call raised in sklearn, the cycle failed before recording a result, and so
    every later cycle failed on the same pending batch: monitoring of the project was stuck."""
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import make_batch

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        keel.deploy("p", keel.train("p")["version"])
        new_class = make_batch(40, seed=99).assign(default=2)
        new_class.to_csv(tmp_path / "new.csv", index=False)
        ingested = keel.ingest("p", tmp_path / "new.csv")
        assert any("unseen in training" in w for w in ingested["warnings"])
        result = keel.monitor("p")
        [batch] = result["batches"]
        assert batch["dataset_version"] == ingested["dataset_version"] and batch["value"] == 0.0
        assert keel.monitor("p")["batches"] == []  # evaluated once, not stuck
    finally:
        keel.close()


# --------------------------------------------------------------------------- inbox
@pytest.mark.parametrize("failure", [sqlite3.OperationalError("database is locked"),
                                     BusyError("the registry is busy in another process"),
                                     OSError(28, "No space left on device")])
def test_inbox_keeps_a_good_file_when_the_workspace_fails(tmp_path, monkeypatch, failure):
    """A locked registry or a full disk while ingesting moved a valid file to rejected/ as an
    "internal error while reading it", with an alert: the file was not the problem."""

    from app.core.services import inbox
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        dropped = keel.workspace.inbox_dir("p") / "batch.csv"
        _loans_csv(dropped, rows=50, seed=5)
        inbox.record_sightings(keel, "p", now=time.time() - 120)  # seen unchanged by an earlier sweep

        def failing_ingest(*args, **kwargs):
            raise failure

        monkeypatch.setattr(keel, "ingest", failing_ingest)
        assert inbox.sweep(keel, "p") == []
        assert dropped.is_file() and not list((dropped.parent / "rejected").iterdir())
        assert keel.registry.open_alerts(keel.project("p")["id"]) == []
        monkeypatch.undo()
        [entry] = inbox.sweep(keel, "p")  # the next sweep takes it
        assert entry["status"] == "processed"
    finally:
        keel.close()


def test_acknowledging_a_closed_alert_writes_no_acknowledged_event(tmp_path):
    """An alert that recovered (or was acknowledged) already: the audit log got an
    "alert N acknowledged" event although nothing was acknowledged."""
    from app.core.domain.errors import KeelError
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        project = keel.project("p")
        with keel.registry.transaction():
            alert_id = keel.registry.insert_alert(project_id=project["id"], rule="drift_share", severity="warning",
                                                  message="probe")
        keel.acknowledge_alert("p", alert_id)
        with keel.registry.transaction():
            recovered = keel.registry.insert_alert(project_id=project["id"], rule="metric_drop", severity="warning",
                                                   message="probe")
            keel.registry.close_alert(recovered, "recovered")
        for closed in (alert_id, recovered):
            with pytest.raises(KeelError, match="already"):
                keel.acknowledge_alert("p", closed)
        acknowledged = [e for e in keel.registry.events(project["id"]) if e.kind == "alert_acknowledged"]
        assert [e.message.split()[1] for e in acknowledged] == [str(alert_id)]
    finally:
        keel.close()


def test_a_deploy_ends_the_wait_of_a_challenger_gated_against_another_model(tmp_path):
    """Policy approve: challenger v2 waits (gated against v1). The user deploys v3 by hand.
    `approve` then deployed v2 over v3 although v2 was never compared with v3, and while v2
    "waited" the policy never retrained again."""
    from app.core.domain.errors import KeelError
    from app.core.services.lifecycle import Keel
    from app.core.services.policy import waiting_challenger

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification",
                            {"preset": "logreg", "policy": "approve"})
        for _ in range(3):
            keel.train("p")
        keel.deploy("p", 1)
        project = keel.project("p")
        with keel.registry.transaction():  # what policy.decide records for "retrained_waiting"
            keel.registry.set_alias(project["id"], "challenger", keel.registry.model_version(project["id"], 2).id)
        assert waiting_challenger(keel, "p") == 2
        keel.deploy("p", 3)
        assert waiting_challenger(keel, "p") is None
        with pytest.raises(KeelError, match="no challenger"):
            keel.approve("p")
        assert keel.production_version("p") == 3
    finally:
        keel.close()


def test_train_refused_by_the_adaptive_window_says_why(tmp_path):
    """After a change detected on an unlabelled batch, the adaptive window holds no labelled rows
    yet: `train` said "project has no labelled data to train on" of a project full of labelled
    data, with no word of the window or of what to do."""
    from app.core.domain.errors import ValidationError
    from app.core.services.lifecycle import Keel
    from app.core.store import policy_state
    from app.demo.simulator import make_batch

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", _loans_csv(tmp_path / "loans.csv"), "default", "classification",
                            {"preset": "logreg", "window": "adaptive"})
        make_batch(50, seed=3).drop(columns=["default"]).to_csv(tmp_path / "unlabelled.csv", index=False)
        version = keel.ingest("p", tmp_path / "unlabelled.csv")["dataset_version"]
        with keel.registry.transaction():  # what the policy records for an alert on that batch
            policy_state.write_policy_state(keel.registry, keel.project("p")["id"],
                                            policy_state.PolicyState(change_point=version))
        with pytest.raises(ValidationError, match=rf"dataset v{version}.*adaptive.*--window all"):
            keel.train("p")
    finally:
        keel.close()


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("flag", ["--threshold", "--max-drop", "--margin"])
def test_nan_settings_are_refused(tmp_path, capsys, flag):
    """`project set p --max-drop nan` was accepted: NaN passes the range checks, then every
    comparison with it is false, so the rule never fires (or no challenger ever wins)."""
    from app.frontends.cli import main

    workspace, data = tmp_path / "ws", _loans_csv(tmp_path / "loans.csv")
    base = ["--workspace", str(workspace)]
    assert main(base + ["project", "create", "p", "--data", str(data), "--target", "default", "--model", "logreg"]) == 0
    capsys.readouterr()
    assert main(base + ["project", "set", "p", flag, "nan"]) == 2
    assert flag in capsys.readouterr().err


# --------------------------------------------------------------------------- lead's review
def test_a_registry_locked_by_another_process_is_a_user_error_that_writes_nothing(tmp_path, capsys, monkeypatch):
    """Past the busy timeout, SQLite says "database is locked": exit 2 with a plain message,
    not exit 1 "internal error"."""
    from foundation_helpers import cli, create_project

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
    from foundation_helpers import create_project

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
        runner.acquire_workspace_lock(keel).release()  # before the fix: "already in use" until the process exits
        assert "signal handlers" in str(failure.value)
    finally:
        keel.close()
