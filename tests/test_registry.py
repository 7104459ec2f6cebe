"""The SQLite registry: pragmas, one connection per thread, migrations, transactions, the audit log."""

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from store_helpers import sql_rows

from app.core.domain.entities import Column, Project, Schema
from app.core.domain.errors import KeelError, NotFoundError
from app.core.store import registry as registry_module
from app.core.store.registry import (
    LATEST_SCHEMA_VERSION,
    Registry,
    current_schema_version,
    migrate,
)

ROOT = Path(__file__).resolve().parents[1]


ONE_FEATURE = Schema("y", "classification", "integer", (Column("x", "numeric"),))  # a project's smallest schema


@pytest.fixture
def reg(tmp_path):
    registry = Registry(tmp_path / "registry.db")
    yield registry
    registry.close()


def add_project(registry: Registry, name: str = "p") -> Project:
    with registry.transaction():
        registry.insert_project(name, "classification", "y", "accuracy", ONE_FEATURE, {"preset": "logreg"})
    return registry.project(name)


def objects(conn: sqlite3.Connection, kind: str) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))}


# --------------------------------------------------------------------------- connections
def test_wal_foreign_keys_and_busy_timeout_on_every_connection(reg):
    def pragmas():
        conn = reg.conn
        return (conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA foreign_keys").fetchone()[0],
                conn.execute("PRAGMA busy_timeout").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0])

    seen = []
    worker = threading.Thread(target=lambda: seen.append(pragmas()))
    worker.start()
    worker.join()
    expected = ("wal", 1, registry_module.BUSY_TIMEOUT_MS, 1)  # synchronous 1 = NORMAL
    assert pragmas() == expected and seen == [expected]
    assert registry_module.BUSY_TIMEOUT_MS >= 5000


def test_foreign_keys_are_enforced(reg):
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with reg.transaction():
            reg.insert_run(9999, "train")


def test_one_connection_per_thread_and_two_threads_writing(reg):
    project = add_project(reg)
    with reg.transaction():
        run_id = reg.insert_run(project.id, "train")
    connections, errors = {}, []

    def write(name):
        try:
            connections[name] = reg.conn
            assert reg.conn is connections[name]  # the same connection on every use in one thread
            for step in range(150):
                reg.log_metric(run_id, name, float(step), step)
                with reg.transaction():
                    reg.add_event(project, "tick", f"{name} {step}")
        except BaseException as exc:  # surfaced below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert connections["a"] is not connections["b"] and reg.conn not in connections.values()
    assert [value for _, value, _ in reg.metric_history(run_id, "a")] == [float(s) for s in range(150)]
    assert len(reg.metric_history(run_id, "b")) == 150
    assert len(reg.events(project.id)) == 300


def test_a_connection_is_refused_in_another_thread(reg):
    conn = reg.conn
    errors = []
    worker = threading.Thread(target=lambda: errors.append(_try(lambda: conn.execute("SELECT 1"))))
    worker.start()
    worker.join()
    assert isinstance(errors[0], sqlite3.ProgrammingError)


def _try(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None


# --------------------------------------------------------------------------- migrations
def test_migration_from_v1_keeps_rows_and_adds_later_objects(tmp_path):
    path = tmp_path / "old.db"
    assert migrate(path, target_version=1) == 1
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO projects (id, name, task, target, metric, schema_json, settings_json, created_at) "
                     "VALUES (1, 'legacy', 'classification', 'y', 'accuracy', ?, '{}', '2026-01-01T00:00:00Z')",
                     (json.dumps(ONE_FEATURE.to_json()),))
        conn.execute("INSERT INTO runs (id, project_id, kind, started_at) VALUES (1, 1, 'train', '2026-01-01T00:00:00Z')")
        conn.executemany("INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (1, 'loss', ?, ?, 't')",
                         [(1.0 / (s + 1), s) for s in range(5)])
        conn.execute("INSERT INTO events (project_id, project_name, at, kind, by, message) "
                     "VALUES (1, 'legacy', '2026-01-01T00:00:00Z', 'project_created', 'user', 'made in v1')")
    assert "served_samples" not in objects(conn, "table")
    assert current_schema_version(conn) == 1
    conn.close()

    reg = Registry(path)
    try:
        assert current_schema_version(reg.conn) == LATEST_SCHEMA_VERSION >= 3
        versions = [row["version"] for row in sql_rows(reg, "SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, LATEST_SCHEMA_VERSION + 1))
        assert reg.project("legacy").task == "classification"
        assert [v for _, v, _ in reg.metric_history(1, "loss")] == [1.0 / (s + 1) for s in range(5)]
        assert [e.message for e in reg.events(1)] == ["made in v1"]
        assert {"predictions", "traffic_windows", "late_labels"} <= objects(reg.conn, "table")  # v4
        assert "served_samples" not in objects(reg.conn, "table")  # v2 made it, v4 replaced it
        assert {"events_project_at", "monitor_results_project"} <= objects(reg.conn, "index")  # v2
        assert {"events_append_only_owner", "events_append_only_delete"} <= objects(reg.conn, "trigger")  # v3
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            reg.conn.execute("DELETE FROM events")  # v3 guards the rows written under v1
    finally:
        reg.close()


def test_migrating_twice_is_a_no_op(tmp_path):
    path = tmp_path / "registry.db"
    Registry(path).close()
    assert migrate(path) == LATEST_SCHEMA_VERSION
    reg = Registry(path)
    try:
        assert sql_rows(reg, "SELECT COUNT(*) AS n FROM schema_version")[0]["n"] == LATEST_SCHEMA_VERSION
    finally:
        reg.close()


def test_a_step_another_process_applied_meanwhile_is_not_run_again(tmp_path):
    """Two processes opening a fresh workspace together both see v0; the second to get the
    write lock must re-read the version and skip the step (a second ALTER TABLE would fail)."""
    path = tmp_path / "registry.db"
    migrate(path, target_version=1)
    conn = registry_module._connect(path)
    try:
        registry_module._apply_step(conn, 1, "THIS IS NOT SQL;")  # already applied: not executed
        assert [row[0] for row in conn.execute("SELECT version FROM schema_version")] == [1]
        assert not conn.in_transaction
    finally:
        conn.close()


def test_a_registry_from_a_newer_keel_is_refused(tmp_path):
    path = tmp_path / "registry.db"
    Registry(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 'later')", (LATEST_SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(KeelError, match=f"schema v{LATEST_SCHEMA_VERSION + 1}, written by a newer Keel"):
        Registry(path)


def test_a_failing_migration_step_leaves_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "registry.db"
    migrate(path, target_version=1)
    broken = registry_module.MIGRATIONS[:1] + [(2, "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")]
    monkeypatch.setattr(registry_module, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        migrate(path, target_version=2)
    conn = sqlite3.connect(path)
    try:
        assert current_schema_version(conn) == 1 and "half_done" not in objects(conn, "table")
    finally:
        conn.close()


# --------------------------------------------------------------------------- transactions
def test_a_failed_transaction_leaves_nothing(reg):
    before = reg.table_counts()
    with pytest.raises(RuntimeError):
        with reg.transaction():
            project_id = reg.insert_project("p", "classification", "y", "accuracy", ONE_FEATURE, {})
            reg.add_event(reg.project("p"), "project_created", "made")
            run_id = reg.insert_run(project_id, "train")
            reg.log_metric(run_id, "accuracy", 0.9)  # inside a caller's transaction: no commit of its own
            reg.log_metrics(run_id, [("f1", 0.8, 0)])  # nested: a savepoint
            raise RuntimeError("boom")
    assert reg.table_counts() == before
    with pytest.raises(NotFoundError, match="unknown project 'p'"):
        reg.project("p")


def test_a_nested_failure_rolls_back_only_the_inner_block(reg):
    with reg.transaction():
        add_project(reg, "outer")
        with pytest.raises(ValueError):
            with reg.transaction():
                add_project(reg, "inner")
                raise ValueError("inner fails")
    assert [p.name for p in reg.projects()] == ["outer"]


def test_a_write_outside_a_transaction_commits_at_once_and_holds_no_lock(reg, tmp_path):
    """A lone write must not leave an implicit transaction open: it would hold the write
    lock and block every other writer (other threads, the GUI, the runner) until it timed out."""
    project = add_project(reg)
    reg.upsert_schedule(project.id, "interval", "600")
    assert not reg.conn.in_transaction
    other = Registry(tmp_path / "registry.db")
    try:
        other.conn.execute("PRAGMA busy_timeout = 100")
        assert other.schedule(project.id).expression == "600"
        with other.transaction():  # would raise "database is locked" if reg still held the lock
            other.upsert_schedule(project.id, "interval", "60")
    finally:
        other.close()
    assert reg.schedule(project.id).expression == "60"


def test_a_committed_write_is_seen_by_another_connection(reg, tmp_path):
    add_project(reg, "seen")
    other = Registry(tmp_path / "registry.db")
    try:
        assert other.project("seen").name == "seen"
    finally:
        other.close()


# --------------------------------------------------------------------------- audit log
@pytest.mark.parametrize("sql", [
    "UPDATE events SET message = 'rewritten'",
    "UPDATE events SET kind = 'other', at = 'x'",
    "UPDATE events SET project_name = 'someone else'",
    "UPDATE events SET project_id = NULL, project_name = NULL",
    "DELETE FROM events",
])
def test_events_are_append_only(reg, sql):
    project = add_project(reg)
    with reg.transaction():
        reg.add_event(project, "deployed", "v1 deployed")
    with pytest.raises(sqlite3.IntegrityError, match="append-only audit log"):
        with reg.transaction():
            reg.conn.execute(sql)
    [event] = reg.events(project.id)
    assert (event.kind, event.message, event.project_name) == ("deployed", "v1 deployed", "p")


def test_deleting_a_project_keeps_its_events(reg):
    project = add_project(reg)
    with reg.transaction():
        reg.add_event(project, "project_created", "made")
        reg.add_event(project, "project_deleted", "gone")
        reg.delete_project(project.id)
    rows = reg.events()
    assert [(e.project_id, e.project_name, e.kind) for e in rows] == [
        (None, "p", "project_created"), (None, "p", "project_deleted")]


# --------------------------------------------------------------------------- repository
def test_metrics_params_and_run_round_trip(reg):
    project = add_project(reg)
    with reg.transaction():
        run_id = reg.insert_run(project.id, "train", preset="logreg", seed=7, dataset_versions=[1, 2],
                                library_versions={"scikit-learn": "1.9"})
        reg.log_params(run_id, {"C": 0.5, "penalty": "l2", "class_weight": None})
    reg.log_metrics(run_id, [("loss", 0.5, 0), ("loss", 0.25, 1), ("accuracy", 0.9, 0)])
    reg.log_metric(run_id, "loss", 0.125, 2)
    assert [(s, v) for s, v, _ in reg.metric_history(run_id, "loss")] == [(0, 0.5), (1, 0.25), (2, 0.125)]
    assert reg.run_metrics(run_id) == {"loss": 0.125, "accuracy": 0.9}
    assert reg.run_params(run_id) == {"C": 0.5, "penalty": "l2", "class_weight": None}
    run = reg.run(run_id)
    assert (run.seed, run.dataset_versions, run.library_versions) == (7, (1, 2), {"scikit-learn": "1.9"})


def test_table_counts_cover_every_table(reg):
    counts = reg.table_counts()
    assert {"projects", "dataset_versions", "runs", "params", "metrics", "model_versions", "model_aliases",
            "deployments", "monitor_results", "alerts", "events", "schedules", "schema_version",
            "predictions", "traffic_windows", "late_labels", "late_measurements"} <= set(counts)
    assert counts["schema_version"] == LATEST_SCHEMA_VERSION


def test_the_benchmark_runs_and_writes_its_report(tmp_path, capsys):
    """A smoke run with tiny sizes (figures meaningless): the script must not rot. Not timed."""
    import json

    from bench_helpers import load_bench

    bench = load_bench("registry_bench")
    output = tmp_path / "bench.json"
    assert bench.main(["--points", "500", "--single", "50", "--repeats", "1", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert [r["points"] for r in report["results"]] == [50, 500, 500]
    assert {"keel_seconds", "raw_seconds", "keel_over_raw", "target", "met"} <= set(report["results"][0])
    assert "metric_history" in capsys.readouterr().out


def test_migration_moves_the_policy_state_out_of_the_audit_log(tmp_path):
    from app.core.domain.decisions import DetectorState
    from app.core.store.policy_state import PolicyState, read_policy_state, write_policy_state

    path = tmp_path / "old.db"
    assert migrate(path, target_version=3) == 3
    conn = sqlite3.connect(path)
    with conn:
        for project_id, name in ((1, "changed"), (2, "quiet")):
            conn.execute("INSERT INTO projects (id, name, task, target, metric, schema_json, settings_json, created_at) "
                         "VALUES (?, ?, 'classification', 'y', 'accuracy', ?, '{}', 't')",
                         (project_id, name, json.dumps(ONE_FEATURE.to_json())))
        events = [("change_detected", '{"dataset_version": 4, "rule": "metric_drop"}'),
                  ("retrain_decision", '{"champion_version": 1, "challenger_version": 2, "unseen_rows": 300}'),
                  ("change_detected", '{"dataset_version": 7, "rule": "drift_share"}'),
                  ("retrain_decision", '{"champion_version": 2, "challenger_version": 3, "unseen_rows": 450}')]
        conn.executemany("INSERT INTO events (project_id, project_name, at, kind, by, message, details_json) "
                         "VALUES (1, 'changed', 't', ?, 'policy', 'm', ?)", events)
    conn.close()

    reg = Registry(path)
    try:
        assert read_policy_state(reg, 1) == PolicyState(change_point=7, backoff_champion_version=2,
                                                        backoff_unseen_rows=450)
        assert read_policy_state(reg, 2) == PolicyState()
        with reg.transaction():
            write_policy_state(reg, 2, PolicyState(change_point=3, detector=DetectorState(champion_version=1)))
        assert read_policy_state(reg, 2).change_point == 3
        assert read_policy_state(reg, 2).detector == DetectorState(champion_version=1)
        reg.delete_project(2)
        assert read_policy_state(reg, 2) == PolicyState()  # the row goes with its project
    finally:
        reg.close()
