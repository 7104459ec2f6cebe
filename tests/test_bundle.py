"""bundle export / import: a project in one file. The round trip keeps status, predictions and
history (plus one import event); a damaged or tampered bundle is refused whole, naming the member."""

import json
import zipfile

import pandas as pd
import pytest
import skops.io as sio
from cli_helpers import cli, deployed_loans_workspace, loans, refused, snapshot, write_csv
from sklearn.compose import ColumnTransformer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from store_helpers import opened_store

from app.core.domain.entities import Schema
from app.core.fileio import sha256_file
from app.core.services.lifecycle import Keel
from app.core.store.archive import ArchiveReader, write_archive

NUMERIC = ["income", "age", "debt_ratio", "tenure_months", "has_mortgage"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A project with history: two versions, a rollback, a monitored batch, an alert acknowledged."""
    root = tmp_path_factory.mktemp("bundle")
    ws = deployed_loans_workspace(root, rows=200, seed=4)
    keel = Keel.open(ws)
    try:
        keel.set_project("loans", {"threshold": 0.99})
        keel.ingest("loans", write_csv(root / "b1.csv", loans(80, seed=21)))
        keel.train("loans")
        keel.deploy("loans", 2)
        keel.rollback("loans")
        keel.policy.monitor("loans")
        with opened_store(keel) as registry:
            alerts = registry.open_alerts(keel.project("loans").id)
        for alert in alerts[:1]:
            keel.acknowledge_alert("loans", alert.id)
    finally:
        keel.close()
    return ws


def _event_list(history):
    return [(e["at"], e["kind"], e["by"], e["message"], e["details"]) for e in history["events"]]


def test_round_trip_keeps_status_predictions_and_history(source, tmp_path, capsys):
    _, status_before, _ = cli(capsys, source, "status", "loans")
    _, history_before, _ = cli(capsys, source, "history", "loans")
    bundle = tmp_path / "loans.keel"
    code, out, err = cli(capsys, source, "bundle", "export", "loans", "--output", str(bundle))
    assert code == 0, err
    assert out["model_versions"] == 2 and out["dataset_versions"] == 2

    target = tmp_path / "new-workspace"  # created when missing
    code, out, err = cli(capsys, target, "bundle", "import", str(bundle))
    assert code == 0, err
    assert out["project"] == "loans"
    _, status_after, _ = cli(capsys, target, "status", "loans")
    assert status_after == status_before
    _, history_after, _ = cli(capsys, target, "history", "loans")
    assert _event_list(history_after)[:-1] == _event_list(history_before)
    assert history_after["events"][-1]["kind"] == "project_imported"
    assert len(history_after["events"]) == len(history_before["events"]) + 1

    scored = write_csv(tmp_path / "score.csv", loans(50, seed=77))
    for workspace, name in ((source, "a.csv"), (target, "b.csv")):
        assert cli(capsys, workspace, "predict", "loans", "--input", str(scored), "--output", str(tmp_path / name))[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    code, out, _ = cli(capsys, target, "verify")
    assert code == 0, out["problems"]


def test_import_never_overwrites_and_as_renames(source, tmp_path, capsys):
    bundle = tmp_path / "loans.keel"
    assert cli(capsys, source, "bundle", "export", "loans", "--output", str(bundle))[0] == 0
    before = snapshot(source)
    code, out, err = cli(capsys, source, "bundle", "import", str(bundle))
    assert code == 2 and "already exists" in out["error"]["message"] and "--as" in out["error"]["message"]
    assert snapshot(source) == before
    target = tmp_path / "other"
    assert cli(capsys, target, "bundle", "import", str(bundle), "--as", "loans-copy")[0] == 0
    _, status, _ = cli(capsys, target, "status", "loans-copy")
    assert status["production_version"] == 1 and [v["version"] for v in status["versions"]] == [1, 2]
    assert (target / "artifacts" / "loans-copy" / "v2.skops").exists()
    assert cli(capsys, target, "verify")[0] == 0
    assert cli(capsys, target, "bundle", "import", str(bundle), "--as", "../evil")[0] == 2


def test_export_into_the_workspace_is_refused(source, capsys):
    before = snapshot(source)
    code, out, _ = cli(capsys, source, "bundle", "export", "loans", "--output", str(source / "registry.db"))
    assert code == 2 and "inside the workspace" in out["error"]["message"]
    assert snapshot(source) == before


def _rebuild(bundle, out_path, change):
    """A consistently re-hashed copy (what a deliberate tamperer would make): change(name, data) -> data."""
    with ArchiveReader(bundle) as reader:
        members = {name: reader.read_bytes(name) for name in reader.names()}
        meta = reader.meta
    with write_archive(out_path, "bundle", meta) as writer:
        for name, data in members.items():
            writer.add_bytes(name, change(name, data))
    return out_path


def _empty_workspace(tmp_path, capsys):
    target = tmp_path / "target"
    assert cli(capsys, target, "project", "list")[0] == 0
    return target


def test_a_damaged_bundle_is_refused_naming_the_member(source, tmp_path, capsys):
    bundle = tmp_path / "loans.keel"
    assert cli(capsys, source, "bundle", "export", "loans", "--output", str(bundle))[0] == 0
    with zipfile.ZipFile(bundle) as zf:
        items = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    with zipfile.ZipFile(bundle, "w") as zf:
        for name, data in items:
            zf.writestr(name, data.replace(b"v1 trained", b"v1 TRAINED") if name == "rows/events.json" else data)
    target = _empty_workspace(tmp_path, capsys)
    assert refused(capsys, target, "bundle", "import", str(bundle)) == \
        "loans.keel: member rows/events.json is damaged (sha256 mismatch)"


def test_a_consistently_rehashed_model_swap_is_refused(source, tmp_path, capsys):
    bundle = tmp_path / "loans.keel"
    assert cli(capsys, source, "bundle", "export", "loans", "--output", str(bundle))[0] == 0
    target = _empty_workspace(tmp_path, capsys)
    before = snapshot(target)

    swapped = _rebuild(bundle, tmp_path / "swapped.keel",
                       lambda name, data: data + b"\0" if name == "artifacts/v1.skops" else data)
    code, out, _ = cli(capsys, target, "bundle", "import", str(swapped))
    assert code == 2 and out["error"]["message"] == "swapped.keel: member artifacts/v1.skops does not match model v1's sha256"

    keel = Keel.open(source)
    try:
        frame, _ = keel.training_frame("loans")
    finally:
        keel.close()
    from app.core.ml import datasets

    stored = json.loads(ArchiveReader(bundle).read_bytes("rows/projects.json"))[0]["schema_json"]
    schema = Schema.from_json(json.loads(stored))
    X, y = datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema)
    hostile = tmp_path / "knn.skops"
    preprocess = ColumnTransformer([("n", StandardScaler(), NUMERIC), ("c", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    sio.dump(Pipeline([("p", preprocess), ("m", KNeighborsClassifier(algorithm="kd_tree"))]).fit(X, y), hostile)
    hostile_sha = sha256_file(hostile)

    def swap_model_and_its_row(name, data):
        if name == "artifacts/v1.skops":
            return hostile.read_bytes()
        if name == "rows/model_versions.json":
            rows = json.loads(data)
            rows[0]["sha256"] = hostile_sha
            return json.dumps(rows).encode()
        return data

    tampered = _rebuild(bundle, tmp_path / "tampered.keel", swap_model_and_its_row)
    code, out, _ = cli(capsys, target, "bundle", "import", str(tampered))
    assert code == 2
    assert out["error"]["message"].startswith("tampered.keel: member artifacts/v1.skops holds untrusted type(s) ")
    assert snapshot(target) == before


def test_types_the_exporter_accepted_must_be_accepted_again(source, tmp_path, capsys):
    bundle = tmp_path / "loans.keel"
    assert cli(capsys, source, "bundle", "export", "loans", "--output", str(bundle))[0] == 0

    def accepted_by_exporter(name, data):
        if name == "rows/model_versions.json":
            rows = json.loads(data)
            rows[1]["extra_trusted_types_json"] = json.dumps(["sklearn.neighbors._kd_tree.KDTree"])
            return json.dumps(rows).encode()
        return data

    accepted = _rebuild(bundle, tmp_path / "accepted.keel", accepted_by_exporter)
    target = _empty_workspace(tmp_path, capsys)
    code, out, _ = cli(capsys, target, "bundle", "import", str(accepted))
    assert code == 2 and "model v2 needs type(s) outside Keel's trusted list: sklearn.neighbors._kd_tree.KDTree" \
        in out["error"]["message"]
    code, out, _ = cli(capsys, target, "bundle", "import", str(accepted), "--trust", "sklearn.neighbors._kd_tree.KDTree")
    assert code == 0
