"""What the services' actions and reads hand back, as typed values (frozen, so they cross a thread
or a child process as they are). Each has to_json(): the document a front end prints (`--json`),
under the keys docs/cli.md promises, in the order they have always come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from app.core.domain.entities import Alert
from app.core.domain.settings import ProjectSettings


@runtime_checkable
class ShownAsJson(Protocol):
    """A result a front end prints as one JSON document."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class IngestResult:
    """A file ingested: the dataset version that holds it (a new one, or the one that already held
    the same content: duplicate_of)."""

    dataset_version: int
    rows: int
    labelled_rows: int
    warnings: tuple[str, ...]
    duplicate_of: int | None  # the version that already held this content (nothing stored); None: stored now

    @property
    def labelled(self) -> bool:
        """Whether the batch has labels (an unlabelled batch is monitored, never trained on)."""
        return self.labelled_rows > 0

    def to_json(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, "rows": self.rows, "labelled": self.labelled,
                "labelled_rows": self.labelled_rows, "warnings": list(self.warnings),
                "duplicate_of": self.duplicate_of}


@dataclass(frozen=True)
class VersionStatus:
    """One model version as `status` lists it."""

    version: int
    created_at: str  # UTC, ISO 8601
    metrics: dict[str, float]
    aliases: tuple[str, ...]
    in_production: bool
    archived: bool
    notes: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "created_at": self.created_at, "metrics": self.metrics,
                "aliases": list(self.aliases), "in_production": self.in_production, "archived": self.archived,
                "notes": self.notes}


@dataclass(frozen=True)
class DatasetStatus:
    """One dataset version as `status` lists it."""

    version: int
    rows: int
    labelled_rows: int
    source: str
    created_at: str  # UTC, ISO 8601

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "source": self.source, "created_at": self.created_at}


@dataclass(frozen=True)
class LastMonitoring:
    """The newest monitoring result's metric, measured and estimated."""

    at: str  # UTC, ISO 8601
    metric: str
    value: float | None
    estimated_value: float | None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "metric": self.metric, "value": self.value, "estimated_value": self.estimated_value}


@dataclass(frozen=True)
class PredictionLogStatus:
    """How many records the prediction log holds, from when to when, and its limits."""

    rows: int
    oldest_at: str | None
    newest_at: str | None
    share: float  # of the scored rows recorded (0: off)
    max_rows: int
    max_days: float

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "oldest_at": self.oldest_at, "newest_at": self.newest_at, "share": self.share,
                "max_rows": self.max_rows, "max_days": self.max_days}


@dataclass(frozen=True)
class ProjectStatus:
    """`status`: a project's versions, data, production model, last monitoring, open alerts and settings.
    With a limit, versions and dataset_versions hold the newest N (oldest first); the totals count all."""

    project: str
    task: str
    target: str
    metric: str
    production_version: int | None
    versions: tuple[VersionStatus, ...]
    dataset_versions: tuple[DatasetStatus, ...]
    last_monitoring: LastMonitoring | None
    open_alerts: tuple[Alert, ...]
    settings: ProjectSettings
    prediction_log: PredictionLogStatus
    versions_total: int
    dataset_versions_total: int

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "task": self.task, "target": self.target, "metric": self.metric,
                "production_version": self.production_version,
                "versions": [version.to_json() for version in self.versions],
                "dataset_versions": [dataset.to_json() for dataset in self.dataset_versions],
                "last_monitoring": None if self.last_monitoring is None else self.last_monitoring.to_json(),
                "open_alerts": [alert.headline() for alert in self.open_alerts],
                "settings": self.settings.to_dict(), "prediction_log": self.prediction_log.to_json(),
                "versions_total": self.versions_total, "dataset_versions_total": self.dataset_versions_total}
