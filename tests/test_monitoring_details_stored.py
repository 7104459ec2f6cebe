"""What one monitoring cycle stores and prints, byte for byte: the details_json of each batch
(per-feature drift, per-class metrics, the confusion matrix, prediction drift, the rules'
messages) and of the traffic window, and `monitor --once --json`'s batches. A workspace written
today is read by the next release: these bytes are its contract with the registry.

tests/fixtures/monitoring_cycle.json holds what this small, seeded lifecycle stored and printed
before the details were typed (app/core/domain/measurements.py)."""

import json
import re
import sqlite3
from pathlib import Path

from cli_helpers import cli, loans, write_csv

PINNED = Path(__file__).parent / "fixtures" / "monitoring_cycle.json"
TIME_OF_DAY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # a traffic rule's message names its window's times


def timeless(stored: str) -> str:
    return TIME_OF_DAY.sub("<time>", stored)


def monitoring_cycle(capsys, workspace: Path, tmp_path: Path) -> dict:
    """A seeded lifecycle: v1 deployed, a labelled batch, a shifted unlabelled one and 40 scored rows
    logged, then one monitoring cycle. -> what it stored (details_json of each batch and of the traffic
    window) and the batches `monitor --once --json` printed."""
    def run(*args: str) -> dict:
        code, out, err = cli(capsys, workspace, *args)
        assert code == 0, err
        return out

    run("project", "create", "loans", "--data", str(write_csv(tmp_path / "initial.csv", loans(200, seed=1))),
        "--target", "default", "--model", "logreg", "--threshold", "0.999")
    run("project", "set", "loans", "--prediction-log", "full")
    run("train", "loans")
    run("deploy", "loans", "--version", "1")
    run("ingest", "loans", str(write_csv(tmp_path / "labelled.csv", loans(80, seed=3))))
    shifted = loans(60, seed=5, shift=1.0).drop(columns="default")
    run("ingest", "loans", str(write_csv(tmp_path / "unlabelled.csv", shifted)))
    scored = loans(40, seed=7, shift=0.5).drop(columns="default")
    run("predict", "loans", "--input", str(write_csv(tmp_path / "to_score.csv", scored)),
        "--output", str(tmp_path / "scored.csv"))
    monitored = run("monitor", "loans", "--once")
    connection = sqlite3.connect(workspace / "registry.db")
    try:
        batches = [row[0] for row in connection.execute("SELECT details_json FROM monitor_results ORDER BY id")]
        windows = [timeless(row[0]) for row in connection.execute("SELECT details_json FROM traffic_windows ORDER BY id")]
    finally:
        connection.close()
    return {"batch_details_json": batches, "traffic_window_details_json": windows,
            "monitor_batches": monitored["batches"]}


def test_a_monitoring_cycle_stores_and_prints_what_it_always_has(capsys, workspace, tmp_path):
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    cycle = monitoring_cycle(capsys, workspace, tmp_path)
    assert len(cycle["batch_details_json"]) == 2 and len(cycle["traffic_window_details_json"]) == 1
    for stored, expected in zip(cycle["batch_details_json"], pinned["batch_details_json"], strict=True):
        assert stored == expected  # byte for byte: keys, their order, every value
    assert cycle["traffic_window_details_json"] == pinned["traffic_window_details_json"]
    assert json.dumps(cycle["monitor_batches"]) == json.dumps(pinned["monitor_batches"])
