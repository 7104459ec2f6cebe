"""The ID column and the prediction log: `project create --id-column`, IDs in `predict` output and
in the server's answers, records of what was scored, bounded by rows and age (app/core/services/prediction_log.py)."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, loans, snapshot, write_csv
from serving_helpers import ready_server
from store_helpers import opened_store

from app.core.domain.clock import fixed_clock, iso_utc
from app.core.services import prediction_log
from app.core.services.lifecycle import Keel

ROOT = Path(__file__).resolve().parents[1]


def with_ids(frame: pd.DataFrame, prefix: str = "c") -> pd.DataFrame:
    return frame.assign(customer_id=[f"{prefix}{i}" for i in range(len(frame))])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """`scored`: logreg with the ID column customer_id, v1 in production (full logging by default)."""
    root = tmp_path_factory.mktemp("prediction_log")
    keel = Keel.open(root / "workspace")
    try:
        keel.create_project("scored", write_csv(root / "scored.csv", with_ids(loans(400, seed=3))), "default",
                            settings={"preset": "logreg", "id_column": "customer_id"})
        keel.train("scored")
        keel.deploy("scored", 1)
    finally:
        keel.close()
    return root / "workspace"


def post(url: str, body: dict) -> tuple[dict, dict]:
    request = urllib.request.Request(url + "/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(answer.headers), json.loads(answer.read())


def records(ws, name="scored", after_id=0) -> list[dict]:
    keel = Keel.open(ws)
    try:
        with opened_store(keel) as registry:
            return registry.predictions(keel.project(name).id, after_id=after_id)
    finally:
        keel.close()


def last_record_id(ws, name="scored") -> int:
    keel = Keel.open(ws)
    try:
        with opened_store(keel) as registry:
            return registry.prediction_log_summary(keel.project(name).id).last_id
    finally:
        keel.close()


# --------------------------------------------------------------------------- the ID column
def test_the_id_column_is_never_a_feature_and_logging_defaults_to_full(ws):
    keel = Keel.open(ws)
    try:
        project = keel.project("scored")
        assert "customer_id" not in project.schema.features
        assert project.settings.id_column == "customer_id"
        assert keel.settings("scored").effective_prediction_log() == 1.0
        stored = keel.dataset_frame("scored", 1)
        assert stored["customer_id"].tolist()[:2] == ["c0", "c1"]  # kept in the stored version, for labels
    finally:
        keel.close()


def test_project_create_refuses_an_id_column_missing_from_the_file(tmp_path, capsys):
    data = write_csv(tmp_path / "loans.csv", loans(60, seed=1))
    code, out, _ = cli(capsys, tmp_path / "ws", "project", "create", "p", "--data", str(data), "--target", "default",
                       "--id-column", "customer_id")
    assert code == 2 and "no ID column 'customer_id'" in out["error"]["message"]


def test_project_set_refuses_a_feature_as_id_column_and_accepts_log_settings(tmp_path, capsys):
    data = write_csv(tmp_path / "loans.csv", loans(60, seed=1))
    assert cli(capsys, tmp_path / "ws", "project", "create", "p", "--data", str(data), "--target", "default")[0] == 0
    before = snapshot(tmp_path / "ws")
    code, out, _ = cli(capsys, tmp_path / "ws", "project", "set", "p", "--id-column", "age")
    assert code == 2 and "is a feature" in out["error"]["message"]
    code, out, _ = cli(capsys, tmp_path / "ws", "project", "set", "p", "--prediction-log", "1.5")
    assert code == 2 and "--prediction-log" in out["error"]["message"]
    assert snapshot(tmp_path / "ws")[0] == before[0]
    code, out, _ = cli(capsys, tmp_path / "ws", "project", "set", "p", "--prediction-log", "0.25",
                       "--prediction-log-rows", "500", "--prediction-log-days", "30", "--label-coverage", "0.8",
                       "--label-delay", "3d")
    assert code == 0
    assert {k: out["settings"][k] for k in ("prediction_log", "prediction_log_rows", "prediction_log_days",
                                             "label_coverage", "label_delay")} == {
        "prediction_log": 0.25, "prediction_log_rows": 500, "prediction_log_days": 30.0, "label_coverage": 0.8,
        "label_delay": "3d"}


# --------------------------------------------------------------------------- predict
def test_cli_predict_output_carries_the_ids_and_records_them(ws, tmp_path, capsys):
    frame = loans(50, seed=8).drop(columns="default")
    frame["customer_id"] = [f"p{i}" if i % 2 == 0 else "" for i in range(len(frame))]  # half without an ID
    before = last_record_id(ws)
    code, out, _ = cli(capsys, ws, "predict", "scored", "--input", str(write_csv(tmp_path / "in.csv", frame)),
                       "--output", str(tmp_path / "out.csv"))
    assert code == 0 and out["assigned_ids"] == 25 and out["logged_rows"] == 50 and out["id_column"] == "customer_id"
    scored = pd.read_csv(tmp_path / "out.csv", dtype={"customer_id": str})
    assert scored["customer_id"].iloc[::2].tolist() == [f"p{i}" for i in range(0, 50, 2)]
    assert scored["customer_id"].nunique() == 50 and scored["customer_id"].notna().all()
    logged = records(ws, after_id=before)
    assert [r.record_id for r in logged] == scored["customer_id"].tolist()
    assert [r.prediction for r in logged] == scored["prediction"].tolist()
    assert [round(r.probabilities[1], 9) for r in logged] == scored["proba_1"].round(9).tolist()
    assert len(logged[0].inputs) == 6 and {r.source for r in logged} == {"predict"}


def test_predict_without_id_column_or_log_adds_no_column(tmp_path, capsys):
    data = write_csv(tmp_path / "loans.csv", loans(120, seed=1))
    ws = tmp_path / "ws"
    assert cli(capsys, ws, "project", "create", "p", "--data", str(data), "--target", "default",
               "--model", "logreg")[0] == 0
    assert cli(capsys, ws, "train", "p")[0] == 0 and cli(capsys, ws, "deploy", "p", "--version", "1")[0] == 0
    code, out, _ = cli(capsys, ws, "predict", "p", "--input", str(data), "--output", str(tmp_path / "out.csv"))
    assert code == 0 and out["id_column"] is None and out["logged_rows"] == 0
    assert "keel_id" not in pd.read_csv(tmp_path / "out.csv").columns
    assert cli(capsys, ws, "status", "p")[1]["prediction_log"]["rows"] == 0


# --------------------------------------------------------------------------- the server
def test_server_returns_given_and_assigned_ids_and_logs_every_answered_row(ws):
    rows = loans(4, seed=9).drop(columns="default").to_dict("records")
    before = last_record_id(ws)
    with ready_server(ws, "scored") as handle:
        _, with_id = post(handle.url, {"dataframe_records": [{**rows[0], "customer_id": "known-1"}]})
        headers, without = post(handle.url, {"dataframe_records": rows[1:]})
        _, mlflow_style = post(handle.url, {"inputs": [list(rows[0].values())]})  # lists in feature order: no ID
    assert with_id["ids"] == ["known-1"] and len(without["ids"]) == 3 and len(set(without["ids"])) == 3
    assert set(without) == {"predictions", "ids"} and headers["X-Keel-Model-Version"] == "1"
    logged = records(ws, after_id=before)
    assert [r.record_id for r in logged] == with_id["ids"] + without["ids"] + mlflow_style["ids"]
    assert [r.prediction for r in logged] == with_id["predictions"] + without["predictions"] + \
        mlflow_style["predictions"]
    assert all(len(r.probabilities) == 2 for r in logged)  # computed in the writer when not asked for


def test_the_log_keeps_its_row_limit(ws, capsys):
    assert cli(capsys, ws, "project", "set", "scored", "--prediction-log-rows", "40")[0] == 0
    try:
        rows = loans(5, seed=2).drop(columns="default").to_dict("records")
        with ready_server(ws, "scored") as handle:
            for _ in range(30):
                post(handle.url, {"dataframe_records": rows})
        kept = records(ws)
        assert len(kept) == 40  # the newest 40 of the 150 rows just scored
        assert kept[-1].id == last_record_id(ws)
        shown = cli(capsys, ws, "status", "scored")[1]["prediction_log"]
        assert list(shown) == ["rows", "oldest_at", "newest_at", "share", "max_rows", "max_days"]
        assert (shown["rows"], shown["max_rows"], shown["share"]) == (40, 40, 1.0)
        assert shown["oldest_at"] <= shown["newest_at"] == kept[-1].at
    finally:
        assert cli(capsys, ws, "project", "set", "scored", "--prediction-log-rows", "1000000")[0] == 0


def test_pruning_drops_records_older_than_the_age_limit(ws, store):
    keel = Keel.open(ws)
    try:
        project = keel.project("scored")
        old, new = iso_utc(0.0), iso_utc(4e9)
        X = pd.DataFrame({"a": [1.0]})
        with store(keel).transaction():
            for at, record_id in ((old, "ancient"), (new, "recent")):
                store(keel).insert_predictions(prediction_log.encode(
                    project.id, store(keel).model_version(project.id, 1).id, at, [record_id], X, [1], None,
                    "predict"))
            dropped = store(keel).prune_predictions(project.id, 10**6, prediction_log.cutoff(90, time.time()))
        assert dropped >= 1
        remaining = {r.record_id for r in store(keel).predictions(project.id)}
        assert "recent" in remaining and "ancient" not in remaining
    finally:
        keel.close()


def test_sigterm_on_serve_loses_no_answered_request(ws):
    before = last_record_id(ws)
    process = subprocess.Popen([sys.executable, "main.py", "--workspace", str(ws), "serve", "scored", "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+", process.stdout.readline()).group(0)
        rows = loans(1, seed=4).drop(columns="default").to_dict("records")
        answered = [post(url, {"dataframe_records": rows})[1]["ids"][0] for _ in range(60)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0
    assert [r.record_id for r in records(ws, after_id=before)] == answered


def test_the_writer_commits_in_the_background_without_being_stopped(ws, store):
    import time

    keel = Keel.open(ws)
    writer = prediction_log.PredictionLogWriter(store(keel), flush_seconds=0.2)
    try:
        project = keel.project("scored")
        loaded = keel.load_production("scored")
        before = store(keel).prediction_log_summary(project.id).last_id
        X = pd.DataFrame({name: [0.0] for name in project.schema.features})
        X["region"], X["has_mortgage"] = "north", 1.0
        policy = prediction_log.LogPolicy.of(keel.settings("scored"))
        writer.add(project.id, loaded.model_version.id, loaded.model, True, ["background-1"], X, [0], None,
                   policy)
        deadline = time.monotonic() + 10  # a crash would lose only what is not committed yet: poll for it
        while not store(keel).predictions(project.id, after_id=before) and time.monotonic() < deadline:
            time.sleep(0.05)
        committed = store(keel).predictions(project.id, after_id=before)
        assert [r.record_id for r in committed] == ["background-1"]
        assert len(committed[0].probabilities) == 2  # computed by the writer, off the request path
    finally:
        writer.stop()
        keel.close()


def test_the_log_takes_its_time_from_the_workspace_clock(ws, tmp_path, store):
    """Records are stamped, and aged out, by the clock Keel is given: predict and the server's writer alike."""
    later = time.time() + 200 * 86400  # 200 days on: what the other tests logged is past the 90-day limit
    age_limit = iso_utc(later - 90 * 86400)
    keel = Keel.open(ws, clock=fixed_clock(later))
    try:
        project = keel.project("scored")
        before = store(keel).predictions(project.id)
        keel.predict("scored", write_csv(tmp_path / "score.csv", with_ids(loans(3, seed=8), "clock-").drop(
            columns="default")), tmp_path / "scored.csv")
        writer = keel.prediction_log_writer()
        loaded = keel.load_production("scored")
        X = pd.DataFrame({name: [0.0] for name in project.schema.features})
        X["region"], X["has_mortgage"] = "north", 1.0
        writer.add(project.id, loaded.model_version.id, loaded.model, False, ["served-later"], X, [0], None,
                   prediction_log.LogPolicy.of(keel.settings("scored")))
        writer.stop()
        after = store(keel).predictions(project.id)
    finally:
        keel.close()
    newest = before[-1].id if before else 0
    assert [(r.record_id, r.at) for r in after if r.id > newest] == [
        ("clock-0", iso_utc(later)), ("clock-1", iso_utc(later)), ("clock-2", iso_utc(later)),
        ("served-later", iso_utc(later))]
    assert any(r.at < age_limit for r in before)  # logged on the system's clock by the other tests...
    assert all(r.at >= age_limit for r in after)  # ...and aged out on the workspace's
