"""The store and the services hand out typed, immutable entities; dicts only at the edges."""

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest
from cli_helpers import cli, create_project
from store_helpers import sql_rows

from app.core.domain.alert_evidence import BatchEvidence
from app.core.domain.entities import (
    Alert,
    AlertNotice,
    Column,
    DatasetVersion,
    Deployment,
    Event,
    ModelVersion,
    MonitoredValue,
    MonitorResult,
    Project,
    Run,
    Schedule,
    Schema,
)
from app.core.domain.settings import ProjectSettings
from app.core.services.lifecycle import Keel
from app.core.store.registry import Registry

EARLIER_WORKSPACE = Path(__file__).parent / "fixtures" / "workspace_from_keel_0_1_0.zip"


@pytest.fixture(scope="module")
def earlier_registry(tmp_path_factory):
    """The registry of a real workspace (written by Keel 0.1.0: models v1-v2, v2 in production,
    deployments, alerts, monitoring results), migrated; read-only in these tests."""
    folder = tmp_path_factory.mktemp("earlier")
    with zipfile.ZipFile(EARLIER_WORKSPACE) as archive:
        archive.extractall(folder)
    registry = Registry(folder / "registry.db")
    yield registry
    registry.close()


def rows(registry: Registry, sql: str, *params) -> list[dict]:
    return sql_rows(registry, sql, params)


def test_the_audit_log_comes_back_as_immutable_events(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    keel = Keel.open(workspace)
    try:
        [created] = keel.events("loans")
        newest = keel.recent_events("loans", limit=5)
    finally:
        keel.close()
    assert isinstance(created, Event) and newest == [created]
    assert (created.kind, created.project_name, created.by) == ("project_created", "loans", "user")
    assert created.details["schema_features"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        created.kind = "edited"


def test_history_json_keeps_its_keys(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    code, history, _ = cli(capsys, workspace, "history", "loans")
    assert code == 0
    assert set(history) == {"project", "events"}
    assert set(history["events"][0]) == {"id", "at", "kind", "by", "message", "details"}


def test_model_versions_come_back_typed_with_the_keys_their_dicts_had(earlier_registry):
    project_id = earlier_registry.find_project("loans").id
    aliases = dict(earlier_registry.conn.execute("SELECT alias, model_version_id FROM model_aliases").fetchall())
    before = []  # the dicts the registry handed out before the entity, decoded from the same rows
    for row in rows(earlier_registry, "SELECT * FROM model_versions WHERE project_id = ? ORDER BY version",
                    project_id):
        row["extra_trusted_types"] = json.loads(row.pop("extra_trusted_types_json"))
        row["aliases"] = sorted(alias for alias, mv_id in aliases.items() if mv_id == row["id"])
        before.append(row)

    versions = earlier_registry.model_versions(project_id)
    assert all(isinstance(v, ModelVersion) for v in versions)
    assert [v.to_json() for v in versions] == before and [list(v.to_json()) for v in versions] == [
        list(row) for row in before]
    v2 = earlier_registry.model_version(project_id, 2)
    assert v2 == versions[1] == earlier_registry.model_version_by_id(v2.id)
    assert v2.aliases == ("champion",) and v2.archived is False and v2.run_id is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        v2.notes = "edited"


def test_alerts_come_back_typed_and_keep_the_keys_of_every_edge(earlier_registry):
    project_id = earlier_registry.find_project("loans").id
    before = rows(earlier_registry, "SELECT * FROM alerts WHERE project_id = ? ORDER BY id", project_id)
    alerts = earlier_registry.alerts(project_id)
    assert all(isinstance(a, Alert) for a in alerts) and [a.id for a in alerts] == [1, 2]
    for alert, row in zip(alerts, before):
        row["details"] = json.loads(row.pop("details_json"))
        assert alert.to_json() == row  # every column, details decoded
        # `status --json` lists open alerts with exactly these keys (docs/cli.md)
        assert list(alert.headline()) == ["id", "rule", "severity", "opened_at", "message"]
    assert earlier_registry.open_alerts(project_id) == [a for a in alerts if a.is_open] == alerts
    assert earlier_registry.alert(project_id, 2) == alerts[1] and earlier_registry.alert(project_id, 99) is None
    assert alerts[0].details == BatchEvidence(dataset_version=3, value=0.6, estimated_value=0.8477832802990566,
                                              drifted_features=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        alerts[0].status = "acknowledged"


def test_deployments_come_back_typed_with_the_keys_their_dicts_had(earlier_registry):
    project_id = earlier_registry.find_project("loans").id
    before = rows(earlier_registry, "SELECT d.*, m.version AS version FROM deployments d JOIN model_versions m "
                                    "ON m.id = d.model_version_id WHERE d.project_id = ? ORDER BY d.id", project_id)
    deployments = earlier_registry.deployments(project_id)
    assert all(isinstance(d, Deployment) for d in deployments) and [d.version for d in deployments] == [1, 2]
    assert [d.to_json() for d in deployments] == before
    assert [list(d.to_json()) for d in deployments] == [list(row) for row in before]
    current = earlier_registry.current_deployment(project_id)
    assert current == deployments[-1] and current.replaced_deployment_id == deployments[0].id
    assert earlier_registry.deployment(deployments[0].id) == deployments[0] and current.is_rollback is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        current.reason = "edited"


def test_dataset_versions_come_back_typed_with_the_keys_their_dicts_had(earlier_registry):
    project_id = earlier_registry.find_project("loans").id
    before = rows(earlier_registry, "SELECT * FROM dataset_versions WHERE project_id = ? ORDER BY version", project_id)
    for row in before:
        row["report"] = json.loads(row.pop("report_json"))
    versions = earlier_registry.dataset_versions(project_id)
    assert all(isinstance(v, DatasetVersion) for v in versions) and [v.rows for v in versions] == [80, 60, 60]
    assert [v.to_json() for v in versions] == before
    assert [list(v.to_json()) for v in versions] == [list(row) for row in before]
    assert earlier_registry.dataset_version(project_id, 2) == versions[1] and versions[1].parent_id == versions[0].id
    assert earlier_registry.dataset_version_by_hash(project_id, versions[2].content_sha256) == versions[2]
    assert all(v.labelled for v in versions) and versions[0].report["rows"] == 80
    with pytest.raises(dataclasses.FrozenInstanceError):
        versions[0].rows = 0


def test_monitor_results_come_back_typed_with_the_keys_their_dicts_had(earlier_registry):
    project_id = earlier_registry.find_project("loans").id
    before = rows(earlier_registry, "SELECT r.*, m.version AS model_version, d.version AS dataset_version "
                                    "FROM monitor_results r JOIN model_versions m ON m.id = r.model_version_id "
                                    "LEFT JOIN dataset_versions d ON d.id = r.dataset_version_id "
                                    "WHERE r.project_id = ? ORDER BY r.id", project_id)
    for row in before:
        row["drifted_features"] = json.loads(row.pop("drifted_features_json"))
        row["details"] = json.loads(row.pop("details_json"))
    results = earlier_registry.monitor_results(project_id)
    assert all(isinstance(r, MonitorResult) for r in results) and len(results) == len(before) >= 1
    assert [r.to_json() for r in results] == before
    assert [list(r.to_json()) for r in results] == [list(row) for row in before]
    [last] = results[-1:]
    assert earlier_registry.last_monitor_result(project_id) == last
    assert (last.model_version, last.dataset_version) == (2, 3) and last.details.rules
    assert earlier_registry.monitor_result_of_dataset(last.dataset_version_id) == last
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.value = 1.0


def test_projects_come_back_typed_with_the_keys_their_dicts_had(earlier_registry):
    [before] = rows(earlier_registry, "SELECT * FROM projects")
    before["schema"] = json.loads(before.pop("schema_json"))
    stored_settings = json.loads(before.pop("settings_json"))
    before["settings"] = {**ProjectSettings().to_json(), **stored_settings}  # the defaults fill what 0.1.0 did not store
    project = earlier_registry.project("loans")
    assert isinstance(project, Project) and earlier_registry.projects() == [project]
    assert project.to_json() == before and list(project.to_json()) == list(before)
    assert (project.task, project.target, project.metric) == ("classification", "default", "accuracy")
    assert isinstance(project.settings, ProjectSettings) and project.settings == ProjectSettings.from_json(stored_settings)
    assert (project.settings.threshold, project.settings.preset, project.settings.id_column) == (0.9, "logreg", None)
    assert earlier_registry.find_project("nope") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.metric = "f1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.settings.threshold = 0.5


def test_the_schema_comes_back_typed_and_is_stored_as_before(earlier_registry):
    [stored] = rows(earlier_registry, "SELECT schema_json FROM projects")
    schema = earlier_registry.project("loans").schema
    assert isinstance(schema, Schema) and all(isinstance(column, Column) for column in schema.columns)
    assert json.dumps(schema.to_json()) == stored["schema_json"]  # byte for byte: keys, their order, the values
    assert Schema.from_json(json.loads(stored["schema_json"])) == schema
    assert (schema.target, schema.task, schema.target_kind, schema.classes) == ("default", "classification",
                                                                               "integer", (0, 1))
    assert schema.features == ["income", "age", "debt_ratio", "tenure_months", "region", "has_mortgage"]
    assert schema.column_kinds()["region"] == "categorical"
    region = schema.columns[4]
    assert (region.n_unique, region.categories, region.minimum) == (4, ("west", "south", "north", "east"), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.target = "income"


def test_a_new_project_stores_its_schema_as_project_create_shows_it(capsys, workspace, tmp_path):
    created = create_project(capsys, workspace, tmp_path)
    registry = Registry(workspace / "registry.db")
    try:
        [stored] = rows(registry, "SELECT schema_json FROM projects")
    finally:
        registry.close()
    assert json.loads(stored["schema_json"]) == created["schema"]
    assert list(created["schema"]) == ["target", "task", "target_kind", "features", "columns", "classes"]
    assert created["schema"]["features"] == [column["name"] for column in created["schema"]["columns"]]


def test_a_schema_whose_features_disagree_with_its_columns_is_refused():
    stored = {"target": "y", "task": "regression", "target_kind": "float", "features": ["a", "b"],
              "columns": [{"name": "b", "kind": "numeric"}, {"name": "a", "kind": "numeric"}]}
    with pytest.raises(ValueError, match="do not match its columns"):
        Schema.from_json(stored)


def test_runs_schedules_and_alert_notices_come_back_typed(earlier_registry):
    project = earlier_registry.find_project("loans")
    [schedule] = earlier_registry.schedules()
    assert schedule == earlier_registry.schedule(project.id) == Schedule(
        project_id=project.id, project="loans", kind="interval", expression="600", enabled=True, last_run_at=None)
    runs = earlier_registry.runs(project.id)  # newest first, with their final metrics
    assert all(isinstance(run, Run) for run in runs) and [run.dataset_versions for run in runs] == [(1, 2), (1,)]
    assert runs[0] == dataclasses.replace(earlier_registry.run(runs[0].id), metrics=runs[0].metrics)
    assert runs[0].metrics == earlier_registry.run_metrics(runs[0].id) and runs[0].preset == "logreg"
    assert earlier_registry.open_alerts_after(1) == [AlertNotice(2, "loans", *[
        (alert.severity, alert.message) for alert in earlier_registry.alerts(project.id) if alert.id == 2][0])]
    [last] = earlier_registry.monitor_results(project.id)
    assert earlier_registry.recent_monitor_values(project.id, 5) == [MonitoredValue(last.value, last.estimated_value)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.enabled = False


def test_every_value_that_becomes_json_names_the_conversion_the_same_way():
    """One name for "this value as a JSON document" across entities, settings and results: to_json
    (and from_json back), so a reader never wonders whether to_dict means something else."""
    import inspect

    from app.core.domain import entities, results, settings
    from app.core.ml import change
    from app.core.services import verify

    classes = [member for module in (entities, results, settings, change, verify)
               for _, member in inspect.getmembers(module, inspect.isclass) if member.__module__ == module.__name__]
    assert not [cls.__qualname__ for cls in classes if hasattr(cls, "to_dict") or hasattr(cls, "from_dict")]
    assert sum(hasattr(cls, "to_json") for cls in classes) >= 25


def test_the_event_that_made_a_version_is_read_from_the_audit_log(earlier_registry):
    """Trained or imported: the event that made version N (a version card, the report and the MLflow run
    record all name it), found by the store; none for a version that does not exist."""
    project = earlier_registry.projects()[0]
    versions = [model_version.version for model_version in earlier_registry.model_versions(project.id)]
    for version in versions:
        made = earlier_registry.version_created_event(project.id, version)
        assert made is not None and made.kind in ("model_trained", "model_imported") and made.details["version"] == version
    assert earlier_registry.version_created_event(project.id, max(versions) + 1) is None
