"""What `export --format mlflow` and `push` print and write stays as it is: the --json documents
(keys in order, the deterministic values), the human lines, and every file of the MLflow model
directory byte for byte (tests/fixtures/mlflow_export_expected, with the values that depend on
this machine's libraries, the model file and the clock filled in), on disk and as uploaded."""

import dataclasses
import hashlib
import pickle
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import pytest
import yaml
from cli_helpers import cli
from fake_mlflow_server import FakeMlflowServer
from loop_helpers import make_project
from store_helpers import opened_store

from app.core.services.lifecycle import Keel

EXPECTED = Path(__file__).parent / "fixtures" / "mlflow_export_expected"
EXPORT_KEYS = ["version", "path", "format", "sha256", "files", "requirements"]
PUSH_KEYS = ["project", "tracking_uri", "experiment_id", "registered_model", "versions", "alias", "added"]
PUSHED_VERSION_KEYS = ["version", "run_id", "model_version", "run_created", "model_version_created"]
ALIAS_KEYS = ["alias", "keel_version", "model_version", "changed"]
MODEL_FILES = ["MLmodel", "conda.yaml", "input_example.json", "model.skops", "python_env.yaml", "requirements.txt",
               "serving_input_example.json"]
LIBRARIES = ["scikit-learn", "skops", "numpy", "pandas", "scipy"]
RUN_TAG_KEYS = ["keel.project", "keel.version", "keel.sha256", "keel.task", "keel.target", "keel.metric",
                "keel.preset", "keel.run_kind", "keel.dataset_versions", "keel.training_data", "keel.trained_by",
                "keel.trained", "keel.archived", "keel.library_versions", "mlflow.source.name", "mlflow.source.type",
                "mlflow.note.content"]
TIME_CREATED = re.compile(r"^utc_time_created: '(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})'$", re.MULTILINE)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two trained versions of `loan`, v2 in production: (workspace, {version: (sha256, libraries, run)})."""
    from importlib import metadata

    workspace = tmp_path_factory.mktemp("mlflow-output") / "workspace"
    keel = make_project(workspace)
    keel.deploy("loan", keel.train("loan").version)
    try:
        with opened_store(keel) as registry:
            project_id = keel.project("loan").id
            facts = {}
            for model_version in registry.model_versions(project_id):
                run = registry.run(model_version.run_id)
                # a library the run did not record is pinned at the version installed
                libraries = {name: metadata.version(name) for name in LIBRARIES} | run.library_versions
                facts[model_version.version] = (model_version.sha256, libraries, run)
    finally:
        keel.close()
    return workspace, facts


def yaml_scalar(value: object) -> str:
    return yaml.safe_dump(value).removesuffix("\n...\n").removesuffix("\n")


def expected_files(directory: Path, version: int, sha256: str, libraries: dict, run_id: str | None) -> dict[str, bytes]:
    """The fixture's files with this machine's values in; the creation time is the one written (checked apart)."""
    written = (directory / "MLmodel").read_text(encoding="utf-8")
    created = TIME_CREATED.search(written)
    assert created, written
    values = {key.replace("-", "_"): libraries[key] for key in LIBRARIES} | {
        "python": libraries["python"], "version": version, "sha256": sha256, "run_id": yaml_scalar(run_id),
        "model_uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"keel:{sha256}").hex,
        "model_size_bytes": sum((directory / name).stat().st_size for name in MODEL_FILES if name != "MLmodel"),
        "utc_time_created": f"'{created.group(1)}'"}
    files = {path.name: Template(path.read_text(encoding="utf-8")).substitute(values).encode("utf-8")
             for path in EXPECTED.iterdir()}
    return files | {"model.skops": (directory / "model.skops").read_bytes()}


def test_export_mlflow_prints_its_document_and_writes_the_files_it_always_has(capsys, project, tmp_path):
    workspace, facts = project
    sha256, libraries, _ = facts[1]
    output = tmp_path / "loan-v1"
    before = datetime.now(UTC).replace(tzinfo=None)
    code, printed, _ = cli(capsys, workspace, "export", "loan", "--version", "1", "--format", "mlflow",
                           "--output", str(output))
    assert code == 0 and list(printed) == EXPORT_KEYS
    assert printed == {"version": 1, "path": str(output), "format": "mlflow", "sha256": sha256, "files": MODEL_FILES,
                       "requirements": ["mlflow>=3.14", *(f"{name}=={libraries[name]}" for name in LIBRARIES)]}
    assert sorted(p.name for p in output.iterdir()) == MODEL_FILES
    written = {name: (output / name).read_bytes() for name in MODEL_FILES}
    assert written == expected_files(output, 1, sha256, libraries, run_id=None)
    assert hashlib.sha256(written["model.skops"]).hexdigest() == sha256
    created = datetime.fromisoformat(TIME_CREATED.search(written["MLmodel"].decode()).group(1))
    assert before <= created <= datetime.now(UTC).replace(tzinfo=None)

    code, human, _ = cli(capsys, workspace, "export", "loan", "--version", "1", "--format", "mlflow",
                         "--output", str(tmp_path / "again"), as_json=False)
    assert code == 0 and human == f"v1 exported as an MLflow model directory -> {tmp_path / 'again'}\n"


def test_push_prints_its_document_and_sends_the_runs_and_files_it_always_has(capsys, project, tmp_path):
    workspace, facts = project
    with FakeMlflowServer() as server:
        code, printed, _ = cli(capsys, workspace, "push", "loan", "--tracking-uri", server.uri, "--all")
        assert code == 0 and list(printed) == PUSH_KEYS
        assert [list(item) for item in printed["versions"]] == [PUSHED_VERSION_KEYS] * 2
        assert list(printed["alias"]) == ALIAS_KEYS
        runs = {run["info"]["run_id"]: run for run in server.active_runs()}
        run_ids = [item["run_id"] for item in printed["versions"]]
        assert printed == {
            "project": "loan", "tracking_uri": server.uri, "experiment_id": "1", "registered_model": "loan",
            "versions": [{"version": version, "run_id": run_id, "model_version": str(version), "run_created": True,
                          "model_version_created": True} for version, run_id in zip((1, 2), run_ids, strict=True)],
            "alias": {"alias": "production", "keel_version": 2, "model_version": "2", "changed": True}, "added": 5}
        assert set(run_ids) == set(runs)
        for version, run_id in zip((1, 2), run_ids, strict=True):
            check_the_run(runs[run_id], version, facts[version], server, tmp_path)

        code, human, _ = cli(capsys, workspace, "push", "loan", "--tracking-uri", server.uri, "--all", as_json=False)
    assert code == 0 and human == (f"v1: run {run_ids[0]}, loan version 1 (already there)\n"
                                   f"v2: run {run_ids[1]}, loan version 2 (already there)\n"
                                   f"alias production -> version 2 (Keel v2), unchanged\n"
                                   f"0 change(s) on {server.uri}\n")


def check_the_run(run: dict, version: int, facts: tuple, server: FakeMlflowServer, tmp_path: Path) -> None:
    """A pushed run: its name, times, tags, params and metrics; its uploaded model directory, file for file."""
    sha256, libraries, keel_run = facts
    info = run["info"]
    assert (info["run_name"], info["status"]) == (f"loan-v{version}", "FINISHED")
    millis = [int(datetime.fromisoformat(at).timestamp() * 1000) for at in (keel_run.started_at, keel_run.finished_at)]
    assert [info["start_time"], info["end_time"]] == millis
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert list(tags) == RUN_TAG_KEYS
    description = f"Keel project loan, model v{version} (classification, target default)"
    assert {key: tags[key] for key in RUN_TAG_KEYS if key not in ("keel.training_data", "keel.trained",
                                                                  "keel.library_versions")} == {
        "keel.project": "loan", "keel.version": str(version), "keel.sha256": sha256, "keel.task": "classification",
        "keel.target": "default", "keel.metric": "accuracy", "keel.preset": "logreg", "keel.run_kind": "train",
        "keel.dataset_versions": "1", "keel.trained_by": "user", "keel.archived": "false",
        "mlflow.source.name": "keel", "mlflow.source.type": "LOCAL", "mlflow.note.content": description}
    assert tags["keel.training_data"].startswith('[{"version": 1, "source": "loan-initial.csv", "rows": 800, ')
    assert tags["keel.trained"].startswith(f"v{version} trained")
    assert yaml.safe_load(tags["keel.library_versions"]) == keel_run.library_versions
    params = [p["key"] for p in run["data"]["params"]]
    assert params == sorted(params) and {"C", "test_rows"} <= set(params)
    assert {m["key"] for m in run["data"]["metrics"]} == {"accuracy", "balanced_accuracy", "f1_macro", "log_loss",
                                                          "roc_auc"}
    assert all(m["timestamp"] == millis[1] for m in run["data"]["metrics"])
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/") + "/model/"
    uploaded = {path.removeprefix(root): data for path, data in server.artifacts.items() if path.startswith(root)}
    assert sorted(uploaded) == MODEL_FILES
    directory = tmp_path / f"uploaded-v{version}"
    directory.mkdir()
    for name, data in uploaded.items():
        (directory / name).write_bytes(data)
    assert uploaded == expected_files(directory, version, sha256, libraries, run_id=info["run_id"])


def test_export_and_push_hand_frozen_typed_results_that_pickle_and_print_as_the_cli_shows(project, tmp_path):
    from app.adapters import mlflow_push
    from app.core.domain.handoff import MlflowExport, PushResult, RunRecord, VersionFacts

    workspace, facts = project
    keel = Keel.open(workspace)
    try:
        exported = keel.mlflow.export_mlflow("loan", 1, tmp_path / "loan-v1")
        record = keel.mlflow.run_record("loan", 2)
        version_facts = keel.mlflow.version_facts("loan", 2)
        with FakeMlflowServer() as server:
            pushed = mlflow_push.push(keel, "loan", server.uri, version=1)
    finally:
        keel.close()
    assert isinstance(exported, MlflowExport) and list(exported.to_json()) == EXPORT_KEYS
    assert (exported.version, exported.path, exported.sha256) == (1, str(tmp_path / "loan-v1"), facts[1][0])
    assert exported.directory.files == tuple(MODEL_FILES)
    assert isinstance(record, RunRecord) and record.sha256 == facts[2][0] and record.tags["keel.version"] == "2"
    assert isinstance(version_facts, VersionFacts) and version_facts.artifact.is_file()
    assert version_facts.in_run("abc").mlflow_run_id == "abc" and version_facts.mlflow_run_id is None
    assert isinstance(pushed, PushResult) and list(pushed.to_json()) == PUSH_KEYS
    assert [(v.version, v.changed) for v in pushed.versions] == [(1, True)]
    assert (pushed.alias.keel_version, pushed.alias.model_version, pushed.added) == (2, None, 2)
    for result in (exported, record, version_facts, pushed):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.version = 3  # type: ignore[misc, union-attr]
        assert pickle.loads(pickle.dumps(result)) == result  # crosses the window's child process as it is
