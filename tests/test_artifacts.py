"""Safe artifacts: sha256-checked loads, Keel's own allow-list, import/export, no pickle anywhere."""

import ast
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from cli_helpers import cli, deployed_loans_workspace, loans, snapshot, workspace_copy, write_csv
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from app.core.domain.errors import IntegrityError
from app.core.ml import artifacts, datasets
from app.core.services.lifecycle import Keel

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["income", "age", "debt_ratio", "tenure_months", "has_mortgage"]
KNN_TYPES = ["sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.neighbors._kd_tree.KDTree"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A workspace with project `loans`: v1 trained (logreg) and in production."""
    return deployed_loans_workspace(tmp_path_factory.mktemp("artifacts"), rows=150, seed=5)


@pytest.fixture
def ws(template, tmp_path, monkeypatch) -> Path:
    folder = workspace_copy(template, tmp_path)
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder


def training_data(ws: Path):
    keel = Keel.open(ws)
    try:
        frame, _ = keel.training_frame("loans")
        schema = keel.project("loans").schema
    finally:
        keel.close()
    return datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema)


def outside_model(estimator, numeric_step=None) -> Pipeline:
    """A model 'trained elsewhere' on the project's features."""
    preprocess = ColumnTransformer([
        ("numeric", numeric_step or StandardScaler(), NUMERIC),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["region"]),
    ])
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def flip_a_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- integrity
def test_a_tampered_model_is_refused_by_deploy_and_predict(capsys, ws, tmp_path):
    assert cli(capsys, ws, "train", "loans")[0] == 0
    flip_a_byte(ws / "artifacts" / "loans" / "v2.skops")
    before = snapshot(ws)
    code, out, err = cli(capsys, ws, "deploy", "loans", "--version", "2")
    assert code == 1 and "v2.skops failed its integrity check" in out["error"]["message"]
    assert snapshot(ws) == before

    flip_a_byte(ws / "artifacts" / "loans" / "v1.skops")
    data = write_csv(tmp_path / "batch.csv", loans(20, seed=6))
    code, out, err = cli(capsys, ws, "predict", "loans", "--input", str(data), "--output", str(tmp_path / "out.csv"))
    assert code == 1 and "v1.skops failed its integrity check" in out["error"]["message"]
    assert "refusing to load it" in err and not (tmp_path / "out.csv").exists()
    code, out, err = cli(capsys, ws, "export", "loans", "--version", "1", "--output", str(tmp_path / "copy.skops"))
    assert code == 1 and not (tmp_path / "copy.skops").exists()


def test_a_missing_model_file_is_an_integrity_error(ws):
    with pytest.raises(IntegrityError, match="is missing"):
        artifacts.load_model(ws / "artifacts" / "loans" / "v9.skops", "0" * 64)


def test_the_sha256_is_checked_before_anything_is_read(tmp_path, monkeypatch):
    path = tmp_path / "model.skops"
    digest = artifacts.dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)
    monkeypatch.setattr(sio, "get_untrusted_types", lambda **kw: pytest.fail("read a file that failed its hash"))
    monkeypatch.setattr(sio, "load", lambda *a, **kw: pytest.fail("loaded a file that failed its hash"))
    with pytest.raises(IntegrityError, match="integrity check"):
        artifacts.load_model(path, "f" * 64)
    monkeypatch.undo()
    assert artifacts.load_model(path, digest).predict([[1.0]]).tolist() == [1]


def test_dump_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.skops"

    def failing_dump(model, file):
        Path(file).write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(sio, "dump", failing_dump)
    with pytest.raises(OSError, match="disk full"):
        artifacts.dump_model(LogisticRegression(), path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- trusted types
def test_import_refuses_untrusted_types_unless_accepted(capsys, ws, tmp_path, store):
    X, y = training_data(ws)
    model_path = tmp_path / "knn.skops"
    sio.dump(outside_model(KNeighborsClassifier(n_neighbors=5, algorithm="kd_tree")).fit(X, y), model_path)
    assert artifacts.untrusted_types(model_path) == KNN_TYPES

    before = snapshot(ws)
    code, out, err = cli(capsys, ws, "import", "loans", str(model_path))
    assert code == 2
    message = out["error"]["message"]
    assert message.startswith("knn.skops: holds type(s) outside Keel's trusted list: ")
    assert all(t in message for t in KNN_TYPES) and "--trust TYPE" in message
    assert snapshot(ws) == before

    code, out, err = cli(capsys, ws, "import", "loans", str(model_path), "--trust", KNN_TYPES[0])
    assert code == 2 and KNN_TYPES[1] in out["error"]["message"] and KNN_TYPES[0] not in out["error"]["message"]
    assert snapshot(ws) == before

    code, out, err = cli(capsys, ws, "import", "loans", str(model_path), "--trust", KNN_TYPES[0],
                         "--trust", KNN_TYPES[1])
    assert code == 0, err
    assert out["version"] == 2 and out["accepted_types"] == KNN_TYPES and 0 <= out["metrics"]["accuracy"] <= 1

    # the accepted types belong to v2 alone: Keel's own list is unchanged
    assert not set(KNN_TYPES) & set(artifacts.KEEL_TRUSTED_TYPES)
    keel = Keel.open(ws)
    try:
        record = store(keel).model_version(keel.project("loans").id, 2)
        assert list(record.extra_trusted_types) == KNN_TYPES
        with pytest.raises(IntegrityError, match="untrusted type"):
            artifacts.load_model(ws / record.artifact_path, record.sha256)
    finally:
        keel.close()
    assert cli(capsys, ws, "deploy", "loans", "--version", "2")[0] == 0
    data = write_csv(tmp_path / "batch.csv", loans(20, seed=7))
    code, out, err = cli(capsys, ws, "predict", "loans", "--input", str(data), "--output", str(tmp_path / "o.csv"))
    assert code == 0 and out["version"] == 2


def plus_one(values):
    return values + 1


def test_a_custom_function_in_a_model_file_is_refused(capsys, ws, tmp_path):
    X, y = training_data(ws)
    model_path = tmp_path / "custom.skops"
    numeric_step = Pipeline([("shift", FunctionTransformer(plus_one)), ("scale", StandardScaler())])
    model = outside_model(LogisticRegression(), numeric_step=numeric_step)
    sio.dump(model.fit(X, y), model_path)
    before = snapshot(ws)
    code, out, err = cli(capsys, ws, "import", "loans", str(model_path))
    assert code == 2 and "plus_one" in out["error"]["message"]
    assert snapshot(ws) == before


def test_a_file_that_is_not_a_skops_model_is_refused_on_import(capsys, ws, tmp_path):
    fake = tmp_path / "fake.skops"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = cli(capsys, ws, "import", "loans", str(fake))
    assert code == 2 and out["error"]["message"].startswith("fake.skops: not a readable skops model file")


# --------------------------------------------------------------------------- export / import
def test_export_then_import_round_trips(capsys, ws, tmp_path):
    code, exported, err = cli(capsys, ws, "export", "loans", "--version", "1", "--output", str(tmp_path))
    assert code == 0, err
    copy = Path(exported["path"])
    assert copy == tmp_path / "loans-v1.skops"
    assert (copy.read_bytes() == (ws / "artifacts" / "loans" / "v1.skops").read_bytes())
    assert exported["sha256"] == artifacts.sha256_file(copy)

    code, imported, err = cli(capsys, ws, "import", "loans", str(copy))
    assert code == 0, err
    assert imported["version"] == 2 and imported["accepted_types"] == []

    keel = Keel.open(ws)
    try:
        v1, v2 = keel.load_version("loans", 1), keel.load_version("loans", 2)
        X, _ = training_data(ws)
        np.testing.assert_array_equal(v1.model.predict_proba(X), v2.model.predict_proba(X))
        assert v2.model_version.sha256 == v1.model_version.sha256
        assert v2.model_version.notes == "imported from loans-v1.skops"
        kinds = [e.kind for e in keel.history("loans").events]
        assert kinds[-2:] == ["model_exported", "model_imported"]
    finally:
        keel.close()


# --------------------------------------------------------------------------- no pickle
UNPICKLERS = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}


def pickle_loads_in(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else ""
            if base in UNPICKLERS and node.attr in {"load", "loads", "Unpickler", "open"}:
                found.append(f"{base}.{node.attr}")
            if node.attr == "read_pickle":
                found.append("read_pickle")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.keyword) and node.arg in {"allow_pickle", "trusted"}:
            if isinstance(node.value, ast.Constant) and node.value.value is True:
                found.append(f"{node.arg}=True")
    return found


def test_the_scanner_catches_the_usual_spellings():
    assert pickle_loads_in("import pickle\npickle.load(f)\njoblib.load('m')\npd.read_pickle(p)\n"
                           "np.load(p, allow_pickle=True)\nsio.load(p, trusted=True)") == [
        "import pickle", "pickle.load", "joblib.load", "read_pickle", "allow_pickle=True", "trusted=True"]


def test_no_module_of_the_app_can_unpickle():
    offenders = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        found = pickle_loads_in(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
