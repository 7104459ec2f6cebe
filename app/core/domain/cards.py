"""What the insights service hands the window, as typed values (frozen, so they cross a thread or a
child process as they are): a project's health, the production model's card, one version's card,
versions compared side by side, and one feature's distribution in the reference and a batch.
Each has to_json(): the plain document (the keys in the order they have always come), for an edge
that prints or stores one (the HTML report's data, a test's pinned document).

Mappings keyed by name with values of one kind stay mappings, and say so: metrics by metric name
(floats), importances by feature (floats), library versions by library (text), and an estimator's
parameters by parameter name (whatever the estimator takes: numbers, text, None)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.core.domain.decisions import SamplingRecord
from app.core.domain.settings import ProjectSettings

HealthState = Literal["none", "ok", "warning", "alert"]
DistributionKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class AlertsSince:
    """Alerts opened, and alerts that recovered by themselves, after a moment (when the user last looked)."""

    opened: int
    recovered: int

    def to_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "recovered": self.recovered}


@dataclass(frozen=True)
class ProjectHealth:
    """One line of health for the project list: the production version, the primary metric now
    and at training, the open alerts, a state (none | ok | warning | alert) and why."""

    project: str
    metric: str
    production_version: int | None  # None: no production model yet
    training_value: float | None
    current_value: float | None  # the newest monitoring result's, measured or estimated; None: not yet
    current_is_estimate: bool  # the current value is an estimate (the batch had no labels)
    open_alerts: int
    state: HealthState
    reasons: tuple[str, ...]
    since: AlertsSince  # alerts opened and recovered since the user last looked (0 and 0: not asked)

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "metric": self.metric, "production_version": self.production_version,
                "training_value": self.training_value, "current_value": self.current_value,
                "current_is_estimate": self.current_is_estimate, "open_alerts": self.open_alerts,
                "state": self.state, "reasons": list(self.reasons), "since": self.since.to_json()}


@dataclass(frozen=True)
class ProductionModel:
    """The model version in production: since when, by whom and why, and its recorded metrics."""

    version: int
    deployed_at: str  # UTC, ISO 8601
    by: str
    reason: str
    is_rollback: bool
    metrics: dict[str, float]  # by metric name, on its own hold-out rows
    sha256: str
    notes: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "deployed_at": self.deployed_at, "by": self.by, "reason": self.reason,
                "is_rollback": self.is_rollback, "metrics": self.metrics, "sha256": self.sha256, "notes": self.notes}


@dataclass(frozen=True)
class ProductionCard:
    """What the Overview shows: the project, its health, how many versions, batches and deployments
    it has, the production model (None: none yet) and the recent monitored values (oldest first)."""

    project: str
    task: str
    target: str
    metric: str
    settings: ProjectSettings
    health: ProjectHealth
    versions: int
    dataset_versions: int
    deployments: int
    production: ProductionModel | None
    sparkline: tuple[float, ...]  # the primary metric in recent monitoring cycles: measured, else estimated

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "task": self.task, "target": self.target, "metric": self.metric,
                "settings": self.settings.to_json(), "health": self.health.to_json(), "versions": self.versions,
                "dataset_versions": self.dataset_versions, "deployments": self.deployments,
                "production": self.production.to_json() if self.production is not None else None,
                "sparkline": list(self.sparkline)}


@dataclass(frozen=True)
class TrainingDataset:
    """A dataset version a model version was trained on."""

    version: int
    rows: int
    labelled_rows: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "labelled_rows": self.labelled_rows, "source": self.source}


@dataclass(frozen=True)
class TrainingFacts:
    """How a version was trained (every field None for an imported model)."""

    seed: int | None
    train_rows: int | None
    test_rows: int | None  # the hold-out rows
    seconds: float | None
    sample: SamplingRecord | None  # the rows kept when they were over the memory budget; None: every row
    dataset_versions: tuple[TrainingDataset, ...]

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "train_rows": self.train_rows, "test_rows": self.test_rows,
                "seconds": self.seconds, "sample": None if self.sample is None else self.sample.to_json(),
                "dataset_versions": [d.to_json() for d in self.dataset_versions]}


@dataclass(frozen=True)
class VersionDeployment:
    """One time a version was deployed (or rolled back to)."""

    at: str  # UTC, ISO 8601
    by: str
    reason: str
    rollback: bool

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "by": self.by, "reason": self.reason, "rollback": self.rollback}


@dataclass(frozen=True)
class VersionCard:
    """Everything about one model version: parameters, metrics, the data it was trained on, library
    versions, sha256, who trained it and why, and its deployments."""

    project: str
    version: int
    metric: str
    created_at: str  # UTC, ISO 8601
    sha256: str
    aliases: tuple[str, ...]
    archived: bool
    imported: bool  # trained outside Keel: no run, no training facts
    parameters: dict[str, Any]  # by parameter name: "preset" and the estimator's parameters
    # the parameters set for the project over the preset's defaults, by name; None: not recorded
    # (an imported model, or a run that did not log them)
    parameter_overrides: dict[str, Any] | None
    metrics: dict[str, float]  # by metric name, on its own hold-out rows
    training: TrainingFacts
    library_versions: dict[str, str]  # by library name
    trained_by: str | None
    why: str
    deployments: tuple[VersionDeployment, ...]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "version": self.version, "metric": self.metric,
                "created_at": self.created_at, "sha256": self.sha256, "aliases": list(self.aliases),
                "archived": self.archived, "imported": self.imported, "parameters": self.parameters,
                "parameter_overrides": self.parameter_overrides, "metrics": self.metrics,
                "training": self.training.to_json(), "library_versions": self.library_versions,
                "trained_by": self.trained_by, "why": self.why,
                "deployments": [d.to_json() for d in self.deployments]}


@dataclass(frozen=True)
class ComparedVersion:
    """One version in a comparison: its recorded metrics, and, scored on its hold-out rows, its
    confusion matrix (classification) and feature importances."""

    version: int
    metrics: dict[str, float]  # by metric name, recorded at training on its own hold-out rows
    rows: int  # the hold-out rows scored
    confusion: tuple[tuple[int, ...], ...] | None  # rows: the true class, columns: the predicted; None: regression
    classes: tuple[str, ...]
    importance_kind: str | None  # "impurity" (the trees' own) | "permutation"; None: no rows to score
    importances: dict[str, float]  # by feature
    params: dict[str, Any]  # by parameter name: "preset" and what the run logged ({} for an import)
    common_metrics: dict[str, float] | None = None  # by metric name, on the rows none of the versions saw

    def to_json(self) -> dict[str, Any]:
        document = {"version": self.version, "metrics": self.metrics, "rows": self.rows,
                    "confusion": [list(row) for row in self.confusion] if self.confusion is not None else None,
                    "classes": list(self.classes), "importance_kind": self.importance_kind,
                    "importances": self.importances, "params": self.params}
        if self.common_metrics is not None:
            document["common_metrics"] = self.common_metrics
        return document


@dataclass(frozen=True)
class CommonRows:
    """Labelled rows that arrived after every compared version was trained."""

    rows: int
    dataset_versions: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "dataset_versions": list(self.dataset_versions)}


@dataclass(frozen=True)
class VersionComparison:
    """Versions side by side; common: the rows none of them saw, each scored on (None: no such rows)."""

    project: str
    task: str
    metric: str
    versions: tuple[ComparedVersion, ...]
    common: CommonRows | None

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "task": self.task, "metric": self.metric,
                "versions": [v.to_json() for v in self.versions],
                "common": self.common.to_json() if self.common is not None else None}


@dataclass(frozen=True)
class MetricChange:
    """One metric of two compared versions: a (the first's), b (the second's), b - a, and which is
    better ("v2 better"; "" when equal or not comparable), respecting the metric's direction."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta, "verdict": self.verdict}


@dataclass(frozen=True)
class MissingShares:
    """The share of rows with the feature missing, in the reference and in the batch."""

    reference: float
    batch: float

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "batch": self.batch}


@dataclass(frozen=True)
class FeatureDistribution:
    """One feature in the production model's reference rows and in a batch: shares of rows per bin
    (numeric: len(edges) - 1 bins shared by both) or per category (categorical: the most frequent),
    missing values counted apart."""

    project: str
    feature: str
    dataset_version: int
    model_version: int
    reference_rows: int
    batch_rows: int
    missing: MissingShares
    kind: DistributionKind
    categories: tuple[str, ...]  # categorical only (empty for a numeric feature)
    edges: tuple[float, ...]  # numeric only (empty for a categorical feature)
    reference: tuple[float, ...]  # share of the reference rows per bin or category
    batch: tuple[float, ...]  # share of the batch's rows per bin or category

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "project": self.project, "feature": self.feature, "dataset_version": self.dataset_version,
            "model_version": self.model_version, "reference_rows": self.reference_rows,
            "batch_rows": self.batch_rows, "missing": self.missing.to_json(), "kind": self.kind}
        if self.kind == "categorical":
            document["categories"] = list(self.categories)
        else:
            document["edges"] = list(self.edges)
        document.update(reference=list(self.reference), batch=list(self.batch))
        return document
