"""Served traffic as monitoring data and labels that arrive later, end to end over real HTTP
(app/core/services/traffic.py, app/core/services/labels.py)."""

import http.client
import json
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, loans, write_csv
from serving_helpers import FEATURES, ready_server

from app.core.domain.entities import LateLabelTotals
from app.core.domain.measurements import BatchDetails
from app.core.ml import datasets
from app.core.services.lifecycle import Keel

WINDOW_ROWS = 400  # one-row requests per monitoring window of the `served` fixture
LABELLED_ROWS = 300  # of each window's rows, labelled late (75 %)
# the keys `monitor --json`, `traffic --json` and `labels --json` show, in their order (a contract: docs/cli.md)
WINDOW_KEYS = ["window", "started_at", "ended_at", "rows", "model_version", "metric", "value", "labelled_rows",
               "label_coverage", "estimated_value", "prediction_drift", "probability_drift", "drifted_features",
               "drift_share"]
LATE_LABEL_KEYS = ["where", "traffic_window", "dataset_version", "rows", "labelled_rows", "metric", "value",
                   "labels_dataset_version"]


def make_project(root, name: str, **settings) -> None:
    keel = Keel.open(root / "workspace")
    try:
        data = loans(500, seed=21).assign(customer_id=[f"train-{i}" for i in range(500)])
        keel.create_project(name, write_csv(root / f"{name}.csv", data), "default",
                            settings={"preset": "logreg", "id_column": "customer_id", **settings})
        keel.train(name)
        keel.deploy(name, 1)
    finally:
        keel.close()


def serve_rows(ws, name: str, frame: pd.DataFrame, ids: list, rows_per_request: int = 1) -> list[dict]:
    """POST the frame's rows (IDs given where ids[i] is not None) over one keep-alive connection;
    -> one {id, prediction} per row, in order. The server is stopped cleanly afterwards."""
    answers = []
    with ready_server(ws, name) as handle:
        address = urlsplit(handle.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        records = frame[FEATURES].to_dict("records")
        for start in range(0, len(records), rows_per_request):
            chunk = [({**row, "customer_id": ids[start + i]} if ids[start + i] is not None else row)
                     for i, row in enumerate(records[start:start + rows_per_request])]
            connection.request("POST", "/invocations", json.dumps({"dataframe_records": chunk}),
                               {"Content-Type": "application/json"})
            answer = connection.getresponse()
            body = json.loads(answer.read())
            assert answer.status == 200, body
            answers += [{"id": i, "prediction": p} for i, p in zip(body["ids"], body["predictions"])]
        connection.close()
    return answers


def monitor(ws, name: str) -> dict:
    """One monitoring cycle of `name`, as `monitor --json` prints it (these tests pin its keys)."""
    keel = Keel.open(ws)
    try:
        return keel.policy.monitor(name).to_json()
    finally:
        keel.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One-row requests in two monitoring windows of WINDOW_ROWS (the second from a drifted
    concept); half of the rows carry an ID, the other half get one from Keel."""
    root = tmp_path_factory.mktemp("traffic")
    make_project(root, "shop")
    ws = root / "workspace"
    windows = []
    for index, concept in enumerate((0.0, 1.0)):
        frame = loans(WINDOW_ROWS, seed=100 + index, concept=concept)
        ids = [f"w{index}-{i}" if i % 2 == 0 else None for i in range(len(frame))]
        answers = serve_rows(ws, "shop", frame, ids)
        assert sum(1 for i in ids if i is None) == WINDOW_ROWS // 2 and len({a["id"] for a in answers}) == WINDOW_ROWS
        windows.append({"answers": answers, "truth": frame["default"].tolist(), "cycle": monitor(ws, "shop")})
    return root, ws, windows


def test_each_cycle_takes_the_traffic_since_the_last_as_one_window(served):
    _, _, windows = served
    for window in windows:
        traffic = window["cycle"]["traffic"]
        assert len(traffic) == 1 and traffic[0]["rows"] == WINDOW_ROWS and window["cycle"]["batches"] == []
        assert traffic[0]["prediction_drift"] is not None and traffic[0]["estimated_value"] is not None
        assert list(traffic[0]) == WINDOW_KEYS and traffic[0]["model_version"] == 1
        assert (traffic[0]["value"], traffic[0]["labelled_rows"], traffic[0]["label_coverage"]) == (None, 0, 0.0)
    assert windows[1]["cycle"]["traffic"][0]["window"] == windows[0]["cycle"]["traffic"][0]["window"] + 1


def test_late_labels_give_each_window_its_measured_accuracy(served, capsys, store):
    root, ws, windows = served
    rng = np.random.default_rng(7)
    labelled, expected = [], []
    for window in windows:
        chosen = sorted(rng.choice(WINDOW_ROWS, size=LABELLED_ROWS, replace=False))
        labelled += [(window["answers"][i]["id"], window["truth"][i]) for i in chosen]
        expected.append(np.mean([window["answers"][i]["prediction"] == window["truth"][i] for i in chosen]))
    unknown = [(f"nobody-{i}", 1) for i in range(10)]
    repeated = labelled[:5]
    labels = pd.DataFrame(labelled + unknown + repeated, columns=["id", "label"])
    code, out, _ = cli(capsys, ws, "labels", "shop", str(write_csv(root / "labels.csv", labels)))
    assert code == 0
    assert {k: out[k] for k in ("joined", "unknown", "duplicate", "already_labelled")} == {
        "joined": 2 * LABELLED_ROWS, "unknown": 10, "duplicate": 5, "already_labelled": 0}
    measured = {w["window"]: w for w in out["traffic_windows"]}
    assert all(list(w) == ["window", "rows", "labelled_rows", "label_coverage", "metric", "value"]
               for w in out["traffic_windows"])
    for window, accuracy in zip(windows, expected):
        number = window["cycle"]["traffic"][0]["window"]
        assert measured[number]["value"] == pytest.approx(accuracy, abs=1e-12)
        assert measured[number]["labelled_rows"] == LABELLED_ROWS and measured[number]["label_coverage"] == 0.75
    assert expected[1] < expected[0] - 0.1  # the drifted concept really is worse

    code, shown, _ = cli(capsys, ws, "traffic", "shop")
    assert [w["value"] for w in shown["windows"]] == pytest.approx(expected, abs=1e-12)
    assert list(shown) == ["project", "windows", "batches", "volume", "volume_bucket"]
    assert all(list(w) == WINDOW_KEYS for w in shown["windows"])
    assert sum(point["rows"] for point in shown["volume"]) == 2 * WINDOW_ROWS

    # the joined rows are a new labelled dataset version, with lineage; nothing stored before changes
    status = cli(capsys, ws, "status", "shop")[1]
    newest = status["dataset_versions"][-1]
    assert newest["labelled_rows"] == 2 * LABELLED_ROWS and newest["source"] == "labels: labels.csv"
    keel = Keel.open(ws)
    try:
        stored = keel.dataset_frame("shop", newest["version"])
        lineage = store(keel).dataset_versions(keel.project("shop").id)[-1].report["lineage"]
    finally:
        keel.close()
    assert sorted(stored["customer_id"]) == sorted(i for i, _ in labelled)
    truth = dict(labelled)
    assert all(truth[i] == y for i, y in zip(stored["customer_id"], stored["default"]))
    assert lineage["traffic_windows"] == [w["cycle"]["traffic"][0]["window"] for w in windows]
    code, verified, _ = cli(capsys, ws, "verify")
    assert code == 0, verified  # the new version's file is hashed like any other; nothing stored was edited

    # the same file again: every ID is already labelled, nothing is stored
    code, again, _ = cli(capsys, ws, "labels", "shop", str(root / "labels.csv"))
    assert code == 0 and again["joined"] == 0 and again["already_labelled"] == 2 * LABELLED_ROWS
    assert again["dataset_version"] is None

    # human output: one line per kind
    code, text, _ = cli(capsys, ws, "labels", "shop", str(root / "labels.csv"), as_json=False)
    assert "unknown: 10 ID(s)" in text and "duplicate: 5 row(s)" in text
    assert f"already labelled: {2 * LABELLED_ROWS}" in text


def test_the_next_cycle_evaluates_late_measurements_once_and_never_as_a_batch(served):
    _, ws, windows = served
    cycle = monitor(ws, "shop")
    assert cycle["batches"] == [] and cycle["traffic"] == []
    late = {item["traffic_window"]: item for item in cycle["late_labels"]}
    assert all(list(item) == LATE_LABEL_KEYS for item in cycle["late_labels"])
    assert sorted(late) == [w["cycle"]["traffic"][0]["window"] for w in windows]
    drifted = late[windows[1]["cycle"]["traffic"][0]["window"]]
    # the drop on the drifted window, found late, is a drop: the same rule as a labelled batch
    assert any(a["rule"] == "metric_drop" and "labelled late" in a["message"] for a in cycle["alerts_opened"])
    assert drifted["value"] < 0.85
    again = monitor(ws, "shop")
    assert again["late_labels"] == [] and again["alerts_opened"] == []


def test_a_drifted_traffic_pattern_raises_a_prediction_drift_alert_without_labels(tmp_path):
    make_project(tmp_path, "drifting")
    ws = tmp_path / "workspace"
    normal = loans(400, seed=31)
    serve_rows(ws, "drifting", normal, [None] * len(normal), rows_per_request=50)
    first = monitor(ws, "drifting")
    assert first["traffic"][0]["rows"] == 400
    assert "prediction_drift" not in {a["rule"] for a in first["alerts_opened"]}
    shifted = loans(400, seed=32)
    shifted["debt_ratio"] = (shifted["debt_ratio"] * 1.8).clip(upper=0.99)  # more applicants in debt: more refusals
    serve_rows(ws, "drifting", shifted, [None] * len(shifted), rows_per_request=50)
    second = monitor(ws, "drifting")
    opened = {a["rule"]: a for a in second["alerts_opened"]}
    assert "prediction_drift" in opened and "traffic" in opened["prediction_drift"]["message"]
    assert second["decision"] == "alert" and second["traffic"][0]["value"] is None  # no labels at all


def test_labels_join_unlabelled_ingested_rows_and_late_coverage_alerts(tmp_path, capsys):
    make_project(tmp_path, "batches")
    ws = tmp_path / "workspace"
    batch = loans(200, seed=41, concept=1.0).assign(customer_id=[f"b{i}" for i in range(200)])
    unlabelled = write_csv(tmp_path / "unlabelled.csv", batch.drop(columns="default"))
    assert cli(capsys, ws, "ingest", "batches", str(unlabelled))[0] == 0
    assert cli(capsys, ws, "project", "set", "batches", "--label-delay", "0s")[0] == 0
    cycle = monitor(ws, "batches")
    assert cycle["batches"][0]["labelled"] is False
    assert "labels_late" in {a["rule"] for a in cycle["alerts_opened"]}  # 0 % labelled, the delay is over

    labels = batch[["customer_id", "default"]].iloc[:150].rename(columns={"customer_id": "id", "default": "label"})
    code, out, _ = cli(capsys, ws, "labels", "batches", str(write_csv(tmp_path / "labels.csv", labels)))
    assert code == 0 and out["joined"] == 150 and out["traffic_windows"] == []
    keel = Keel.open(ws)
    try:
        model = keel.load_version("batches", 1).model
        schema = keel.project("batches").schema
        stored = keel.dataset_frame("batches", 2)  # the batch as ingested (cleaned), without labels
        truth = dict(zip(labels["id"], labels["label"]))
        rows = stored[stored["customer_id"].isin(truth)]
        predicted = model.predict(datasets.to_model_frame(rows, schema))
        direct = float(np.mean(predicted == rows["customer_id"].map(truth).to_numpy()))
    finally:
        keel.close()
    assert out["batches"] == [{"dataset_version": 2, "rows": 200, "labelled_rows": 150, "label_coverage": 0.75,
                               "metric": "accuracy", "value": pytest.approx(direct, abs=1e-12)}]
    cycle = monitor(ws, "batches")
    assert "labels_late" in {a["rule"] for a in cycle["alerts_recovered"]}  # 75 % >= 50 %
    assert cycle["late_labels"][0]["dataset_version"] == 2


def test_labels_need_an_id_column_and_the_right_columns(tmp_path, capsys):
    make_project(tmp_path, "cols")
    ws = tmp_path / "workspace"
    bad = write_csv(tmp_path / "bad.csv", pd.DataFrame({"who": ["a"], "label": [1]}))
    code, out, _ = cli(capsys, ws, "labels", "cols", str(bad))
    assert code == 2 and "id,label" in out["error"]["message"]
    data = write_csv(tmp_path / "plain.csv", loans(60, seed=1))
    assert cli(capsys, ws, "project", "create", "plain", "--data", str(data), "--target", "default")[0] == 0
    code, out, _ = cli(capsys, ws, "labels", "plain", str(bad))
    assert code == 2 and "no ID column" in out["error"]["message"]


def test_late_label_totals_count_only_windows_past_the_delay_below_the_coverage(tmp_path):
    """The late-label rule's query: old unlabelled batches with IDs (newest late measurement)
    and traffic windows under the coverage; batches labelled when monitored, without IDs or
    newer than the delay do not count."""
    from app.core.domain.entities import Column, Schema
    from app.core.store.registry import Registry

    registry = Registry(tmp_path / "registry.db")
    one_feature = Schema("y", "classification", "integer", (Column("x", "numeric"),))
    project = registry.insert_project("p", "classification", "y", "accuracy", one_feature, {})
    model = registry.insert_model_version(project_id=project, version=1, artifact_path="m", sha256="0")
    results = {}
    for version, (at, labelled, has_ids) in enumerate([("2026-01-01", 0, True), ("2026-01-02", 0, True),
                                                       ("2026-01-03", 100, True), ("2026-01-04", 0, False),
                                                       ("2026-03-01", 0, True)], start=1):
        dataset = registry.insert_dataset_version(project_id=project, version=version, path="d", content_sha256=str(version),
                                                  rows=100, labelled_rows=labelled, source="s", report={})
        results[version] = (dataset, registry.insert_monitor_result(
            project_id=project, model_version_id=model, dataset_version_id=dataset, at=at, rows=100,
            labelled_rows=labelled, metric="accuracy", details=BatchDetails(has_ids=has_ids)))
    labels = registry.insert_dataset_version(project_id=project, version=9, path="l", content_sha256="l", rows=0,
                                             labelled_rows=0, source="labels", report={})
    for labelled in (10, 80):  # the newest measurement counts: batch 2 is 80 % labelled
        registry.insert_late_measurement(project_id=project, monitor_result_id=results[2][1],
                                         labels_dataset_version_id=labels, rows=100, labelled_rows=labelled,
                                         metric="accuracy", value=0.9)
    registry.insert_traffic_window(project_id=project, model_version_id=model, first_prediction_id=1,
                                   last_prediction_id=50, started_at="2026-01-01", ended_at="2026-01-05",
                                   monitored_at="2026-01-05", rows=50, metric="accuracy", labelled_rows=5)
    assert registry.late_label_totals(project, "2026-02-01", 0.5) == LateLabelTotals(windows=2, rows=150, labelled=5)
    assert registry.late_label_totals(project, "2026-02-01", 0.9) == LateLabelTotals(windows=3, rows=250, labelled=85)
    assert [b.dataset_version for b in registry.batches_awaiting_labels(project)] == [1, 2, 5]
    assert [b.labelled_rows for b in registry.batches_awaiting_labels(project)] == [0, 80, 0]
    registry.close()
