"""What a monitoring cycle and the read-only reports ask the registry must not grow with history.

Every SELECT they run is planned by SQLite; a plan that SCANs a table that grows with the
project's history (batches, results, events, metrics…) makes the work grow with it: the
pending-batch lookup without an index went from 0.24 s at 1k batches to 5.2 s at 4k.
"""

import dataclasses
import json
import sqlite3
from unittest import mock

import pytest
from loop_helpers import batch, drop, make_project
from store_helpers import policy_service, traffic_service, workspace_of

from app.core.services.lifecycle import Keel
from app.core.store import registry as registry_module

GROWING_TABLES = ("dataset_versions", "monitor_results", "events", "metrics", "alerts", "served_samples",
                  "deployments", "runs", "model_versions", "params", "model_aliases")


@pytest.fixture
def keel(workspace):
    keel = make_project(workspace)
    for index in range(3):
        drop(keel, "loan", batch(index), f"b{index}.csv")
    keel.policy.monitor("loan")
    yield keel
    keel.close()


def _selects_run_by(registry, work) -> list[str]:
    """The SELECTs `work` runs on the registry's connection."""
    statements: list[str] = []
    registry.conn.set_trace_callback(statements.append)
    try:
        work()
    finally:
        registry.conn.set_trace_callback(None)
    return _selects(statements)


def _selects_of_a_new_keel(keel, work) -> list[str]:
    """The SELECTs a new Keel on keel's workspace (another process's, as `keel monitor` opens one)
    runs for work(that keel): every connection it opens is traced."""
    statements: list[str] = []
    connect = registry_module._connect

    def traced(path):
        conn = connect(path)
        conn.set_trace_callback(statements.append)
        return conn

    with mock.patch.object(registry_module, "_connect", traced):
        fresh = Keel.open(keel.root)
        try:
            statements.clear()  # opening reads the manifests' state: not the work's
            work(fresh)
        finally:
            fresh.close()
    return _selects(statements)


def _selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def _history_scans(registry_path, statements: list[str]) -> list[str]:
    planner = sqlite3.connect(f"file:{registry_path}?mode=ro", uri=True)  # sees the schema as it is on disk
    try:
        scans = []
        for sql in statements:
            for row in planner.execute("EXPLAIN QUERY PLAN " + sql):
                detail = row[3]
                if detail.startswith("SCAN "):
                    scanned = detail.split()[1]
                    if scanned in GROWING_TABLES or _is_alias_of_growing_table(sql, scanned):
                        scans.append(f"{detail}  <-  {sql[:160]}")
        return scans
    finally:
        planner.close()


def _is_alias_of_growing_table(sql: str, alias: str) -> bool:
    """`FROM monitor_results r`: the plan names the alias, r."""
    words = sql.replace(",", " ").split()
    return any(after == alias and before in GROWING_TABLES for before, after in zip(words, words[1:], strict=False))


def test_the_monitoring_cycle_finds_pending_batches_without_scanning_history(keel):
    drop(keel, "loan", batch(9), "b9.csv")
    selects = _selects_of_a_new_keel(keel, lambda fresh: fresh.policy.monitor("loan"))
    assert any("monitor_results" in s and "NOT EXISTS" in s for s in selects), "the pending-batch lookup ran"
    assert _history_scans(workspace_of(keel).registry_path, selects) == []


def test_status_history_and_project_list_read_history_through_indexes(keel):
    selects = _selects_of_a_new_keel(keel, lambda fresh: (
        fresh.status("loan"), fresh.status("loan", limit=2), fresh.history("loan"), fresh.history("loan", limit=3),
        fresh.list_projects()))
    assert selects
    assert _history_scans(workspace_of(keel).registry_path, selects) == []


def _steps_to_read_metrics(registry, run_id: int) -> int:
    steps = 0

    def count():
        nonlocal steps
        steps += 1

    registry.conn.set_progress_handler(count, 100)  # one call per 100 SQLite VM instructions
    try:
        registry.run_metrics(run_id)
    finally:
        registry.conn.set_progress_handler(None, 0)
    return steps


def test_a_runs_latest_metrics_cost_the_same_with_a_long_history(tmp_path):
    """`status` reads every version's final metrics: a run with 20,000 logged points of a loss
    curve must not cost more to summarise than one with 20 (it read every point before)."""
    from app.core.domain.entities import Column, Schema
    from app.core.store.registry import Registry

    registry = Registry(tmp_path / "registry.db")
    one_feature = Schema("y", "classification", "integer", (Column("x", "numeric"),))
    project = registry.insert_project("p", "classification", "y", "accuracy", one_feature, {})
    short, long = registry.insert_run(project, "train"), registry.insert_run(project, "train")
    for run, points in ((short, 20), (long, 20_000)):
        registry.log_metrics(run, [("loss", 1.0 / (step + 1), step) for step in range(points)])
        registry.log_metrics(run, [("accuracy", 0.5, 0), ("accuracy", 0.75, 1), ("accuracy", 0.9, 1)])
    assert registry.run_metrics(long) == {"accuracy": 0.9, "loss": 1.0 / 20_000}
    assert registry.run_metrics(short) == {"accuracy": 0.9, "loss": 1.0 / 20}
    assert _steps_to_read_metrics(registry, long) <= 2 * _steps_to_read_metrics(registry, short) + 5
    registry.close()


def test_history_limit_gives_the_newest_events_oldest_first(keel, capsys):
    from app.frontends.cli import main

    everything = keel.history("loan").events
    assert len(everything) > 3
    assert keel.history("loan", limit=3).events == everything[-3:]
    assert main(["--workspace", str(keel.root), "history", "loan", "--limit", "2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["events"]
    assert [e["id"] for e in shown] == [e.id for e in everything[-2:]]
    assert main(["--workspace", str(keel.root), "history", "loan", "--limit", "-1"]) == 2
    assert "whole number" in capsys.readouterr().err


def test_status_limit_lists_the_newest_versions_oldest_first_and_counts_them_all(keel, capsys):
    from app.frontends.cli import main

    keel.train("loan")
    everything = keel.status("loan")
    assert everything.versions_total == len(everything.versions) == 2
    assert everything.dataset_versions_total == len(everything.dataset_versions) == 4
    limited = keel.status("loan", limit=1)
    assert limited.versions == everything.versions[-1:]
    assert limited.dataset_versions == everything.dataset_versions[-1:]
    assert (limited.versions_total, limited.dataset_versions_total) == (2, 4)
    assert main(["--workspace", str(keel.root), "status", "loan", "--limit", "2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["version"] for d in shown["dataset_versions"]] == [3, 4] and set(shown) >= set(everything.to_json())


def _steps(registry, work) -> int:
    """SQLite VM instructions (in hundreds) that `work` runs on the registry."""
    steps = 0

    def count():
        nonlocal steps
        steps += 1

    registry.conn.set_progress_handler(count, 100)
    try:
        work()
    finally:
        registry.conn.set_progress_handler(None, 0)
    return steps


def _grow_versions_and_results(registry, project_id: int, model_version_id: int, dataset_version_id: int,
                               count: int, first_version: int) -> None:
    """`count` archived model versions and labelled monitoring results without IDs: history the
    policy's earlier-version lookup and the late-label check must not read."""
    with registry.transaction():
        for index in range(count):
            registry.insert_model_version(project_id=project_id, version=first_version + index, artifact_path="m",
                                          sha256="0", archived=1)
            registry.insert_monitor_result(project_id=project_id, model_version_id=model_version_id,
                                           dataset_version_id=dataset_version_id, rows=300, labelled_rows=300,
                                           metric="accuracy", value=0.9)


def test_the_policys_earlier_versions_and_the_late_label_check_cost_the_same_with_a_long_history(keel, store):
    """Both ran once per cycle over the whole history (every model version decoded; every
    monitoring result's details decoded): now each is one indexed read whose cost does not
    grow with archived versions or with labelled results."""
    registry = store(keel)  # the test's own connection: its statements are the ones counted
    policy, traffic = policy_service(keel, registry), traffic_service(keel, registry)
    project = registry.project("loan")
    first = registry.model_versions(project.id)[0]
    dataset = registry.dataset_versions(project.id)[0]
    settings = dataclasses.replace(project.settings, id_column="customer_id", label_delay="0s")

    def work():
        policy.earlier_production_versions(project, 1)
        traffic.late_labels_message(project, settings)

    _grow_versions_and_results(registry, project.id, first.id, dataset.id, 20, 100)
    short = _steps(registry, work)
    _grow_versions_and_results(registry, project.id, first.id, dataset.id, 2_000, 200)
    long = _steps(registry, work)
    assert long <= short + 5, (short, long)
    assert _history_scans(registry.path, _selects_run_by(registry, work)) == []


def test_earlier_production_versions_are_the_latest_deployed_distinct_unarchived_ones(keel, store):
    registry = store(keel)
    project = registry.project("loan")
    first = registry.model_versions(project.id)[0]
    ids = {1: first.id}
    with registry.transaction():
        for version in range(2, 10):
            ids[version] = registry.insert_model_version(project_id=project.id, version=version, artifact_path="m",
                                                         sha256="0", archived=int(version == 4))
        for version in (2, 3, 2, 4, 5, 6, 7, 8, 5, 9):
            registry.insert_deployment(project_id=project.id, model_version_id=ids[version], by="user", reason="t")
    assert keel.policy.earlier_production_versions(project, 9) == [5, 8, 7, 6, 2]  # 4 archived; at most 5
    assert registry.recently_deployed_versions(project.id, None, 3) == [9, 5, 8]
