"""Served traffic as monitoring data: traffic windows, late measurements, "labels are late".

A traffic window is what the prediction log recorded between two monitoring cycles. Each
cycle takes the records logged since the last window as one unlabelled window and
compares them with the production model's reference: the distribution of its predictions
(and, for classifiers, of its probabilities), each feature's drift, and the label-free
estimate of the metric. Its alert rules are its own (`prediction_drift`,
`traffic_drift_share`, `traffic_estimated_threshold`): they alert, and never start a
retrain by themselves (the policy needs labels for that).

Labels that arrive later (`keel labels`, app/core/services/labels.py) are measured per
original window there; each such late measurement is evaluated once by the next cycle with
the measured-metric rules (`metric_threshold`, `metric_drop`), like a labelled batch, so
the policy sees a drop found late as a drop. The dataset version the labels make is never
monitored as a batch as well (Registry.unmonitored_dataset_versions leaves it out): its
rows are counted once, in the windows they label.

`labels_late`: a project with an ID column whose traffic windows (or unlabelled batches)
are older than --label-delay and still below --label-coverage.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from app.core.domain.alert_evidence import LateMeasurementEvidence, TrafficWindowEvidence
from app.core.domain.clock import Clock
from app.core.domain.entities import (
    LabelledPrediction,
    LateMeasurement,
    LoggedPrediction,
    Project,
    Schema,
    TrafficWindow,
)
from app.core.domain.measurements import FeatureDrift, NumericDrift, WindowDetails
from app.core.domain.settings import ProjectSettings, drop_from, higher_is_better, past_threshold
from app.core.domain.traffic import (
    BatchCoverage,
    LateMeasurementEvaluated,
    MonitoredWindow,
    NewTrafficWindow,
    TrafficOverview,
    VolumeBar,
    coverage,
)
from app.core.ml import datasets, drift
from app.core.ml.drift import probability_summary
from app.core.ml.evaluation import compute_metrics
from app.core.services.cycle import CycleResult, LateWindow, apply_rules
from app.core.services.project_data import LoadedModel, ProjectData
from app.core.store.registry import Registry

log = logging.getLogger("keel.traffic")
MeasuredWhat = tuple[int | None, int | None]  # a late measurement's (traffic window id, monitoring result id)


# --------------------------------------------------------------------------- the log as a model frame
def model_frame(records: list[LoggedPrediction], schema: Schema) -> pd.DataFrame:
    """The logged inputs (in the schema's feature order, as the model saw them) as a model frame."""
    columns = {}
    for position, column in enumerate(schema.columns):
        cells = [r.inputs[position] if position < len(r.inputs) else None for r in records]
        if column.kind == "categorical":
            columns[column.name] = pd.Series(cells, dtype=object).where(
                pd.Series(cells, dtype=object).notna(), np.nan)
        else:
            columns[column.name] = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").astype(float)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(records)))


def storage_frame(X: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A model frame back in the stored dataset's types (datetimes were days since 1970)."""
    out = X.copy()
    for column in schema.columns:
        if column.kind == "datetime":
            out[column.name] = pd.to_datetime(out[column.name] * 86400.0, unit="s", utc=True)
    return out


# --------------------------------------------------------------------------- a cycle's work
def window_rules(window: NewTrafficWindow, prediction_stats: FeatureDrift | None,
                 probability_stats: NumericDrift | None, settings: ProjectSettings) -> dict[str, str]:
    """The traffic rules on a new window: rule -> message ("" when it holds; absent: no data to decide)."""
    where = window.where()
    rules = {}
    moved = [name for name, stats in (("predictions", prediction_stats), ("probabilities", probability_stats))
             if stats is not None and stats.drifted]
    if prediction_stats is not None:
        rules["prediction_drift"] = (f"the distribution of {' and '.join(moved)} moved on {where} "
                                     f"(prediction PSI {prediction_stats.psi:.3f})" if moved else "")
    share, drifted = window.drift_share, window.drifted_features
    rules["traffic_drift_share"] = (f"{len(drifted)} drifted feature(s) on {where} "
                                    f"({share:.0%} > {settings.drift_share:.0%}): "
                                    f"{', '.join(drifted)}" if share > settings.drift_share else "")
    estimate, metric = window.estimated_value, window.metric
    if estimate is not None and settings.threshold is not None:
        rules["traffic_estimated_threshold"] = (
            f"estimated {metric} {estimate:.4f} on {where} is past {settings.threshold:g} (a label-free estimate)"
            if past_threshold(metric, estimate, settings.threshold) else "")
    return rules


def _probabilities(records: Sequence[LoggedPrediction | LabelledPrediction]) -> np.ndarray | None:
    rows = [r.probabilities for r in records if r.probabilities is not None]
    if not rows or len(rows) != len(records) or len({len(p) for p in rows}) != 1:
        return None
    return np.asarray(rows, dtype=float)


def _shares(predictions: list) -> dict[str, float]:
    values, counts = np.unique(np.asarray([str(p) for p in predictions]), return_counts=True)
    return {str(v): float(c) / len(predictions) for v, c in zip(values, counts)}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def public_window(window: TrafficWindow) -> MonitoredWindow:
    """A stored traffic window as `monitor --json` and `traffic` show it."""
    probability = window.details.probability_drift
    return MonitoredWindow(id=window.id, started_at=window.started_at, ended_at=window.ended_at, rows=window.rows,
                           model_version=window.model_version, metric=window.metric, value=window.value,
                           labelled_rows=window.labelled_rows, estimated_value=window.estimated_value,
                           prediction_drift=window.prediction_drift,
                           probability_drift=probability.psi if probability else None,
                           drifted_features=tuple(window.drifted_features), drift_share=window.drift_share)


# --------------------------------------------------------------------------- measured metrics
def window_metric(project: Project, rows: list[LabelledPrediction]) -> float | None:
    """The project's metric over labelled logged records (prediction, probabilities, label)."""
    if not rows:
        return None
    task, metric = project.task, project.metric
    y = np.asarray([r.label for r in rows])  # ints, floats or strings: numpy's own type, never object
    predictions = np.asarray([r.prediction for r in rows])
    if task == "regression":
        y, predictions = y.astype(float), predictions.astype(float)
    proba = _probabilities(rows) if task == "classification" else None
    classes = project.schema.classes or None
    if proba is not None and classes is not None and proba.shape[1] != len(classes):
        proba = None
    value = compute_metrics(task, y, predictions, proba, classes).get(metric)
    return None if value is None or not np.isfinite(value) else float(value)


def measure_window(registry: Registry, project: Project, window: TrafficWindow) -> tuple[float | None, int]:
    rows = registry.late_labels_in_window(window)
    return window_metric(project, rows), len(rows)


def measured_rules(metric: str, value: float | None, settings: ProjectSettings, training_value: float | None,
                   where: str) -> dict[str, str]:
    """The measured-metric rules of monitoring.check_rules, for a window measured late: rule -> message
    ("" when it holds; none without a value)."""
    if value is None:
        return {}
    rules = {}
    bound = "floor" if higher_is_better(metric) else "ceiling"
    if settings.threshold is not None:
        rules["metric_threshold"] = (f"{metric} {value:.4f} on {where} is past the {bound} {settings.threshold:g}"
                                     if past_threshold(metric, value, settings.threshold) else "")
    if training_value is not None:
        drop = drop_from(metric, training_value, value)
        rules["metric_drop"] = (f"{metric} {value:.4f} on {where} is {drop:.4f} worse than at training "
                                f"({training_value:.4f}; allowed {settings.max_drop:g})"
                                if drop > settings.max_drop else "")
    return rules


class TrafficService:
    """What the served traffic looked like (Keel.traffic), and its part of each monitoring cycle: a new
    traffic window, the windows measured late, label coverage."""

    def __init__(self, *, registry: Registry, data: ProjectData, clock: Clock) -> None:
        self._registry = registry
        self._data = data
        self._clock = clock

    def overview(self, name: str, bucket: str = "hour") -> TrafficOverview:
        """Traffic windows (with label coverage), late-measured batches, and request volume over time."""
        project = self._data.project(name)
        registry = self._registry
        chars = {"minute": 16, "hour": 13, "day": 10}[bucket]
        return TrafficOverview(
            project=name, windows=tuple(public_window(w) for w in registry.traffic_windows(project.id)),
            batches=tuple(BatchCoverage(dataset_version=b.dataset_version, ended_at=b.at, rows=b.rows,
                                        labelled_rows=b.labelled_rows, value=b.value, metric=b.metric)
                          for b in registry.batches_awaiting_labels(project.id)),
            volume=tuple(VolumeBar(at, rows) for at, rows in registry.predictions_volume(project.id, chars)),
            volume_bucket=bucket)

    # ------------------------------------------------------------------- a cycle's work
    def has_work(self, project: Project, settings: ProjectSettings) -> bool:
        """New traffic since the last window, late measurements to evaluate, or windows to check for late labels."""
        registry = self._registry
        last = registry.last_traffic_window(project.id)
        if registry.prediction_log_summary(project.id).last_id > (last.last_prediction_id if last else 0):
            return True
        if registry.pending_late_measurements(project.id):
            return True
        return bool(settings.id_column)  # label coverage is checked every cycle

    def monitor_traffic(self, project: Project, loaded: LoadedModel, reference: drift.DriftReference,
                        settings: ProjectSettings, training_value: float | None, by: str, cycle: CycleResult,
                        alerts: bool) -> None:
        """Take the traffic logged since the last window as a new window; then check label coverage."""
        registry = self._registry
        last = registry.last_traffic_window(project.id)
        records = registry.predictions(project.id, after_id=last.last_prediction_id if last else 0)
        if records:
            window, details, rules = self._evaluate_window(project, loaded, reference, settings, records)
            with registry.transaction():
                window_id = registry.insert_traffic_window(**dataclasses.asdict(window),
                                                           details=dataclasses.replace(details, rules=dict(rules)))
                value, labelled = measure_window(registry, project, registry.traffic_window(window_id))
                if labelled:  # labels that came before the cycle that made the window (rows logged since the last one)
                    registry.set_window_measurement(window_id, value, labelled, self._clock())
                    rules.update(measured_rules(project.metric, value, settings, training_value,
                                                f"traffic window {window_id}"))
                if alerts:
                    apply_rules(registry, project, rules, f"traffic window {window_id}", None,
                                TrafficWindowEvidence(traffic_window=window_id,
                                                      prediction_drift=window.prediction_drift,
                                                      estimated_value=window.estimated_value), by, cycle)
                stored = registry.traffic_window(window_id)
            cycle.traffic.append(public_window(stored))
        if alerts and settings.id_column:
            rules = {"labels_late": self.late_labels_message(project, settings)}
            with registry.transaction():
                apply_rules(registry, project, rules, "label coverage", None, None, by, cycle)

    def _evaluate_window(self, project: Project, loaded: LoadedModel, reference: drift.DriftReference,
                         settings: ProjectSettings,
                         records: list[LoggedPrediction]) -> tuple[NewTrafficWindow, WindowDetails, dict[str, str]]:
        schema, task, metric = project.schema, project.task, project.metric
        X = model_frame(records, schema)
        predictions = [r.prediction for r in records]
        prediction_stats = (drift.compare_predictions(reference.predictions, predictions, task)
                            if reference.predictions is not None else None)
        probability_stats, estimated = None, None
        proba = _probabilities(records)
        if proba is not None and reference.estimator is not None:
            estimated = _finite(reference.estimator.estimate(proba, metric))
            probability_reference = reference.probability  # prepared with the reference
            if probability_reference is not None:
                probability_stats = probability_reference.compare(probability_summary(proba))
        per_feature = drift.compare_features(reference.features, X)
        drifted = drift.drifted_names(per_feature)
        details = WindowDetails(model_versions=tuple(sorted({r.model_version_id for r in records})), features=per_feature,
                                prediction_drift=prediction_stats, probability_drift=probability_stats,
                                prediction_shares=_shares(predictions) if task == "classification" else None)
        window = NewTrafficWindow(
            project_id=project.id, model_version_id=loaded.model_version.id, first_prediction_id=records[0].id,
            last_prediction_id=records[-1].id, started_at=records[0].at, ended_at=records[-1].at,
            monitored_at=self._clock(), rows=len(records), metric=metric, estimated_value=estimated,
            drift_share=len(drifted) / len(per_feature) if per_feature else 0.0,
            prediction_drift=prediction_stats.psi if prediction_stats else None, drifted_features=tuple(drifted))
        return window, details, window_rules(window, prediction_stats, probability_stats, settings)

    # ------------------------------------------------------------------- late measurements
    def evaluate_late_labels(self, project: Project, settings: ProjectSettings, training_value: float | None, by: str,
                             cycle: CycleResult, alerts: bool) -> None:
        """The measured rules on each window measured late since the last cycle (its newest measurement)."""
        registry = self._registry
        pending = registry.pending_late_measurements(project.id)
        if not pending:
            return
        newest: dict[MeasuredWhat, LateMeasurement] = {}
        labels_versions: dict[MeasuredWhat, list[int]] = {}
        for measurement in pending:
            assert measurement.labels_dataset_version is not None  # read with every pending measurement
            key = (measurement.traffic_window_id, measurement.monitor_result_id)
            newest[key] = measurement
            labels_versions.setdefault(key, []).append(measurement.labels_dataset_version)
        if settings.id_column:
            cycle.late_windows += self._late_windows(project, settings.id_column, newest, labels_versions)
        with registry.transaction():
            for row in newest.values():
                where = (f"traffic window {row.traffic_window_id}" if row.traffic_window_id is not None
                         else f"dataset v{row.dataset_version}") + " (labelled late)"
                rules = measured_rules(row.metric, row.value, settings, training_value, where)
                labels_version = row.labels_dataset_version
                if alerts and rules:
                    apply_rules(registry, project, rules, where, labels_version,
                                LateMeasurementEvidence(late_measurement=row.id, value=row.value,
                                                        labels_dataset_version=labels_version), by, cycle)
                cycle.late_labels.append(LateMeasurementEvaluated(
                    where=where, traffic_window=row.traffic_window_id, dataset_version=row.dataset_version,
                    rows=row.rows, labelled_rows=row.labelled_rows, metric=row.metric, value=row.value,
                    labels_dataset_version=labels_version))
            registry.mark_late_measurements_evaluated([row.id for row in pending])

    def _late_windows(self, project: Project, id_column: str, newest: dict[MeasuredWhat, LateMeasurement],
                      labels_versions: dict[MeasuredWhat, list[int]]) -> list[LateWindow]:
        """Per window measured late: the rows its pending labels versions joined to it (each labels version
        holds only rows labelled for the first time, so no row is counted twice)."""
        frames: dict[int, pd.DataFrame] = {}

        def labelled(version: int) -> pd.DataFrame:
            if version not in frames:
                frame = self._data.dataset_frame(project.name, version)
                frames[version] = frame.assign(__id__=datasets.id_text(frame[id_column]).astype(str))
            return frames[version]

        found = []
        for key, row in newest.items():
            ids = self._window_record_ids(project, id_column, row)
            parts = [labelled(v) for v in sorted(set(labels_versions[key]))]
            parts = [part[part["__id__"].isin(ids)] for part in parts]
            rows = pd.concat(parts, ignore_index=True).drop(columns="__id__")
            rows = rows[rows[project.target].notna()].reset_index(drop=True)
            if len(rows):
                found.append(LateWindow(max(labels_versions[key]), rows, row.traffic_window_id, row.value))
        return found

    def _window_record_ids(self, project: Project, id_column: str, measurement: LateMeasurement) -> set[str]:
        """The IDs of the rows a late measurement's window scored."""
        registry = self._registry
        if measurement.traffic_window_id is not None:
            window = registry.traffic_window(measurement.traffic_window_id)
            return {str(r.record_id) for r in registry.late_labels_in_window(window)}
        from app.core.ml import batch_reading

        assert measurement.dataset_version is not None  # a batch's measurement names its batch
        return batch_reading.id_values(self._data.dataset_path(project.name, measurement.dataset_version), id_column)

    # ------------------------------------------------------------------- label coverage
    def late_labels_message(self, project: Project, settings: ProjectSettings, now: datetime | None = None) -> str:
        """"" when every window older than --label-delay has at least --label-coverage of its rows labelled.
        Counted by the registry (one indexed query), so a cycle does not read every window it ever made."""
        now = now or self._clock.moment()
        due_before = (now - timedelta(seconds=settings.label_delay_seconds())).isoformat(timespec="milliseconds")
        late = self._registry.late_label_totals(project.id, due_before, settings.label_coverage)
        if not late.windows:
            return ""
        rows, labelled = late.rows, late.labelled
        return (f"labels are late: {late.windows} window(s) older than {settings.label_delay} have "
                f"{coverage(labelled, rows):.0%} of their {rows} rows labelled "
                f"(below {settings.label_coverage:.0%}); send them with `keel labels {project.name} FILE`")
