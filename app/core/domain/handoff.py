"""What Keel hands to the world outside it, as typed values: a version as an MLflow model and an
MLflow run (export --format mlflow, push) and the HTML report's contents. Frozen, so they cross a
thread or a child process as they are; the results a front end prints have to_json(), the
document `--json` shows, under the keys docs/cli.md promises, in the order they have always come."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from app.core.domain.entities import Alert, Deployment, Event, Schema
from app.core.domain.settings import ProjectSettings

if TYPE_CHECKING:
    import numpy as np


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


# --------------------------------------------------------------------------- the HTML report
@dataclass(frozen=True)
class ReportPeriod:
    """The monitoring a report covers: from start until end (None: now); start None: no period."""

    start: str | None  # UTC, ISO 8601
    end: str | None
    label: str  # "since v3 was deployed", "since the given date", ...


@dataclass(frozen=True)
class LineageDataset:
    """A dataset version a model was trained on, as the report's lineage shows it: the version card's
    cards.TrainingDataset and when it was added, its content hash and its parent."""

    version: int
    rows: int
    labelled_rows: int
    source: str
    created_at: str  # UTC, ISO 8601
    sha256: str  # the content's hash
    parent: int | None  # the dataset version it was derived from


@dataclass(frozen=True)
class TrainingSummary:
    """What a version was trained on, and how its rows were split."""

    dataset_versions: tuple[LineageDataset, ...]
    train_rows: int | None
    holdout_rows: int | None
    holdout_share: float | None
    cv_folds: int | None
    window: int | str  # the project's training window setting ("all", "adaptive" or a row count)

    @property
    def rows_available(self) -> int:
        """The labelled rows of the dataset versions trained on."""
        return sum(dataset.labelled_rows for dataset in self.dataset_versions)


@dataclass(frozen=True)
class MetricValue:
    """One recorded metric of a version; primary: the project's metric."""

    name: str
    value: float | None
    primary: bool


@dataclass(frozen=True)
class LaterData:
    """A version's metrics on the labelled rows that arrived after it was trained. metrics: a
    mapping metric name -> value."""

    rows: int
    dataset_versions: tuple[int, ...]
    metrics: dict[str, float]


@dataclass(frozen=True)
class GateDecision:
    """A champion-challenger gate that tested this version as the challenger (from the audit log)."""

    at: str  # UTC, ISO 8601
    by: str
    message: str
    decision: str
    champion_version: int | None
    champion_value: float | None
    challenger_value: float | None
    gate_rows: int | None
    test: str | None
    p_value: float | None
    accepted: bool | None


@dataclass(frozen=True)
class ProductionStint:
    """One time a version went into production, until it was replaced (until None: still there)."""

    deployed_at: str  # UTC, ISO 8601
    by: str
    reason: str
    is_rollback: bool
    until: str | None
    replaced_by: int | None


@dataclass(frozen=True)
class ModelCard:
    """A version's model card: what it is, what it was trained on, how it scores, how it got into
    production. parameters and overrides map a parameter's name to its value (values of any type,
    as the estimator takes them); library_versions maps a library to its version."""

    version: int
    created_at: str  # UTC, ISO 8601
    task: str
    target: str
    metric: str
    notes: str
    aliases: tuple[str, ...]
    archived: bool
    preset: str | None
    preset_label: str | None
    seed: int | None
    overrides: dict[str, Any]
    parameters: dict[str, Any]
    kind: str  # the run's kind (train, policy, import, ...) or "unknown"
    import_source: str | None  # an imported model's file
    training: TrainingSummary
    trained: Event | None  # the audit log's line for its training (or import)
    metrics: tuple[MetricValue, ...]  # the primary metric first
    holdout_rows: int | None
    train_rows: int | None
    refit_on_all_rows: bool
    scored_rows: int  # the rows the confusion matrix and the importances were computed on
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...] | None  # rows: true class, columns: predicted class
    importance_kind: str | None  # impurity | permutation
    importances: tuple[tuple[str, float], ...]  # (feature, importance), largest magnitude first
    later_data: LaterData | None
    gate: tuple[GateDecision, ...]
    deployments: tuple[ProductionStint, ...]
    library_versions: dict[str, str]
    sha256: str
    artifact: str  # the model file's name
    settings: ProjectSettings  # the project's current settings (the gate's margin and alpha)


@dataclass(frozen=True)
class ReportBatch:
    """One monitored batch of the period."""

    at: str  # UTC, ISO 8601
    dataset_version: int | None  # None: a result with no dataset version of its own
    model_version: int
    rows: int
    labelled_rows: int
    value: float | None
    estimated_value: float | None
    drift_share: float | None
    drifted: tuple[str, ...]  # the drifted features
    fired: tuple[str, ...]  # the rules that fired, sorted


@dataclass(frozen=True)
class DriftCell:
    """One feature's drift statistics on one batch."""

    dataset_version: int | None
    psi: float | None
    drifted: bool | None
    effect: float | None  # normalised Wasserstein distance (numbers) or Jensen-Shannon distance (categories)
    kind: str | None


@dataclass(frozen=True)
class FeatureDrift:
    """One feature across the period's batches (a cell None: not measured on that batch)."""

    name: str
    cells: tuple[DriftCell | None, ...]
    drifted_in: tuple[int | None, ...]  # the dataset versions where it drifted
    kind: str | None  # numeric | categorical, as the drift statistics say


@dataclass(frozen=True)
class FeatureValues:
    """A drifted feature's values: the monitoring model's training rows (reference) vs the latest
    batch where it drifted (current). The values are read-only arrays, left out of == (NaN != NaN)."""

    name: str
    kind: str | None
    model_version: int
    dataset_version: int | None
    reference: np.ndarray = field(compare=False)
    current: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class MonitoringReport:
    """The monitoring of the report's period. training_values maps a model version to its metric at
    training."""

    metric: str
    higher_is_better: bool
    threshold: float | None
    max_drop: float
    drift_share_limit: float
    batches: tuple[ReportBatch, ...]
    deployments: tuple[Deployment, ...]
    training_values: dict[int, float | None]
    features: tuple[FeatureDrift, ...]  # the most often drifted first
    distributions: tuple[FeatureValues, ...]
    alerts: tuple[Alert, ...]
    decisions: tuple[Event, ...]  # deployments, retrain decisions, acknowledgements, settings changes


@dataclass(frozen=True)
class Report:
    """Everything the HTML report shows (build_report), as data: no markup."""

    project: str
    generated_at: str  # UTC, ISO 8601
    production_version: int | None
    card: ModelCard
    period: ReportPeriod
    monitoring: MonitoringReport | None  # None: no period (a version never in production)


@dataclass(frozen=True)
class ReportCharts:
    """The report's charts as inline SVG: None where there is nothing to draw. distributions maps
    a drifted feature's name to its chart."""

    importances: str | None
    metric: str | None
    distributions: dict[str, str]


@dataclass(frozen=True)
class ReportWritten:
    """`report`: the HTML file written and what it covers."""

    project: str
    version: int
    output: str
    bytes: int
    period_start: str | None
    period_end: str | None
    batches: int

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "version": self.version, "output": self.output, "bytes": self.bytes,
                "period_start": self.period_start, "period_end": self.period_end, "batches": self.batches}
