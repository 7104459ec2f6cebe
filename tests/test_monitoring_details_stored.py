"""What one monitoring cycle stores and prints, byte for byte: the details_json of each batch
(per-feature drift, per-class metrics, the confusion matrix, prediction drift, the rules'
messages) and of the traffic window, and `monitor --once --json`'s batches. A workspace written
today is read by the next release: these bytes are its contract with the registry.

tests/fixtures/monitoring_cycle.json holds what this small, seeded lifecycle stored and printed
before the details were typed (app/core/domain/measurements.py)."""

import contextlib
import dataclasses
import io
import json
import pickle
import re
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import loans, write_csv

from app.core.domain.measurements import (
    BatchDetails,
    CategoricalDrift,
    ChiSquare,
    NumericDrift,
    WindowDetails,
)
from app.core.ml import drift
from app.core.store.registry import Registry
from app.frontends.cli import main

PINNED = Path(__file__).parent / "fixtures" / "monitoring_cycle.json"
EARLIER_WORKSPACE = Path(__file__).parent / "fixtures" / "workspace_from_keel_0_1_0.zip"
TIME_OF_DAY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # a traffic rule's message names its window's times


def timeless(stored: str) -> str:
    return TIME_OF_DAY.sub("<time>", stored)


def stored_rows(workspace: Path, sql: str) -> list[tuple]:
    """Rows of the workspace's registry, read with plain SQL."""
    connection = sqlite3.connect(workspace / "registry.db")
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def monitoring_cycle(workspace: Path, files: Path) -> dict:
    """A seeded lifecycle: v1 deployed, a labelled batch, a shifted unlabelled one and 40 scored rows
    logged, then one monitoring cycle. -> what it stored (details_json of each batch and of the traffic
    window) and the batches `monitor --once --json` printed."""
    def run(*args: str) -> dict:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["--workspace", str(workspace), *args, "--json"])
        assert code == 0, printed.getvalue()
        return json.loads(printed.getvalue())

    run("project", "create", "loans", "--data", str(write_csv(files / "initial.csv", loans(200, seed=1))),
        "--target", "default", "--model", "logreg", "--threshold", "0.999")
    run("project", "set", "loans", "--prediction-log", "full")
    run("train", "loans")
    run("deploy", "loans", "--version", "1")
    run("ingest", "loans", str(write_csv(files / "labelled.csv", loans(80, seed=3))))
    shifted = loans(60, seed=5, shift=1.0).drop(columns="default")
    run("ingest", "loans", str(write_csv(files / "unlabelled.csv", shifted)))
    scored = loans(40, seed=7, shift=0.5).drop(columns="default")
    run("predict", "loans", "--input", str(write_csv(files / "to_score.csv", scored)),
        "--output", str(files / "scored.csv"))
    monitored = run("monitor", "loans", "--once")
    batches = [stored for stored, in stored_rows(workspace, "SELECT details_json FROM monitor_results ORDER BY id")]
    windows = [timeless(stored) for stored, in stored_rows(workspace, "SELECT details_json FROM traffic_windows ORDER BY id")]
    alerts = [f"{rule}: {stored}" for rule, stored in stored_rows(workspace, "SELECT rule, details_json FROM alerts ORDER BY id")]
    opened = [stored for stored, in stored_rows(
        workspace, "SELECT details_json FROM events WHERE kind = 'alert_opened' ORDER BY id")]
    return {"batch_details_json": batches, "traffic_window_details_json": windows,
            "monitor_batches": monitored["batches"], "alert_details_json": alerts, "alert_opened_details_json": opened}


@pytest.fixture(scope="module")
def monitored_workspace(tmp_path_factory) -> tuple[Path, dict]:
    """The workspace after monitoring_cycle, and what it stored and printed (read-only in these tests)."""
    folder = tmp_path_factory.mktemp("monitored")
    workspace = folder / "workspace"
    workspace.mkdir()
    return workspace, monitoring_cycle(workspace, folder)


def test_a_monitoring_cycle_stores_and_prints_what_it_always_has(monitored_workspace):
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    _, cycle = monitored_workspace
    assert len(cycle["batch_details_json"]) == 2 and len(cycle["traffic_window_details_json"]) == 1
    for stored, expected in zip(cycle["batch_details_json"], pinned["batch_details_json"], strict=True):
        assert stored == expected  # byte for byte: keys, their order, every value
    assert cycle["traffic_window_details_json"] == pinned["traffic_window_details_json"]
    assert json.dumps(cycle["monitor_batches"]) == json.dumps(pinned["monitor_batches"])


def test_the_alerts_a_cycle_opens_store_their_evidence_as_they_always_have(monitored_workspace):
    """A batch's alerts and a traffic window's: each alerts row's details_json and its alert_opened
    event's, byte for byte; Alert.to_json() (what the Alerts tab lists) shows the stored document."""
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    workspace, cycle = monitored_workspace
    assert cycle["alert_details_json"] == pinned["alert_details_json"]
    assert cycle["alert_opened_details_json"] == pinned["alert_opened_details_json"]
    assert {line.split(":")[0] for line in cycle["alert_details_json"]} == {
        "metric_threshold", "drift_share", "estimated_threshold", "traffic_estimated_threshold"}
    registry = Registry(workspace / "registry.db")
    try:
        alerts = registry.alerts(registry.find_project("loans").id)
    finally:
        registry.close()
    stored = dict(stored_rows(workspace, "SELECT id, details_json FROM alerts"))
    assert [json.dumps(alert.to_json()["details"]) for alert in alerts] == [stored[alert.id] for alert in alerts]
    assert all(pickle.loads(pickle.dumps(alert)) == alert for alert in alerts)


def test_the_stored_details_read_back_typed_and_write_the_same_bytes(monitored_workspace):
    workspace, _ = monitored_workspace
    registry = Registry(workspace / "registry.db")
    try:
        project = registry.find_project("loans")
        labelled, unlabelled = registry.monitor_results(project.id)
        [window] = registry.traffic_windows(project.id)
    finally:
        registry.close()
    stored = dict(stored_rows(workspace, "SELECT id, details_json FROM monitor_results"))
    [(window_json,)] = stored_rows(workspace, "SELECT details_json FROM traffic_windows")
    for result in (labelled, unlabelled):
        assert isinstance(result.details, BatchDetails)
        assert json.dumps(result.details.to_json(), default=float) == stored[result.id]
        assert pickle.loads(pickle.dumps(result)) == result  # the window's workers hand it over pickled
    assert isinstance(window.details, WindowDetails) and json.dumps(window.details.to_json()) == window_json
    assert pickle.loads(pickle.dumps(window)) == window

    details = labelled.details
    assert list(details.features) == ["income", "age", "debt_ratio", "tenure_months", "region", "has_mortgage"]
    assert isinstance(details.features["income"], NumericDrift) and isinstance(details.features["region"], CategoricalDrift)
    assert details.features["region"].effect == details.features["region"].jensen_shannon
    assert details.per_class["1"].support + details.per_class["0"].support == labelled.labelled_rows == 80
    assert details.confusion.classes == ("0", "1") and sum(map(sum, details.confusion.matrix)) == 80
    assert details.fired() == ["metric_threshold"] and details.has_ids is False and details.sample is None
    assert unlabelled.details.metrics is None and unlabelled.details.per_class is None
    assert sorted(name for name, stats in unlabelled.details.features.items() if stats.drifted) == sorted(
        unlabelled.drifted_features)
    assert window.details.probability_drift.psi == pytest.approx(window.details.probability_drift.to_json()["psi"])
    assert window.details.model_versions == (labelled.model_version_id,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        details.training_value = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        details.features["income"].drifted = True  # type: ignore[misc]


def test_the_details_an_earlier_release_stored_read_back_and_write_the_same_bytes(tmp_path):
    """Keel 0.1.0 stored no has_ids and no traffic windows: what it stored is read as it was."""
    with zipfile.ZipFile(EARLIER_WORKSPACE) as archive:
        archive.extractall(tmp_path)
    registry = Registry(tmp_path / "registry.db")
    try:
        [result] = registry.monitor_results(registry.find_project("loans").id)
        alerts = registry.alerts(registry.find_project("loans").id)
    finally:
        registry.close()
    stored_alerts = dict(stored_rows(tmp_path, "SELECT id, details_json FROM alerts"))
    assert len(alerts) == 2 and [json.dumps(a.to_json()["details"]) for a in alerts] == [stored_alerts[a.id] for a in alerts]
    [(stored,)] = stored_rows(tmp_path, "SELECT details_json FROM monitor_results")
    assert json.dumps(result.details.to_json(), default=float) == stored
    assert result.details.has_ids is None and result.details.training_value == pytest.approx(0.9642857142857143)
    assert result.details.fired() == ["metric_drop", "metric_threshold"]


def test_the_drift_statistics_are_typed_values():
    reference = drift.NumericReference.build("x", np.arange(100, dtype=float))
    compared = reference.compare(np.arange(50, 150, dtype=float))
    assert isinstance(compared, NumericDrift) and compared.drifted
    assert NumericDrift.from_json(compared.to_json()) == compared
    assert list(compared.to_json()) == ["kind", "psi", "missing_share", "chi2", "chi2_pvalue", "wasserstein",
                                        "wasserstein_norm", "ks", "ks_pvalue", "drifted"]
    categories = drift.CategoricalReference.build("c", ["a", "b"] * 50).compare(np.array(["a", "c"] * 50, dtype=object))
    assert isinstance(categories, CategoricalDrift) and categories.unseen_categories == ("c",)
    assert CategoricalDrift.from_json(categories.to_json()) == categories
    assert drift.chi_square(np.array([5.0, 5.0]), np.array([5.0, 5.0])) == ChiSquare(chi2=0.0, chi2_pvalue=1.0)
    assert drift.category_counts(np.array(["a", None, "a"], dtype=object)) == {"a": 2, drift.MISSING: 1}
    for value in (compared, categories, ChiSquare(1.0, 0.5)):
        assert pickle.loads(pickle.dumps(value)) == value
