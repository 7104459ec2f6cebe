"""What Keel hands to the world outside it, as typed values: a version as an MLflow model and an
MLflow run (export --format mlflow, push) and the HTML report's contents. Frozen, so they cross a
thread or a child process as they are; the results a front end prints have to_json(), the
document `--json` shows, under the keys docs/cli.md promises, in the order they have always come."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from app.core.domain.entities import Schema


# --------------------------------------------------------------------------- MLflow
@dataclass(frozen=True)
class VersionFacts:
    """What an MLflow model (and an MLflow run) says about a model version: identity, trust,
    lineage. Read once the version's file has been checked (its hash and trusted types)."""

    project: str
    version: int
    sha256: str
    artifact: Path  # the version's skops file in the workspace
    trusted_types: tuple[str, ...]
    library_versions: dict[str, str]  # library -> version the run was trained with (python included)
    created_at: str  # UTC, ISO 8601
    schema: Schema
    mlflow_run_id: str | None = None  # the MLflow run the model directory belongs to (push), None: none

    def in_run(self, run_id: str) -> VersionFacts:
        """The same facts for a model directory logged in the MLflow run run_id."""
        return replace(self, mlflow_run_id=run_id)


@dataclass(frozen=True)
class ModelDirectory:
    """An MLflow model directory written: its files' names (sorted) and its pinned requirements."""

    files: tuple[str, ...]
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class MlflowExport:
    """`export --format mlflow`: a version written as an MLflow model directory at path."""

    version: int
    path: str
    sha256: str
    directory: ModelDirectory

    format: ClassVar[str] = "mlflow"

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "path": self.path, "format": self.format, "sha256": self.sha256,
                "files": list(self.directory.files), "requirements": list(self.directory.requirements)}


@dataclass(frozen=True)
class RunRecord:
    """A model version as an MLflow run. params, metrics and tags are mappings of one value type
    (name -> text, name -> number, name -> text), as MLflow's API takes them; times in ms."""

    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_ms: int
    end_ms: int
    description: str

    @property
    def sha256(self) -> str:
        """The model file's sha256, as the run's tags carry it."""
        return self.tags["keel.sha256"]


@dataclass(frozen=True)
class PushedVersion:
    """One version after a push: its MLflow run and registered model version, and whether each was made now."""

    version: int
    run_id: str
    model_version: str  # MLflow's number for it in the registered model
    run_created: bool
    model_version_created: bool

    @property
    def changed(self) -> bool:
        return self.run_created or self.model_version_created

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "run_id": self.run_id, "model_version": self.model_version,
                "run_created": self.run_created, "model_version_created": self.model_version_created}


@dataclass(frozen=True)
class ProductionAlias:
    """The registered model's `production` alias after a push (model_version None: the production
    version is not on the server)."""

    alias: str
    keel_version: int | None
    model_version: str | None
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"alias": self.alias, "keel_version": self.keel_version, "model_version": self.model_version,
                "changed": self.changed}


@dataclass(frozen=True)
class PushResult:
    """`push`: the versions on the MLflow server, the production alias and how many things changed."""

    project: str
    tracking_uri: str
    experiment_id: str
    registered_model: str
    versions: tuple[PushedVersion, ...]
    alias: ProductionAlias
    added: int  # runs, model versions and alias moves made by this push

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                "registered_model": self.registered_model, "versions": [v.to_json() for v in self.versions],
                "alias": self.alias.to_json(), "added": self.added}
