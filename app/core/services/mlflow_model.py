"""A Keel version as an MLflow model directory, written without MLflow.

The layout is the one `mlflow.sklearn.save_model(..., serialization_format="skops")`
writes (MLflow's "MLmodel format" and sklearn flavor docs):

    MLmodel                      flavors sklearn + python_function, signature, input example info
    model.skops                  the version's own skops file, byte for byte (never a pickle)
    requirements.txt             pinned: the libraries the version was trained with
    conda.yaml, python_env.yaml  the same requirements for MLflow's conda / virtualenv managers
    input_example.json           a few hold-out rows (pandas "split" orient)
    serving_input_example.json   the same rows as a `dataframe_split` scoring request

The model's inputs are the features as Keel's pipeline sees them after cleaning: numbers,
booleans (1.0 / 0.0) and datetimes (days since 1970-01-01) as doubles, categories as
strings. The signature says so, and MLflow enforces it when it scores.
"""

import json
import math
import os
import platform
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.core.domain.clock import Clock
from app.core.domain.entities import Schema
from app.core.domain.errors import KeelError
from app.core.domain.handoff import MlflowExport, ModelDirectory, RunRecord, VersionFacts
from app.core.ml import artifacts, datasets
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

MODEL_FILE = "model.skops"
INPUT_EXAMPLE_FILE = "input_example.json"
SERVING_INPUT_FILE = "serving_input_example.json"
EXAMPLE_ROWS = 5
# skops in the sklearn flavor: since late 2025; the default from 3.14 (bench/mlflow_interop.py checks 3.17).
MLFLOW_REQUIREMENT = "mlflow>=3.14"
# A library the version's run did not record (older runs, imported models): today's version.
PINNED_LIBRARIES = {"scikit-learn": "sklearn", "skops": "skops", "numpy": "numpy", "pandas": "pandas",
                    "scipy": "scipy"}


def signature_inputs(schema: Schema) -> list[dict]:
    """MLflow column specs for the model's input frame (datasets.to_model_frame)."""
    kinds = datasets.column_kinds(schema)
    return [{"type": "string" if kinds[name] == "categorical" else "double", "name": name, "required": True}
            for name in schema.features]


def signature_outputs(schema: Schema) -> list[dict]:
    if schema.task == "regression":
        return [{"type": "double", "required": True}]
    return [{"type": {"integer": "long", "float": "double"}.get(schema.target_kind, "string"), "required": True}]


def pinned_requirements(library_versions: dict[str, str]) -> list[str]:
    """`name==version` for each library the model needs, as the version was trained with."""
    from importlib import metadata

    pins = []
    for distribution, module in PINNED_LIBRARIES.items():
        version = library_versions.get(distribution)
        if version is None:
            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = __import__(module).__version__
        pins.append(f"{distribution}=={version}")
    return [MLFLOW_REQUIREMENT, *pins]


def mlmodel(facts: VersionFacts, model_bytes: int, python_version: str, created: datetime) -> dict:
    """The MLmodel document (MLflow's documented fields, as mlflow.sklearn.save_model writes them)."""
    return {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": MODEL_FILE,
                "predict_fn": "predict",
                "python_version": python_version,
            },
            "sklearn": {
                "code": None,
                "pickled_model": MODEL_FILE,  # MLflow's name for the key, whatever the format
                "serialization_format": "skops",
                "sklearn_version": facts.library_versions.get("scikit-learn"),
                "skops_trusted_types": list(facts.trusted_types),
            },
        },
        "is_signature_from_type_hint": False,
        "metadata": {"keel_project": facts.project, "keel_version": facts.version,
                     "keel_sha256": facts.sha256, "keel_model_inputs": "features after Keel's cleaning"},
        "model_size_bytes": model_bytes,
        "model_id": None,
        "model_uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"keel:{facts.sha256}").hex,
        "run_id": facts.mlflow_run_id,
        "saved_input_example_info": {"artifact_path": INPUT_EXAMPLE_FILE, "pandas_orient": "split",
                                     "serving_input_path": SERVING_INPUT_FILE, "type": "dataframe"},
        "signature": {"inputs": json.dumps(signature_inputs(facts.schema)),
                      "outputs": json.dumps(signature_outputs(facts.schema)),
                      "params": None},
        "type_hint_from_example": False,
        "utc_time_created": created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }


def environment_files(requirements: list[str], python_version: str) -> dict[str, str]:
    import yaml

    conda = {"channels": ["conda-forge"],
             "dependencies": [f"python={python_version}", "pip", {"pip": requirements}], "name": "mlflow-env"}
    python_env = {"python": python_version, "build_dependencies": ["pip", "setuptools", "wheel"],
                  "dependencies": ["-r requirements.txt"]}
    return {"requirements.txt": "\n".join(requirements) + "\n",
            "conda.yaml": yaml.safe_dump(conda, default_flow_style=False, sort_keys=False),
            "python_env.yaml": yaml.safe_dump(python_env, default_flow_style=False, sort_keys=False)}


MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def _param_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_CHARS]


def _millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


class MlflowModelService:
    """A Keel model version as an MLflow model and an MLflow run (Keel.mlflow)."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData, clock: Clock) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._clock = clock

    def export_mlflow(self, name: str, version: int, output: str | os.PathLike) -> MlflowExport:
        """`export NAME --version N --format mlflow --output DIR`: DIR must not exist yet, outside the workspace."""
        from app.core.services.paths import check_output_path

        destination = check_output_path(self._workspace.root, output).resolve()
        if destination.exists():
            raise KeelError(f"--output {output}: already exists; an MLflow model directory is written to a new folder")
        if not destination.parent.is_dir():
            raise KeelError(f"--output {output}: its folder {destination.parent} does not exist")
        facts = self.version_facts(name, version)
        try:
            written = self.write_model_directory(name, version, destination, facts)
        except OSError as exc:
            raise KeelError(f"cannot write {destination}: {exc.strerror or exc}") from None
        project = self._data.project(name)
        with self._registry.transaction():
            self._registry.add_event(project, "model_exported", f"v{version} exported as an MLflow model to {destination}",
                                     "user", {"version": version, "format": "mlflow", "output": str(destination)})
        return MlflowExport(version=version, path=str(destination), sha256=facts.sha256, directory=written)

    def version_facts(self, name: str, version: int) -> VersionFacts:
        """What an MLflow model (and an MLflow run) says about a version: identity, trust, lineage."""
        loaded = self._data.load_version(name, version)  # checks the hash and the trusted types first
        model_version = loaded.model_version
        run = self._registry.run(model_version.run_id) if model_version.run_id else None
        return VersionFacts(
            project=name, version=version, sha256=model_version.sha256,
            artifact=self._workspace.root / model_version.artifact_path,
            trusted_types=tuple(sorted(set(artifacts.KEEL_TRUSTED_TYPES) | set(model_version.extra_trusted_types))),
            library_versions=dict(run.library_versions) if run else {}, created_at=model_version.created_at,
            schema=loaded.project.schema)

    def write_model_directory(self, name: str, version: int, destination: Path,
                              facts: VersionFacts | None = None) -> ModelDirectory:
        """Write the MLflow model directory of a version into destination (a new folder; it must not exist)."""
        import yaml

        facts = facts or self.version_facts(name, version)
        python_version = facts.library_versions.get("python") or platform.python_version()
        requirements = pinned_requirements(facts.library_versions)
        example = self._example_rows(name, version, facts.schema)
        staging = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            shutil.copyfile(facts.artifact, staging / MODEL_FILE)
            files = environment_files(requirements, python_version)
            files[INPUT_EXAMPLE_FILE] = json.dumps(example)
            files[SERVING_INPUT_FILE] = json.dumps({"dataframe_split": example}, indent=2)
            for file_name, text in files.items():
                (staging / file_name).write_text(text, encoding="utf-8")
            size = sum(p.stat().st_size for p in staging.iterdir())
            document = mlmodel(facts, size, python_version, self._clock.moment())
            (staging / "MLmodel").write_text(yaml.safe_dump(document, default_flow_style=False), encoding="utf-8")
            os.replace(staging, destination)  # the folder appears whole or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return ModelDirectory(files=tuple(sorted(p.name for p in destination.iterdir())),
                              requirements=tuple(requirements))

    def run_record(self, name: str, version: int) -> RunRecord:
        """A version as an MLflow run: params, metrics and tags with Keel's lineage (times in ms)."""
        project = self._data.project(name)
        registry = self._registry
        model_version = registry.model_version(project.id, version)
        run = registry.run(model_version.run_id) if model_version.run_id else None
        params = registry.run_params(run.id) if run else {}
        metrics = self._data.model_metrics(model_version)
        used = set(run.dataset_versions) if run else set()
        lineage = [{"version": d.version, "source": d.source, "rows": d.rows,
                    "labelled_rows": d.labelled_rows, "sha256": d.content_sha256}
                   for d in registry.dataset_versions(project.id) if d.version in used]
        trained = registry.version_created_event(project.id, version)
        tags = {
            "keel.project": name, "keel.version": str(version), "keel.sha256": model_version.sha256,
            "keel.task": project.task, "keel.target": project.target, "keel.metric": project.metric,
            "keel.preset": (run.preset if run else None) or "", "keel.run_kind": run.kind if run else "",
            "keel.dataset_versions": ",".join(str(d["version"]) for d in lineage),
            "keel.training_data": json.dumps(lineage)[:MAX_PARAM_CHARS],
            "keel.trained_by": trained.by if trained else "", "keel.trained": trained.message if trained else "",
            "keel.archived": str(model_version.archived).lower(),
            "keel.library_versions": json.dumps(run.library_versions if run else {}),
            "mlflow.source.name": "keel", "mlflow.source.type": "LOCAL",
        }
        return RunRecord(
            params={key: _param_text(value) for key, value in sorted(params.items())},
            metrics={key: value for key, value in metrics.items() if value is not None and math.isfinite(value)},
            tags=tags,
            start_ms=_millis((run.started_at if run else None) or model_version.created_at),
            end_ms=_millis((run.finished_at if run else None) or model_version.created_at),
            description=f"Keel project {name}, model v{version} ({project.task}, target {project.target})",
        )

    def _example_rows(self, name: str, version: int, schema: Schema) -> dict:
        """A few hold-out rows in pandas' split orient; missing values as null (JSON has no NaN)."""
        reference = self._data.reference_frame(name, version)
        if reference is None:
            reference = self._data.training_frame(name)[0]
        elif "__split__" in reference:
            holdout = reference[reference["__split__"] == "holdout"]
            reference = holdout if len(holdout) else reference
        frame = datasets.to_model_frame(reference.head(EXAMPLE_ROWS), schema)
        rows = [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
                for row in frame.astype(object).itertuples(index=False, name=None)]
        return {"columns": list(frame.columns), "data": rows}
