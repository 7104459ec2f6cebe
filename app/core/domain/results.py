"""What the services' actions and reads hand back, as typed values (frozen, so they cross a thread
or a child process as they are). Each has to_json(): the document a front end prints (`--json`),
under the keys docs/cli.md promises, in the order they have always come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from app.core.domain.decisions import ChangeFinding, DecisionDetails
from app.core.domain.entities import Alert, Event, Schema
from app.core.domain.settings import ProjectSettings
from app.core.domain.traffic import LateMeasurementEvaluated, MonitoredWindow


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
                "settings": self.settings.to_json(), "prediction_log": self.prediction_log.to_json(),
                "versions_total": self.versions_total, "dataset_versions_total": self.dataset_versions_total}


@dataclass(frozen=True)
class TrainResult:
    """A version trained and registered: its number, its hold-out metrics, its run, how long the fit took."""

    version: int
    metrics: dict[str, float]
    run_id: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "metrics": self.metrics, "run_id": self.run_id, "seconds": self.seconds}


@dataclass(frozen=True)
class ProductionChange:
    """The production pointer moved (deploy, rollback, approve): the version in production now, and before."""

    production_version: int
    previous_version: int | None  # None: the project's first production model

    def to_json(self) -> dict[str, Any]:
        return {"production_version": self.production_version, "previous_version": self.previous_version}


@dataclass(frozen=True)
class MonitoredBatch:
    """What a monitoring cycle measured on one new batch with the production model."""

    dataset_version: int
    rows: int
    labelled: bool
    labelled_rows: int
    metric: str
    value: float | None  # measured on the labelled rows (None: unlabelled)
    estimated_value: float | None  # the label-free estimate
    drifted_features: tuple[str, ...]
    drift_share: float
    prediction_drift: float | None

    def to_json(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, "rows": self.rows, "labelled": self.labelled,
                "labelled_rows": self.labelled_rows, "metric": self.metric, "value": self.value,
                "estimated_value": self.estimated_value, "drifted_features": list(self.drifted_features),
                "drift_share": self.drift_share, "prediction_drift": self.prediction_drift}


@dataclass(frozen=True)
class OpenedAlert:
    """An alert a monitoring cycle opened (dataset_version: the batch it fired on; None: traffic)."""

    id: int
    rule: str
    severity: str
    message: str
    dataset_version: int | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "severity": self.severity, "message": self.message,
                "dataset_version": self.dataset_version}


@dataclass(frozen=True)
class RecoveredAlert:
    """An open alert a monitoring cycle closed because its rule holds again."""

    id: int
    rule: str
    dataset_version: int | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "dataset_version": self.dataset_version}


@dataclass(frozen=True)
class MonitorOutcome:
    """`monitor --once`: the inbox sweep, the cycle's batches, traffic window and late labels, the alerts
    it opened and closed, and the policy's decision with its numbers (details, as the audit log has them)."""

    project: str
    batches: tuple[MonitoredBatch, ...]
    alerts_opened: tuple[OpenedAlert, ...]
    alerts_recovered: tuple[RecoveredAlert, ...]
    decision: str  # none | alert | retrained_waiting | retrained_deployed | retrained_rejected | restored | ...
    message: str
    production_version: int | None  # after the decision
    challenger_version: int | None  # the challenger this cycle trained, if any
    challenger_waiting: int | None  # the challenger waiting for approval, if any
    inbox: tuple[SweptFile, ...]  # the files the sweep took or rejected
    details: DecisionDetails  # the decision's numbers: the gate, the window, the hold, the change detected
    traffic: tuple[MonitoredWindow, ...]  # the traffic window this cycle took, if any
    late_labels: tuple[LateMeasurementEvaluated, ...]  # windows measured late and evaluated in this cycle

    @property
    def change_detected(self) -> ChangeFinding | None:
        """The change detector's finding in this cycle (started_at, detected_at, statistic, ...), if any."""
        return self.details.change_detected

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "batches": [batch.to_json() for batch in self.batches],
                "alerts_opened": [alert.to_json() for alert in self.alerts_opened],
                "alerts_recovered": [alert.to_json() for alert in self.alerts_recovered],
                "decision": self.decision, "message": self.message, "production_version": self.production_version,
                "challenger_version": self.challenger_version, "challenger_waiting": self.challenger_waiting,
                "inbox": [item.to_json() for item in self.inbox], "details": self.details.to_json(),
                "change_detected": self.change_detected.to_json() if self.change_detected else None,
                "traffic": [window.to_json() for window in self.traffic],
                "late_labels": [late.to_json() for late in self.late_labels]}


@dataclass(frozen=True)
class PredictResult:
    """A file scored with the production model: rows written to output, with the IDs and the prediction log."""

    rows: int
    output: str  # the scored file's path
    version: int  # the model version that scored it
    warnings: tuple[str, ...]
    id_column: str | None  # the output's ID column (None: no IDs)
    assigned_ids: int  # rows that had no ID and got one from Keel
    logged_rows: int  # recorded in the prediction log

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "output": self.output, "version": self.version, "warnings": list(self.warnings),
                "id_column": self.id_column, "assigned_ids": self.assigned_ids, "logged_rows": self.logged_rows}


@dataclass(frozen=True)
class ProjectSummary:
    """One project as `project list` shows it."""

    name: str
    task: str
    target: str
    metric: str
    production_version: int | None
    open_alerts: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "target": self.target, "metric": self.metric,
                "production_version": self.production_version, "open_alerts": self.open_alerts}


@dataclass(frozen=True)
class History:
    """`history`: a project's audit log, oldest first (with a limit, its newest N events)."""

    project: str
    events: tuple[Event, ...]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project,
                "events": [{"id": e.id, "at": e.at, "kind": e.kind, "by": e.by, "message": e.message,
                            "details": e.details} for e in self.events]}


@dataclass(frozen=True)
class ExportedModel:
    """A version's model file copied out of the workspace."""

    version: int
    path: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class ImportedModel:
    """A model file trained elsewhere registered as a new version, with its metrics on the project's data."""

    version: int
    metrics: dict[str, float]
    accepted_types: tuple[str, ...]  # types outside Keel's list accepted for this version

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "metrics": self.metrics, "accepted_types": list(self.accepted_types)}


@dataclass(frozen=True)
class ProductionOverview:
    """What the production actions depend on: the version in production, how many deployments there
    were, the version a rollback returns to, whether a challenger waits for approval."""

    project: str
    production_version: int | None
    deployments: int
    rollback_version: int | None
    challenger_waiting: bool


@dataclass(frozen=True)
class ModelMark:
    """When a model version was made (a timeline's marker)."""

    version: int
    created_at: str  # UTC, ISO 8601


@dataclass(frozen=True)
class ProjectCreated:
    """A project created from its first file: dataset v1, the schema inferred, the settings stored."""

    project: str
    task: str
    target: str
    dataset_version: int
    rows: int
    labelled_rows: int
    warnings: tuple[str, ...]
    schema: Schema
    settings: ProjectSettings

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "task": self.task, "target": self.target,
                "dataset_version": self.dataset_version, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "warnings": list(self.warnings), "schema": self.schema.to_json(), "settings": self.settings.to_json()}


@dataclass(frozen=True)
class SweptFile:
    """A file an inbox sweep took (processed, or a duplicate of a version already stored) or rejected."""

    file: str
    status: str  # processed | duplicate | rejected
    moved_to: str  # where it is now: processed/ or rejected/
    dataset_version: int | None  # the version that holds its rows (None: rejected)
    rows: int
    labelled: bool
    warnings: tuple[str, ...]
    duplicate_of: int | None
    sha256: str | None = None  # of the bytes taken (None: rejected)
    reason: str | None = None  # why it was rejected

    def to_json(self) -> dict[str, Any]:
        if self.status == "rejected":
            return {"file": self.file, "status": self.status, "moved_to": self.moved_to, "reason": self.reason,
                    "dataset_version": self.dataset_version, "rows": self.rows, "labelled": self.labelled,
                    "warnings": list(self.warnings), "duplicate_of": self.duplicate_of}
        return {"file": self.file, "status": self.status, "moved_to": self.moved_to,
                "dataset_version": self.dataset_version, "rows": self.rows, "labelled": self.labelled,
                "warnings": list(self.warnings), "duplicate_of": self.duplicate_of, "sha256": self.sha256}


@dataclass(frozen=True)
class FileAdded:
    """A file that became a new dataset version."""

    file: str
    dataset_version: int
    rows: int
    warnings: int  # how many


@dataclass(frozen=True)
class FileAlreadyPresent:
    """A file whose content a dataset version already holds (nothing stored)."""

    file: str
    dataset_version: int


@dataclass(frozen=True)
class FileRefused:
    """A file refused (nothing stored; the audit log records why)."""

    file: str
    reason: str


@dataclass(frozen=True)
class FilesIngested:
    """Several files added at once, each its own batch: what became of each, in the order given."""

    added: tuple[FileAdded, ...]
    already_present: tuple[FileAlreadyPresent, ...]
    refused: tuple[FileRefused, ...]
    not_reached: tuple[str, ...]  # the files a cancel left untouched

    def summary(self) -> str:
        """'18 added, 1 already present, 1 refused' (and how many were not reached after a cancel)."""
        parts = [f"{len(self.added)} added", f"{len(self.already_present)} already present",
                 f"{len(self.refused)} refused"]
        if self.not_reached:
            parts.append(f"{len(self.not_reached)} not reached (cancelled)")
        return ", ".join(parts)
