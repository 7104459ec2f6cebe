"""The things Keel keeps and passes between its layers, as typed values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.domain.alert_evidence import AlertEvidence, alert_evidence_from_json, evidence_json
from app.core.domain.decisions import SamplingRecord
from app.core.domain.measurements import BatchDetails, WindowDetails
from app.core.domain.settings import ProjectSettings

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on and the dataset versions they come from."""

    frame: pd.DataFrame
    dataset_versions: list[int]
    sampling: SamplingRecord | None = None  # how the rows were sampled to fit the training memory budget (None: all)
    # evaluate on a hold-out, then fit the model on every row (a policy challenger: its gate is its test)
    refit_on_all_rows: bool = False


COLUMN_KINDS = ("numeric", "categorical", "boolean", "datetime")
TARGET_KINDS = ("integer", "float", "string")


@dataclass(frozen=True)
class Column:
    """One feature column of a schema: its kind and what its first file looked like."""

    name: str
    kind: str  # numeric | categorical | boolean | datetime
    missing_rate: float | None = None  # share of missing cells in the first file
    minimum: float | str | None = None  # numeric: a number; datetime: ISO 8601
    maximum: float | str | None = None
    mean: float | None = None  # numeric only
    std: float | None = None
    n_unique: int | None = None  # categorical only
    categories: tuple[str, ...] | None = None  # categorical: the most frequent values

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Column:
        categories = data.get("categories")
        return cls(name=data["name"], kind=data["kind"], missing_rate=data.get("missing_rate"),
                   minimum=data.get("min"), maximum=data.get("max"), mean=data.get("mean"), std=data.get("std"),
                   n_unique=data.get("n_unique"), categories=None if categories is None else tuple(categories))

    def to_json(self) -> dict[str, Any]:
        """The column as stored: only the keys it has, in the order Keel has always written them."""
        stored: dict[str, Any] = {"name": self.name, "kind": self.kind, "missing_rate": self.missing_rate,
                                  "min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std,
                                  "n_unique": self.n_unique,
                                  "categories": None if self.categories is None else list(self.categories)}
        return {key: value for key, value in stored.items() if value is not None}


@dataclass(frozen=True)
class Schema:
    """What a project's data looks like, inferred from its first file: the feature columns (the ID
    column is never one), the target's name and kind, and the classes seen at creation."""

    target: str
    task: str  # classification | regression
    target_kind: str  # integer | float | string
    columns: tuple[Column, ...]
    classes: tuple[int | str, ...] | None = None  # None: not recorded yet (a schema just inferred)

    @property
    def features(self) -> list[str]:
        """The feature columns' names, in the order the model takes them."""
        return [column.name for column in self.columns]

    def column_kinds(self) -> dict[str, str]:
        return {column.name: column.kind for column in self.columns}

    @property
    def numeric_target(self) -> bool:
        return self.target_kind in ("integer", "float")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schema:
        """From the stored JSON (schema_json, a bundle): the features are the columns' names."""
        columns = tuple(Column.from_json(column) for column in data["columns"])
        listed = list(data.get("features", [column.name for column in columns]))
        if listed != [column.name for column in columns]:
            raise ValueError(f"the schema's features {listed} do not match its columns")
        classes = data.get("classes")
        return cls(target=data["target"], task=data["task"], target_kind=data["target_kind"], columns=columns,
                   classes=None if classes is None else tuple(classes))

    def to_json(self) -> dict[str, Any]:
        """The schema as stored (schema_json) and shown (`project create --json`), keys in their old order."""
        stored: dict[str, Any] = {"target": self.target, "task": self.task, "target_kind": self.target_kind,
                                  "features": self.features, "columns": [column.to_json() for column in self.columns]}
        if self.classes is not None:
            stored["classes"] = list(self.classes)
        return stored


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

    def to_json(self) -> dict:
        """The event at an edge (--json, a table row): every field under its own name."""
        return {"id": self.id, "project_id": self.project_id, "project_name": self.project_name, "at": self.at,
                "kind": self.kind, "by": self.by, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Project:
    """One project: a target to predict from the columns of its first file, and its settings."""

    id: int
    name: str
    task: str  # classification | regression
    target: str
    metric: str  # the primary metric
    schema: Schema
    settings: ProjectSettings  # the stored settings, the defaults filling any not stored
    created_at: str  # UTC, ISO 8601

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Project:
        """From a projects row (schema_json and settings_json still encoded)."""
        return cls(id=row["id"], name=row["name"], task=row["task"], target=row["target"], metric=row["metric"],
                   schema=Schema.from_json(json.loads(row["schema_json"])), settings=ProjectSettings.from_json(json.loads(row["settings_json"] or "{}")),
                   created_at=row["created_at"])

    def to_json(self) -> dict[str, Any]:
        """The project at an edge, under the keys its dict always had."""
        return {"id": self.id, "name": self.name, "task": self.task, "target": self.target, "metric": self.metric,
                "created_at": self.created_at, "schema": self.schema.to_json(),
                "settings": self.settings.to_json()}


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

    def to_json(self) -> dict[str, Any]:
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
    details: AlertEvidence | None = None  # what opened it (None: nothing recorded, as for label coverage)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Alert:
        """From an alerts row (details_json still encoded)."""
        return cls(id=row["id"], project_id=row["project_id"], rule=row["rule"], severity=row["severity"],
                   opened_at=row["opened_at"], message=row["message"], status=row["status"],
                   closed_at=row["closed_at"],
                   details=alert_evidence_from_json(json.loads(row["details_json"] or "{}")))

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def headline(self) -> dict[str, Any]:
        """What `status --json` lists of an open alert: id, rule, severity, opened_at, message."""
        return {"id": self.id, "rule": self.rule, "severity": self.severity, "opened_at": self.opened_at,
                "message": self.message}

    def to_json(self) -> dict[str, Any]:
        """Every column under its own name (details decoded): a table row, a report."""
        return {**self.headline(), "project_id": self.project_id, "status": self.status,
                "closed_at": self.closed_at, "details": evidence_json(self.details)}


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

    def to_json(self) -> dict[str, Any]:
        """The deployment at an edge (a table row), under the keys its dict always had."""
        return {"id": self.id, "project_id": self.project_id, "model_version_id": self.model_version_id,
                "replaced_deployment_id": self.replaced_deployment_id, "deployed_at": self.deployed_at,
                "by": self.by, "reason": self.reason, "is_rollback": self.is_rollback, "version": self.version}


@dataclass(frozen=True)
class DatasetVersion:
    """One ingested file after cleaning, stored as Parquet and never edited."""

    id: int
    project_id: int
    version: int
    path: str  # the Parquet file, relative to the workspace root
    content_sha256: str  # of the cleaned rows: the same content is never stored twice
    rows: int
    labelled_rows: int  # 0: an unlabelled batch (monitored, never trained on)
    source: str  # the file's name as given
    parent_id: int | None  # the version before it
    created_at: str  # UTC, ISO 8601
    file_sha256: str | None  # of the Parquet file (verify, backup); None in workspaces from before it was kept
    report: dict = field(default_factory=dict)  # the validation report

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DatasetVersion:
        """From a dataset_versions row (report_json still encoded)."""
        return cls(id=row["id"], project_id=row["project_id"], version=row["version"], path=row["path"],
                   content_sha256=row["content_sha256"], rows=row["rows"], labelled_rows=row["labelled_rows"],
                   source=row["source"], parent_id=row["parent_id"], created_at=row["created_at"],
                   file_sha256=row.get("file_sha256"), report=json.loads(row["report_json"] or "{}"))

    @property
    def labelled(self) -> bool:
        return self.labelled_rows > 0

    def to_json(self) -> dict[str, Any]:
        """The version at an edge (a table row), under the keys its dict always had."""
        return {"id": self.id, "project_id": self.project_id, "version": self.version, "path": self.path,
                "content_sha256": self.content_sha256, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "source": self.source, "parent_id": self.parent_id, "created_at": self.created_at,
                "file_sha256": self.file_sha256, "report": self.report}


@dataclass(frozen=True)
class MonitorResult:
    """What one monitoring cycle measured on one batch with the production model of its time."""

    id: int
    project_id: int
    model_version_id: int
    dataset_version_id: int | None
    at: str  # UTC, ISO 8601
    rows: int
    labelled_rows: int
    metric: str
    value: float | None  # measured on the labelled rows (None: unlabelled)
    estimated_value: float | None  # the label-free estimate (classifiers with probabilities)
    drift_share: float | None
    prediction_drift: float | None
    model_version: int  # the model version's number
    dataset_version: int | None  # the dataset version's number
    drifted_features: tuple[str, ...] = ()
    details: BatchDetails = field(default_factory=BatchDetails)  # per-feature drift, per-class metrics, the rules...

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MonitorResult:
        """From a monitor_results row (JSON columns still encoded) joined with its versions' numbers."""
        return cls(id=row["id"], project_id=row["project_id"], model_version_id=row["model_version_id"],
                   dataset_version_id=row["dataset_version_id"], at=row["at"], rows=row["rows"],
                   labelled_rows=row["labelled_rows"], metric=row["metric"], value=row["value"],
                   estimated_value=row["estimated_value"], drift_share=row["drift_share"],
                   prediction_drift=row["prediction_drift"], model_version=row["model_version"],
                   dataset_version=row["dataset_version"],
                   drifted_features=tuple(json.loads(row["drifted_features_json"] or "[]")),
                   details=BatchDetails.from_json(json.loads(row["details_json"] or "{}")))

    def to_json(self) -> dict[str, Any]:
        """The result at an edge (a table row, a report), under the keys its dict always had."""
        return {"id": self.id, "project_id": self.project_id, "model_version_id": self.model_version_id,
                "dataset_version_id": self.dataset_version_id, "at": self.at, "rows": self.rows,
                "labelled_rows": self.labelled_rows, "metric": self.metric, "value": self.value,
                "estimated_value": self.estimated_value, "drift_share": self.drift_share,
                "prediction_drift": self.prediction_drift, "model_version": self.model_version,
                "dataset_version": self.dataset_version, "drifted_features": list(self.drifted_features),
                "details": self.details.to_json()}


@dataclass(frozen=True)
class MonitoredValue:
    """One monitoring result's measured and estimated metric (a sparkline's point)."""

    value: float | None
    estimated_value: float | None


@dataclass(frozen=True)
class AlertNotice:
    """An open alert as a notification names it: which project, how bad, what happened."""

    id: int
    project: str  # the project's name
    severity: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "message": self.message, "project": self.project}


@dataclass(frozen=True)
class Run:
    """One training (or import) run: what it was given and, from `runs`, its final metrics."""

    id: int
    project_id: int
    kind: str  # train | import
    preset: str | None
    seed: int | None
    started_at: str  # UTC, ISO 8601
    finished_at: str | None
    seconds: float | None
    status: str
    dataset_versions: tuple[int, ...]  # the dataset versions' numbers it trained on
    library_versions: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # the final value of each logged metric

    @classmethod
    def from_row(cls, row: Mapping[str, Any], metrics: Mapping[str, float] | None = None) -> Run:
        """From a runs row (its JSON columns still encoded)."""
        return cls(id=row["id"], project_id=row["project_id"], kind=row["kind"], preset=row["preset"],
                   seed=row["seed"], started_at=row["started_at"], finished_at=row["finished_at"],
                   seconds=row["seconds"], status=row["status"],
                   dataset_versions=tuple(json.loads(row["dataset_versions_json"] or "[]")),
                   library_versions=json.loads(row["library_versions_json"] or "{}"), metrics=dict(metrics or {}))


@dataclass(frozen=True)
class Schedule:
    """When a project's monitoring runs: every N seconds, or on a cron expression."""

    project_id: int
    project: str  # the project's name
    kind: str  # interval | cron
    expression: str  # seconds (interval) or a 5-field cron expression
    enabled: bool
    last_run_at: str | None  # UTC, ISO 8601; None: never ran

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Schedule:
        """From a schedules row joined with its project's name (as `project`)."""
        return cls(project_id=row["project_id"], project=row["project"], kind=row["kind"],
                   expression=str(row["expression"]), enabled=bool(row["enabled"]), last_run_at=row["last_run_at"])


@dataclass(frozen=True)
class TrafficWindow:
    """A stretch of served traffic monitored as one batch: the prediction log's records
    first_prediction_id..last_prediction_id, scored by one model version."""

    id: int
    project_id: int
    model_version_id: int
    model_version: int  # the model version's number
    first_prediction_id: int
    last_prediction_id: int
    started_at: str  # the first record's time (UTC, ISO 8601)
    ended_at: str  # the last record's
    monitored_at: str
    rows: int
    metric: str
    value: float | None  # measured once late labels arrived (None: not yet)
    labelled_rows: int
    labels_at: str | None  # when it was last measured
    estimated_value: float | None
    drift_share: float | None
    prediction_drift: float | None
    drifted_features: tuple[str, ...] = ()
    details: WindowDetails = field(default_factory=WindowDetails)  # per-feature drift, prediction drift, the rules...

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrafficWindow:
        """From a traffic_windows row (JSON columns still encoded) joined with its model's number."""
        return cls(id=row["id"], project_id=row["project_id"], model_version_id=row["model_version_id"],
                   model_version=row["model_version"], first_prediction_id=row["first_prediction_id"],
                   last_prediction_id=row["last_prediction_id"], started_at=row["started_at"],
                   ended_at=row["ended_at"], monitored_at=row["monitored_at"], rows=row["rows"], metric=row["metric"],
                   value=row["value"], labelled_rows=row["labelled_rows"], labels_at=row["labels_at"],
                   estimated_value=row["estimated_value"], drift_share=row["drift_share"],
                   prediction_drift=row["prediction_drift"],
                   drifted_features=tuple(json.loads(row["drifted_features_json"] or "[]")),
                   details=WindowDetails.from_json(json.loads(row["details_json"] or "{}")))


@dataclass(frozen=True)
class LateMeasurement:
    """A metric measured when late labels arrived for a traffic window or an ingested batch."""

    id: int
    project_id: int
    traffic_window_id: int | None  # what was measured: a traffic window...
    monitor_result_id: int | None  # ...or a batch's monitoring result
    labels_dataset_version_id: int
    at: str  # UTC, ISO 8601
    rows: int
    labelled_rows: int
    metric: str
    value: float | None
    evaluated: bool  # the alert rules have seen it
    dataset_version: int | None  # the measured batch's version number (None: a traffic window)
    labels_dataset_version: int | None = None  # the number of the dataset version the labels came in

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LateMeasurement:
        """From a late_measurements row joined with the versions' numbers."""
        return cls(id=row["id"], project_id=row["project_id"], traffic_window_id=row["traffic_window_id"],
                   monitor_result_id=row["monitor_result_id"], labels_dataset_version_id=row["labels_dataset_version_id"],
                   at=row["at"], rows=row["rows"], labelled_rows=row["labelled_rows"], metric=row["metric"],
                   value=row["value"], evaluated=bool(row["evaluated"]), dataset_version=row["dataset_version"],
                   labels_dataset_version=row.get("labels_dataset_version"))


@dataclass(frozen=True)
class ModelFile:
    """A model version's file as verify, backup and retention see it."""

    id: int  # the model version's
    project: str  # the project's name
    version: int
    artifact_path: str  # relative to the workspace root
    sha256: str
    pruned_at: str | None  # removed by retention (the row stays)
    archived: bool


@dataclass(frozen=True)
class DatasetFile:
    """A dataset version's Parquet file as verify and backup see it."""

    id: int  # the dataset version's
    project: str  # the project's name
    version: int
    path: str  # relative to the workspace root
    file_sha256: str | None  # None: written before Keel recorded it
    rows: int


@dataclass(frozen=True)
class ProductionPointer:
    """A project's current deployment as verify checks production.json against it (version None: none yet)."""

    project_id: int
    project: str  # the project's name
    version: int | None
    sha256: str | None
    artifact_path: str | None
    deployed_at: str | None
    by: str | None
    reason: str | None


@dataclass(frozen=True)
class LoggedPrediction:
    """One scored row as the prediction log keeps it."""

    id: int
    model_version_id: int
    at: str  # UTC, ISO 8601
    record_id: str  # the row's ID (the caller's, or one Keel assigned)
    inputs: list  # the features as the model saw them, in the schema's order
    prediction: Any
    probabilities: list[float] | None  # classifiers: one per class
    source: str | None = None  # predict | serve (None: not read)


@dataclass(frozen=True)
class LabelledPrediction:
    """A prediction and the label that arrived for its row later."""

    prediction: Any
    label: Any
    probabilities: list[float] | None = None
    record_id: str | None = None  # a logged record's ID (None: a batch's row scored again)


@dataclass(frozen=True)
class PredictionLogSummary:
    """How many records the project's prediction log holds, from when to when."""

    rows: int
    oldest_at: str | None
    newest_at: str | None
    last_id: int  # 0: none logged yet


@dataclass(frozen=True)
class PolicyDecision:
    """One decision of the retraining policy (retrain, reject, restore, hold, a hold's end) in the audit log."""

    id: int  # the event's
    at: str  # UTC, ISO 8601
    kind: str  # the event's kind: retrain_decision, restore_decision, retrain_held, retrain_hold_ended
    message: str
    decision: str | None  # retrained_deployed, restored, held, hold_ended, ...

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PolicyDecision:
        return cls(id=row["id"], at=row["at"], kind=row["kind"], message=row["message"], decision=row["decision"])


@dataclass(frozen=True)
class BatchAwaitingLabels:
    """A batch that had no labels when it was monitored but has IDs to join late labels to, with its
    newest late measurement (labelled_rows 0 and value None without one)."""

    monitor_result_id: int
    at: str  # when it was monitored (UTC, ISO 8601)
    rows: int
    metric: str
    dataset_version: int | None
    labelled_rows: int
    value: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BatchAwaitingLabels:
        return cls(monitor_result_id=row["id"], at=row["at"], rows=row["rows"], metric=row["metric"],
                   dataset_version=row["dataset_version"], labelled_rows=row["labelled_rows"] or 0,
                   value=row["value"])


@dataclass(frozen=True)
class LateLabelTotals:
    """Windows (traffic windows and batches awaiting labels) whose labels are late: how many, their rows
    and their labelled rows."""

    windows: int
    rows: int
    labelled: int


@dataclass(frozen=True)
class VersionCounts:
    """How many model versions and dataset versions a project has (archived ones included)."""

    model_versions: int
    dataset_versions: int


@dataclass(frozen=True)
class DatabaseSummary:
    """What a registry file holds, read without opening it as the workspace's (a backup being restored)."""

    schema_version: int
    projects: tuple[str, ...]
    intact: bool  # SQLite's integrity check passed
    error: str | None = None  # why it could not be read (then schema_version 0, no projects)
