"""Served traffic and late labels as the services hand them out (app/core/services/traffic.py,
app/core/services/labels.py): the traffic windows a cycle took, the batches that wait for labels,
the request volume, what a labels file joined and measured, and the late measurements a cycle
evaluated. Frozen (they cross the window's child process as they are); to_json() is the document
`traffic --json`, `labels --json` and `monitor --json` print, under the keys docs/cli.md promises,
in their order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def coverage(labelled_rows: int, rows: int) -> float:
    """The share of a window's rows labelled (0.0 for an empty window)."""
    return labelled_rows / rows if rows else 0.0


@dataclass(frozen=True)
class MonitoredWindow:
    """A traffic window: the stretch of the prediction log one cycle monitored, its label-free
    measurements and, once labels arrived, its measured metric."""

    id: int
    started_at: str  # the first record's time (UTC, ISO 8601)
    ended_at: str  # the last record's
    rows: int
    model_version: int
    metric: str
    value: float | None  # measured on the labels that arrived (None: none yet)
    labelled_rows: int
    estimated_value: float | None  # the label-free estimate
    prediction_drift: float | None  # PSI of the predictions against the reference
    probability_drift: float | None  # PSI of the probabilities (classifiers)
    drifted_features: tuple[str, ...]
    drift_share: float | None

    @property
    def label_coverage(self) -> float:
        return coverage(self.labelled_rows, self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"window": self.id, "started_at": self.started_at, "ended_at": self.ended_at, "rows": self.rows,
                "model_version": self.model_version, "metric": self.metric, "value": self.value,
                "labelled_rows": self.labelled_rows, "label_coverage": self.label_coverage,
                "estimated_value": self.estimated_value, "prediction_drift": self.prediction_drift,
                "probability_drift": self.probability_drift, "drifted_features": list(self.drifted_features),
                "drift_share": self.drift_share}


@dataclass(frozen=True)
class BatchCoverage:
    """An ingested batch that was unlabelled when monitored and has IDs to join late labels to: its
    label coverage and its metric measured late (a row of `traffic`'s batches)."""

    dataset_version: int | None
    ended_at: str  # when it was monitored (UTC, ISO 8601)
    rows: int
    labelled_rows: int
    value: float | None  # measured on the labels that arrived (None: none yet)
    metric: str

    @property
    def label_coverage(self) -> float:
        return coverage(self.labelled_rows, self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "batch", "dataset_version": self.dataset_version, "ended_at": self.ended_at,
                "rows": self.rows, "labelled_rows": self.labelled_rows, "value": self.value, "metric": self.metric,
                "label_coverage": self.label_coverage}


@dataclass(frozen=True)
class VolumeBar:
    """Rows scored in one bucket of time (a minute, an hour or a day: `at` is its start, truncated)."""

    at: str  # '2026-11-30T07:12', '2026-11-30T07' or '2026-11-30' (UTC)
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "rows": self.rows}


@dataclass(frozen=True)
class TrafficOverview:
    """`traffic`: a project's traffic windows and batches awaiting labels (oldest first), and its
    request volume over time in buckets of volume_bucket."""

    project: str
    windows: tuple[MonitoredWindow, ...]
    batches: tuple[BatchCoverage, ...]
    volume: tuple[VolumeBar, ...]
    volume_bucket: str  # minute | hour | day

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "windows": [window.to_json() for window in self.windows],
                "batches": [batch.to_json() for batch in self.batches],
                "volume": [bar.to_json() for bar in self.volume], "volume_bucket": self.volume_bucket}


@dataclass(frozen=True)
class WindowMeasuredLate:
    """A traffic window a labels file labelled: its coverage now and its metric over its labelled rows."""

    window: int
    rows: int
    labelled_rows: int
    metric: str
    value: float | None

    @property
    def label_coverage(self) -> float:
        return coverage(self.labelled_rows, self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "label_coverage": self.label_coverage, "metric": self.metric, "value": self.value}


@dataclass(frozen=True)
class BatchMeasuredLate:
    """An ingested batch a labels file labelled: its coverage now and its metric, measured with the
    model that monitored it."""

    dataset_version: int
    rows: int
    labelled_rows: int
    metric: str
    value: float | None

    @property
    def label_coverage(self) -> float:
        return coverage(self.labelled_rows, self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "label_coverage": self.label_coverage, "metric": self.metric, "value": self.value}


@dataclass(frozen=True)
class LabelsAdded:
    """`labels`: what a labels file joined by ID (a new labelled dataset version, or nothing stored),
    what it counted and never stored, and each window it measured late."""

    project: str
    rows: int  # in the file
    joined: int
    unknown: int  # IDs found in no prediction and no unlabelled row
    duplicate: int  # rows repeating an ID given earlier in the file (the first counts)
    already_labelled: int
    unreadable: int  # rows without a readable ID or label
    dataset_version: int | None  # the version the joined rows became (None: nothing joined)
    traffic_windows: tuple[WindowMeasuredLate, ...]
    batches: tuple[BatchMeasuredLate, ...]
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "rows": self.rows, "joined": self.joined, "unknown": self.unknown,
                "duplicate": self.duplicate, "already_labelled": self.already_labelled,
                "unreadable": self.unreadable, "dataset_version": self.dataset_version,
                "traffic_windows": [window.to_json() for window in self.traffic_windows],
                "batches": [batch.to_json() for batch in self.batches], "warnings": list(self.warnings)}


@dataclass(frozen=True)
class LateMeasurementEvaluated:
    """A window measured late (a traffic window or a batch), evaluated by a cycle with the measured-metric rules."""

    where: str  # 'traffic window 3 (labelled late)' or 'dataset v7 (labelled late)'
    traffic_window: int | None
    dataset_version: int | None  # the batch (None: a traffic window)
    rows: int
    labelled_rows: int
    metric: str
    value: float | None
    labels_dataset_version: int | None  # the labels version that measured it

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "traffic_window": self.traffic_window, "dataset_version": self.dataset_version,
                "rows": self.rows, "labelled_rows": self.labelled_rows, "metric": self.metric, "value": self.value,
                "labels_dataset_version": self.labels_dataset_version}


@dataclass(frozen=True)
class NewTrafficWindow:
    """A traffic window measured by a cycle, before it is stored: its traffic_windows row, without
    the details (stored beside it) and the measured metric (set when labels arrive)."""

    project_id: int
    model_version_id: int
    first_prediction_id: int
    last_prediction_id: int
    started_at: str  # the first record's time (UTC, ISO 8601)
    ended_at: str  # the last record's
    monitored_at: str
    rows: int
    metric: str
    estimated_value: float | None
    drift_share: float
    prediction_drift: float | None
    drifted_features: tuple[str, ...]

    def where(self) -> str:
        """How an alert names it: 'traffic 2026-11-30T07:12:03 to 2026-11-30T08:00:41 (400 rows)'."""
        return f"traffic {self.started_at[:19]} to {self.ended_at[:19]} ({self.rows} rows)"
