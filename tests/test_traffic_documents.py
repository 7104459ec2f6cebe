"""What the traffic and late-label commands print and store, as they always have: `traffic --json`,
`labels --json`, the traffic and late_labels parts of `monitor --once --json` (keys, their order,
every value), the same commands' human output, the audit log's events of the cycles and the labels,
and each traffic_windows row as the registry holds it.

tests/fixtures/traffic_documents.json holds what this small, seeded lifecycle printed and stored
before the traffic results were typed (app/core/domain/traffic.py); times are masked (they are the
moment the test ran)."""

import dataclasses
import json
import pickle
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, loans, write_csv

from app.core.domain.traffic import (
    LabelsAdded,
    LateMeasurementEvaluated,
    MonitoredWindow,
    TrafficOverview,
    WindowMeasuredLate,
)
from app.core.services.lifecycle import Keel

PINNED = Path(__file__).parent / "fixtures" / "traffic_documents.json"
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d(T\d\d(:\d\d(:\d\d(\.\d+)?)?)?(\+00:00)?)?")
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def timeless(document):
    """The document (JSON text or a printed line) with each time replaced by <time>."""
    return LOCAL_TIME.sub("<time>", ISO_TIME.sub("<time>", document))


def traffic_lifecycle(capsys, workspace: Path, tmp_path: Path) -> dict:
    """A project with an ID column: an unlabelled batch with IDs ingested, 40 rows scored and logged,
    one cycle (a traffic window), late labels for both (with unknown and repeated IDs), one more cycle
    (the late measurements evaluated), the rest of the window's labels, 10 more rows scored, a third
    cycle (printed as text) and `traffic`. -> each document, timeless."""
    def run(*args: str, as_json: bool = True) -> str:
        code, out, err = cli(capsys, workspace, *args, as_json=as_json)
        assert code == 0, err
        return timeless(json.dumps(out) if as_json else out)

    initial = loans(200, seed=1).assign(customer_id=[f"t{i}" for i in range(200)])
    run("project", "create", "loans", "--data", str(write_csv(tmp_path / "initial.csv", initial)),
        "--target", "default", "--model", "logreg", "--id-column", "customer_id", "--threshold", "0.95")
    run("train", "loans")
    run("deploy", "loans", "--version", "1")
    batch = loans(60, seed=3, concept=1.0).assign(customer_id=[f"b{i}" for i in range(60)])
    run("ingest", "loans", str(write_csv(tmp_path / "unlabelled.csv", batch.drop(columns="default"))))
    scored = loans(40, seed=7, shift=1.0).assign(customer_id=[f"p{i}" for i in range(40)])
    run("predict", "loans", "--input", str(write_csv(tmp_path / "to_score.csv", scored.drop(columns="default"))),
        "--output", str(tmp_path / "scored.csv"))
    documents = {"first_cycle": json.loads(run("monitor", "loans", "--once"))}
    truth = pd.concat([scored.iloc[:30], batch.iloc[:45]])[["customer_id", "default"]].set_axis(["id", "label"], axis=1)
    labels = pd.concat([truth, truth.iloc[:3], pd.DataFrame({"id": ["nobody-1", "nobody-2"], "label": [0, 1]})])
    labels_file = str(write_csv(tmp_path / "labels.csv", labels))
    documents["labels"] = run("labels", "loans", labels_file)
    documents["labels_again_text"] = run("labels", "loans", labels_file, as_json=False)
    documents["second_cycle"] = json.loads(run("monitor", "loans", "--once"))
    rest = scored.iloc[30:][["customer_id", "default"]].set_axis(["id", "label"], axis=1)
    documents["more_labels_text"] = run("labels", "loans", str(write_csv(tmp_path / "more.csv", rest)), as_json=False)
    later = loans(10, seed=9).assign(customer_id=[f"q{i}" for i in range(10)]).drop(columns="default")
    run("predict", "loans", "--input", str(write_csv(tmp_path / "later.csv", later)), "--output", str(tmp_path / "later-scored.csv"))
    documents["third_cycle_text"] = run("monitor", "loans", "--once", as_json=False)
    documents["traffic"] = run("traffic", "loans")
    documents["traffic_text"] = run("traffic", "loans", as_json=False)
    documents["traffic_by_day"] = run("traffic", "loans", "--by", "day")
    events = json.loads(run("history", "loans"))["events"]
    documents["events"] = [event for event in events if event["kind"] in ("monitored", "labels_added", "alert_opened")]
    connection = sqlite3.connect(workspace / "registry.db")
    connection.row_factory = sqlite3.Row
    try:
        rows = [dict(row) for row in connection.execute("SELECT * FROM traffic_windows ORDER BY id")]
    finally:
        connection.close()
    documents["traffic_windows_rows"] = [timeless(json.dumps(row)) for row in rows]
    return documents


def cycle_parts(cycle: dict) -> str:
    """What a cycle printed of its traffic: the traffic window, the late measurements, and the alerts
    that name either."""
    return json.dumps({"traffic": cycle["traffic"], "late_labels": cycle["late_labels"],
                       "alerts_opened": cycle["alerts_opened"], "alerts_recovered": cycle["alerts_recovered"]})


def test_the_traffic_commands_print_and_store_what_they_always_have_from_typed_results(capsys, workspace, tmp_path):
    documents = traffic_lifecycle(capsys, workspace, tmp_path)
    documents["first_cycle"] = cycle_parts(documents["first_cycle"])
    documents["second_cycle"] = cycle_parts(documents["second_cycle"])
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert list(documents) == list(pinned)
    for name, document in documents.items():
        assert document == pinned[name], name  # byte for byte: keys, their order, every value
    typed_results_print_as_the_cli_shows(capsys, workspace, tmp_path)


def frozen_and_pickles(result) -> bool:
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rows = 0
    return pickle.loads(pickle.dumps(result)) == result  # crosses the window's child process as it is


def typed_results_print_as_the_cli_shows(capsys, workspace: Path, tmp_path: Path) -> None:
    """After traffic_lifecycle (two traffic windows, the second, q0..q9, unlabelled): the services'
    results are frozen, pickle, and their to_json() is what the CLI prints."""
    keel = Keel.open(workspace)
    try:
        overview = keel.traffic.overview("loans")
        labels = pd.DataFrame({"id": [f"q{i}" for i in range(5)], "label": [0, 1, 0, 1, 0]})
        added = keel.labels.add_labels("loans", write_csv(tmp_path / "q.csv", labels))
        cycle = keel.policy.monitor("loans")
    finally:
        keel.close()
    assert isinstance(overview, TrafficOverview) and [w.id for w in overview.windows] == [1, 2]
    assert all(isinstance(w, MonitoredWindow) for w in overview.windows) and overview.windows[1].label_coverage == 0.0
    assert (overview.batches[0].dataset_version, overview.batches[0].label_coverage) == (2, 0.75)
    assert isinstance(added, LabelsAdded) and (added.joined, added.dataset_version, added.batches) == (5, 5, ())
    assert added.traffic_windows == (WindowMeasuredLate(window=2, rows=10, labelled_rows=5, metric="accuracy",
                                                        value=added.traffic_windows[0].value),)
    assert added.traffic_windows[0].label_coverage == 0.5 and added.traffic_windows[0].value is not None
    assert cycle.late_labels == (LateMeasurementEvaluated(
        where="traffic window 2 (labelled late)", traffic_window=2, dataset_version=None, rows=10, labelled_rows=5,
        metric="accuracy", value=added.traffic_windows[0].value, labels_dataset_version=5),)
    for result in (overview, *overview.windows, *overview.batches, *overview.volume, added, *added.traffic_windows,
                   *cycle.late_labels):
        assert frozen_and_pickles(result), result
    assert pickle.loads(pickle.dumps(cycle)) == cycle
    code, printed, _ = cli(capsys, workspace, "traffic", "loans")
    assert code == 0
    shown = keel_overview_now(workspace)
    assert printed == shown.to_json() and shown.windows[1].labelled_rows == 5


def keel_overview_now(workspace: Path) -> TrafficOverview:
    keel = Keel.open(workspace)
    try:
        return keel.traffic.overview("loans")
    finally:
        keel.close()
