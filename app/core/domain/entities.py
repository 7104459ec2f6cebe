"""The things Keel keeps and passes between its layers, as typed values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on and the dataset versions they come from."""

    frame: pd.DataFrame
    dataset_versions: list[int]
    sampling: dict | None = None  # how the rows were sampled to fit the training memory budget (None: all rows)


@dataclass(frozen=True)
class Event:
    """One line of the audit log: append-only (a project deleted later keeps its events, with
    project_id None and its name in project_name)."""

    id: int
    project_id: int | None
    project_name: str | None
    at: str  # UTC, ISO 8601
    kind: str
    by: str
    message: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The event at an edge (--json, a table row): every field under its own name."""
        return {"id": self.id, "project_id": self.project_id, "project_name": self.project_name, "at": self.at,
                "kind": self.kind, "by": self.by, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class ModelVersion:
    """One registered model: its file (sha256-checked), the run that trained it, its aliases."""

    id: int
    project_id: int
    version: int
    run_id: int | None  # None: imported, not trained here
    artifact_path: str  # relative to the workspace root
    sha256: str
    extra_trusted_types: tuple[str, ...]  # types accepted beyond Keel's own list, for this version only
    notes: str
    archived: bool
    created_at: str  # UTC, ISO 8601
    pruned_at: str | None  # its file removed by retention (the row stays)
    aliases: tuple[str, ...]  # sorted: "champion", "challenger"

    @classmethod
    def from_row(cls, row: Mapping[str, Any], aliases: Iterable[str] = ()) -> ModelVersion:
        """From a model_versions row (extra_trusted_types_json still encoded) and its aliases."""
        return cls(id=row["id"], project_id=row["project_id"], version=row["version"], run_id=row["run_id"],
                   artifact_path=row["artifact_path"], sha256=row["sha256"],
                   extra_trusted_types=tuple(json.loads(row["extra_trusted_types_json"] or "[]")),
                   notes=row["notes"], archived=bool(row["archived"]), created_at=row["created_at"],
                   pruned_at=row.get("pruned_at"), aliases=tuple(sorted(aliases)))

    def to_dict(self) -> dict[str, Any]:
        """The version at an edge, under the keys its dict always had."""
        return {"id": self.id, "project_id": self.project_id, "version": self.version, "run_id": self.run_id,
                "artifact_path": self.artifact_path, "sha256": self.sha256, "notes": self.notes,
                "archived": self.archived, "created_at": self.created_at, "pruned_at": self.pruned_at,
                "extra_trusted_types": list(self.extra_trusted_types), "aliases": list(self.aliases)}


@dataclass(frozen=True)
class Alert:
    """One alert: opened when a rule fires, closed once (recovered, or acknowledged by a user)."""

    id: int
    project_id: int
    rule: str
    severity: str  # critical | error | warning | info
    opened_at: str  # UTC, ISO 8601
    message: str
    status: str  # open | acknowledged | recovered
    closed_at: str | None
    details: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        """From an alerts row (details_json still encoded)."""
        return cls(id=row["id"], project_id=row["project_id"], rule=row["rule"], severity=row["severity"],
                   opened_at=row["opened_at"], message=row["message"], status=row["status"],
                   closed_at=row["closed_at"], details=json.loads(row["details_json"] or "{}"))

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def headline(self) -> dict[str, Any]:
        """What `status --json` lists of an open alert: id, rule, severity, opened_at, message."""
        return {"id": self.id, "rule": self.rule, "severity": self.severity, "opened_at": self.opened_at,
                "message": self.message}

    def to_dict(self) -> dict[str, Any]:
        """Every column under its own name (details decoded): a table row, a report."""
        return {**self.headline(), "project_id": self.project_id, "status": self.status,
                "closed_at": self.closed_at, "details": self.details}


@dataclass(frozen=True)
class Deployment:
    """One move of the production pointer: a deploy, or a rollback to an earlier deployment's model."""

    id: int
    project_id: int
    model_version_id: int
    replaced_deployment_id: int | None  # the deployment it replaced (a rollback: the one it restores)
    deployed_at: str  # UTC, ISO 8601
    by: str  # user | policy
    reason: str
    is_rollback: bool
    version: int  # the model version's number

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Deployment:
        """From a deployments row joined with its model version's number (as `version`)."""
        return cls(id=row["id"], project_id=row["project_id"], model_version_id=row["model_version_id"],
                   replaced_deployment_id=row["replaced_deployment_id"], deployed_at=row["deployed_at"],
                   by=row["by"], reason=row["reason"], is_rollback=bool(row["is_rollback"]), version=row["version"])

    def to_dict(self) -> dict[str, Any]:
        """The deployment at an edge (a table row), under the keys its dict always had."""
        return {"id": self.id, "project_id": self.project_id, "model_version_id": self.model_version_id,
                "replaced_deployment_id": self.replaced_deployment_id, "deployed_at": self.deployed_at,
                "by": self.by, "reason": self.reason, "is_rollback": self.is_rollback, "version": self.version}
