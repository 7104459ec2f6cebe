"""`export --format mlflow`: an MLflow model directory checked against the one MLflow itself writes
(tests/fixtures/mlflow_reference_model, by MLflow 3.17.2) and MLflow's documented fields; no MLflow needed."""

import hashlib
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from loop_helpers import cli, make_project
from store_helpers import opened_store

from app.core.ml import datasets

REFERENCE = Path(__file__).parent / "fixtures" / "mlflow_reference_model"
# MLflow's DataType names (mlflow.types.DataType), the only types a column spec may have.
MLFLOW_DATA_TYPES = {"boolean", "integer", "long", "float", "double", "string", "binary", "datetime"}
# Written by MLflow about itself, which Keel does not run.
MLFLOW_OWN_FIELDS = {"mlflow_version", "prompts"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A deployed project and its v1 exported as an MLflow model: (workspace, directory, --json result)."""
    root = tmp_path_factory.mktemp("mlflow-export")
    workspace = root / "workspace"
    make_project(workspace).close()
    directory = root / "loan-v1"
    import io
    from contextlib import redirect_stdout

    from app.frontends.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--workspace", str(workspace), "export", "loan", "--version", "1", "--format", "mlflow",
                     "--output", str(directory), "--json"])
    assert code == 0, out.getvalue()
    return workspace, directory, json.loads(out.getvalue())


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def keel_version(workspace: Path):
    from app.core.services.lifecycle import Keel

    keel = Keel.open(workspace)
    try:
        loaded = keel.load_version("loan", 1)
        with opened_store(keel) as registry:
            run = registry.run(loaded.model_version.run_id)
        return loaded, run, keel.reference_frame("loan", 1)
    finally:
        keel.close()


def test_the_directory_has_the_files_mlflow_writes(exported):
    _, directory, result = exported
    ours = {p.name for p in directory.iterdir()}
    theirs = {p.name for p in REFERENCE.iterdir() if p.name != "README.md"} | {"model.skops"}
    assert ours == theirs and set(result["files"]) == ours
    assert not any(name.endswith((".pkl", ".pickle")) for name in ours)
    assert not list(directory.parent.glob(".*partial*"))


def test_mlmodel_has_mlflows_fields_and_flavors(exported):
    _, directory, _ = exported
    ours, theirs = read_yaml(directory / "MLmodel"), read_yaml(REFERENCE / "MLmodel")
    assert set(theirs) - MLFLOW_OWN_FIELDS <= set(ours)
    assert set(ours["flavors"]) == set(theirs["flavors"]) == {"python_function", "sklearn"}
    for flavor in ours["flavors"]:
        assert set(ours["flavors"][flavor]) == set(theirs["flavors"][flavor]), flavor
    pyfunc, sklearn_flavor = ours["flavors"]["python_function"], ours["flavors"]["sklearn"]
    assert pyfunc["loader_module"] == "mlflow.sklearn" and pyfunc["predict_fn"] == "predict"
    assert (directory / pyfunc["env"]["conda"]).is_file() and (directory / pyfunc["env"]["virtualenv"]).is_file()
    assert sklearn_flavor["serialization_format"] == "skops"
    assert sklearn_flavor["pickled_model"] == pyfunc["model_path"] == "model.skops"
    assert all(isinstance(t, str) for t in sklearn_flavor["skops_trusted_types"])
    info = ours["saved_input_example_info"]
    assert info == {**theirs["saved_input_example_info"]}  # same file names, orient and type
    assert ours["model_size_bytes"] == sum(p.stat().st_size for p in directory.iterdir() if p.name != "MLmodel")


def test_the_model_file_is_the_versions_own_skops_file(exported):
    workspace, directory, result = exported
    loaded, _, _ = keel_version(workspace)
    data = (directory / "model.skops").read_bytes()
    assert hashlib.sha256(data).hexdigest() == loaded.model_version.sha256 == result["sha256"]
    assert zipfile.is_zipfile(directory / "model.skops")  # skops' zip format, not a pickle stream


def test_loading_as_mlflow_does_predicts_what_keel_predicts(exported):
    """mlflow.sklearn loads `skops.io.load(model_path, trusted=skops_trusted_types)`; the pyfunc
    predicts on the input example's frame."""
    import skops.io

    workspace, directory, _ = exported
    flavor = read_yaml(directory / "MLmodel")["flavors"]["sklearn"]
    model = skops.io.load(directory / flavor["pickled_model"], trusted=flavor["skops_trusted_types"])
    loaded, _, reference = keel_version(workspace)
    frame = datasets.to_model_frame(reference, loaded.project.schema)
    assert (model.predict(frame) == loaded.model.predict(frame)).all()
    example = json.loads((directory / "input_example.json").read_text())
    example_frame = pd.DataFrame(example["data"], columns=example["columns"])
    assert list(model.predict(example_frame)) == list(loaded.model.predict(example_frame))


def test_signature_and_input_example_come_from_the_schema(exported):
    workspace, directory, _ = exported
    loaded, _, _ = keel_version(workspace)
    schema = loaded.project.schema
    signature = read_yaml(directory / "MLmodel")["signature"]
    inputs, outputs = json.loads(signature["inputs"]), json.loads(signature["outputs"])
    assert [c["name"] for c in inputs] == schema.features
    assert all(c["type"] in MLFLOW_DATA_TYPES and c["required"] is True for c in inputs + outputs)
    kinds = datasets.column_kinds(schema)
    assert {c["name"]: c["type"] for c in inputs} == {
        name: "string" if kinds[name] == "categorical" else "double" for name in schema.features}
    assert outputs == [{"type": "long", "required": True}]  # the demo target is 0/1
    example = json.loads((directory / "input_example.json").read_text())
    assert example["columns"] == schema.features and 1 <= len(example["data"]) <= 5
    serving = json.loads((directory / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": example}


def test_requirements_are_pinned_to_the_training_libraries(exported):
    workspace, directory, _ = exported
    _, run, _ = keel_version(workspace)
    lines = (directory / "requirements.txt").read_text().split()
    pins = dict(line.split("==") for line in lines if "==" in line)
    assert [line for line in lines if "==" not in line] == ["mlflow>=3.14"]
    for library in ("scikit-learn", "skops", "numpy", "pandas"):
        assert pins[library] == run.library_versions[library]
    assert "scipy" in pins
    conda, theirs = read_yaml(directory / "conda.yaml"), read_yaml(REFERENCE / "conda.yaml")
    assert set(conda) == set(theirs) and conda["name"] == theirs["name"] == "mlflow-env"
    assert f"python={run.library_versions['python']}" in conda["dependencies"]
    assert [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)] == [lines]
    python_env, theirs = read_yaml(directory / "python_env.yaml"), read_yaml(REFERENCE / "python_env.yaml")
    assert set(python_env) == set(theirs) and python_env["dependencies"] == ["-r requirements.txt"]
    assert python_env["python"] == run.library_versions["python"]


def test_export_refuses_an_existing_folder_or_one_inside_the_workspace(exported, tmp_path, capsys):
    workspace, directory, _ = exported
    before = sorted(p.name for p in directory.iterdir())
    code, out = cli(capsys, workspace, "export", "loan", "--version", "1", "--format", "mlflow",
                    "--output", str(directory))
    assert code == 2 and "already exists" in out["error"]["message"]
    assert sorted(p.name for p in directory.iterdir()) == before
    inside = workspace / "mlflow-model"
    code, out = cli(capsys, workspace, "export", "loan", "--version", "1", "--format", "mlflow",
                    "--output", str(inside))
    assert code == 2 and "inside the workspace" in out["error"]["message"] and not inside.exists()
    code, out = cli(capsys, workspace, "export", "loan", "--version", "7", "--format", "mlflow",
                    "--output", str(tmp_path / "x"))
    assert code == 2 and "unknown model version" in out["error"]["message"] and not (tmp_path / "x").exists()
