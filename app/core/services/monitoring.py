"""One monitoring cycle: score each new batch with the production model, record its
metric, drift and label-free estimate, then open or close alerts.

A batch is evaluated once: the cycle takes the dataset versions ingested since the
current production model was deployed that have no monitoring result yet.

Alert rules (docs/cli.md, "Settings"), each respecting whether the metric is better
high or low, with one open alert per rule until it is acknowledged or recovers:

    metric_threshold     measured metric past --threshold            critical
    metric_drop          measured metric worse than at training by
                         more than --max-drop                        warning
    drift_share          share of drifted features above --drift-share  warning
    estimated_threshold  label-free estimate past --threshold, on a
                         batch without labels                        warning

A rule without the data to decide (an unlabelled batch for the measured rules,
no threshold set) leaves its alert as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, SupportsFloat

import numpy as np
import pandas as pd

from app.core.domain.alert_evidence import BatchEvidence
from app.core.domain.entities import DatasetVersion, Deployment, Project
from app.core.domain.measurements import BatchDetails, Confusion
from app.core.domain.settings import (
    ProjectSettings,
    drop_from,
    higher_is_better,
    past_threshold,
)
from app.core.ml import datasets, drift
from app.core.ml.childproc import capped_native_threads
from app.core.ml.drift import probability_summary
from app.core.ml.evaluation import compute_metrics, confusion, per_class_metrics
from app.core.services.cache import BoundedCache
from app.core.services.cycle import BatchResult, CycleResult, apply_rules
from app.core.services.dependencies import Progress
from app.core.services.project_data import LoadedModel, ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

if TYPE_CHECKING:
    from app.core.services.traffic import TrafficService

log = logging.getLogger("keel.monitoring")

# --------------------------------------------------------------------------- the drift reference
def _classes(loaded: LoadedModel) -> list | None:
    return list(loaded.model.classes_) if has_probabilities(loaded) else None


def has_probabilities(loaded: LoadedModel) -> bool:
    return loaded.project.task == "classification" and hasattr(loaded.model, "predict_proba")


# --------------------------------------------------------------------------- the cycle
def pending_batches(registry: Registry, project_id: int, deployment: Deployment) -> list[DatasetVersion]:
    return registry.unmonitored_dataset_versions(project_id, deployment.deployed_at)


def _has_ids(frame: pd.DataFrame, id_column: str | None) -> bool:
    """The batch's rows carry IDs: late labels can find them."""
    return bool(id_column) and id_column in frame.columns and bool(frame[id_column].notna().any())


def evaluate_batch(loaded: LoadedModel, reference: drift.DriftReference, frame: pd.DataFrame, row: DatasetVersion,
                   metric: str) -> tuple[BatchResult, BatchDetails]:
    """The batch's result (what `monitor` reports) and its details (what is stored beside it); the
    details' rules, training value and ID flag are the cycle's to fill in."""
    project = loaded.project
    schema, task = project.schema, project.task
    X = datasets.to_model_frame(frame, schema)
    with capped_native_threads():
        predictions = loaded.model.predict(X)
        proba = loaded.model.predict_proba(X) if has_probabilities(loaded) else None
    labelled = frame[schema.target].notna().to_numpy()
    metrics, per_class, confusion_matrix, value = None, None, None, None
    if labelled.any():
        y = datasets.target_array(frame[labelled], schema)
        metrics = compute_metrics(task, y, predictions[labelled], None if proba is None else proba[labelled],
                                  getattr(loaded.model, "classes_", None))
        value = _finite(metrics.get(metric))
        if task == "classification":
            classes = list(loaded.model.classes_)
            per_class = per_class_metrics(y, predictions[labelled], classes)
            confusion_matrix = Confusion(classes=tuple(str(c) for c in classes), matrix=tuple(
                tuple(row) for row in confusion(y, predictions[labelled], classes)))
    estimated = None
    if reference.estimator is not None and proba is not None:
        estimated = _finite(reference.estimator.estimate(proba, metric))
    per_feature = drift.compare_features(reference.features, X)
    drifted = drift.drifted_names(per_feature)
    prediction_stats = (drift.compare_predictions(reference.predictions, predictions, task)
                        if reference.predictions is not None else None)
    details = BatchDetails(features=per_feature, metrics=metrics, per_class=per_class, confusion=confusion_matrix,
                           prediction_drift=prediction_stats)
    result = BatchResult(
        dataset_version=row.version, rows=len(frame), labelled=bool(labelled.any()),
        labelled_rows=int(labelled.sum()), metric=metric, value=value, estimated_value=estimated,
        drifted_features=tuple(drifted), drift_share=len(drifted) / len(per_feature) if per_feature else 0.0,
        prediction_drift=None if prediction_stats is None else prediction_stats.psi)
    return result, details


def _finite(value: SupportsFloat | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) or np.isinf(value) else value


# --------------------------------------------------------------------------- rules and alerts
def check_rules(result: BatchResult, settings: ProjectSettings, training_value: float | None) -> dict[str, str]:
    """rule -> a message when it fires, "" when it holds; rules without the data to decide are absent."""
    metric, value, rules = result.metric, result.value, {}
    bound = "floor" if higher_is_better(metric) else "ceiling"
    where = f"dataset v{result.dataset_version}"
    if value is not None and settings.threshold is not None:
        rules["metric_threshold"] = (f"{metric} {value:.4f} on {where} is past the {bound} {settings.threshold:g}"
                                     if past_threshold(metric, value, settings.threshold) else "")
    if value is not None and training_value is not None:
        drop = drop_from(metric, training_value, value)
        rules["metric_drop"] = (f"{metric} {value:.4f} on {where} is {drop:.4f} worse than at training "
                                f"({training_value:.4f}; allowed {settings.max_drop:g})"
                                if drop > settings.max_drop else "")
    share = result.drift_share
    rules["drift_share"] = (f"{len(result.drifted_features)} drifted feature(s) on {where} "
                            f"({share:.0%} > {settings.drift_share:.0%}): {', '.join(result.drifted_features)}"
                            if share > settings.drift_share else "")
    if value is None and result.estimated_value is not None and settings.threshold is not None:
        estimate = result.estimated_value
        rules["estimated_threshold"] = (f"estimated {metric} {estimate:.4f} on unlabelled {where} is past the "
                                        f"{bound} {settings.threshold:g} (a label-free estimate)"
                                        if past_threshold(metric, estimate, settings.threshold) else "")
    return rules


def update_alerts(registry: Registry, project: Project, result: BatchResult, by: str, cycle: CycleResult) -> None:
    """Open an alert for a rule that fires without one open; close one whose rule holds again."""
    evidence = BatchEvidence(dataset_version=result.dataset_version, value=result.value,
                             estimated_value=result.estimated_value, drifted_features=tuple(result.drifted_features))
    apply_rules(registry, project, result.rules, f"dataset v{result.dataset_version}", result.dataset_version,
                evidence, by, cycle)


class MonitoringService:
    """Monitoring cycles and the drift references they compare with (Keel.monitoring). A cycle's served
    traffic (its window, the windows measured late, label coverage) is the traffic service's part."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData, traffic: TrafficService, drift_references: BoundedCache) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._traffic = traffic
        self._drift_references = drift_references

    def run_cycle(self, name: str, by: str = "user", progress: Progress | None = None,
                  alerts: bool = True) -> CycleResult:
        """Evaluate every pending batch with the production model; alerts=False records results only."""
        report = progress or (lambda fraction, message: None)
        project = self._data.project(name)
        deployment = self._registry.current_deployment(project.id)
        if deployment is None:
            return CycleResult(name, None)
        cycle = CycleResult(name, deployment.version)
        batches = pending_batches(self._registry, project.id, deployment)
        settings = project.settings
        if not batches and not self._traffic.has_work(project, settings):
            return cycle
        loaded = self._data.load_version(name, deployment.version)
        reference = self.reference_for(loaded)
        training_value = self._data.model_metrics(loaded.model_version).get(project.metric)
        # labels that arrived late describe older data than any new batch: evaluated first
        self._traffic.evaluate_late_labels(project, settings, training_value, by, cycle, alerts)
        for index, row in enumerate(batches):
            report(index / len(batches), f"monitoring dataset v{row.version}")
            frame, sample = self._data.batch_within_budget(name, row.version)
            result, details = evaluate_batch(loaded, reference, frame, row, project.metric)
            if sample:  # evaluated on a sample that fits the memory budget; the counts are the batch's
                result = dataclasses.replace(result, rows=row.rows, labelled_rows=row.labelled_rows)
            result = dataclasses.replace(result, rules=check_rules(result, settings, training_value))
            details = dataclasses.replace(details, sample=sample, rules=dict(result.rules),
                                          training_value=training_value, has_ids=_has_ids(frame, settings.id_column))
            with self._registry.transaction():
                self._registry.insert_monitor_result(
                    project_id=project.id, model_version_id=loaded.model_version.id, dataset_version_id=row.id,
                    rows=result.rows, labelled_rows=result.labelled_rows, metric=result.metric, value=result.value,
                    estimated_value=result.estimated_value, drift_share=result.drift_share,
                    prediction_drift=result.prediction_drift, drifted_features=result.drifted_features,
                    details=details)
                if alerts:
                    update_alerts(self._registry, project, result, by, cycle)
            cycle.batches.append(result)
        self._traffic.monitor_traffic(project, loaded, reference, settings, training_value, by, cycle, alerts)
        report(1.0, f"{len(batches)} batch(es) monitored" + (", 1 traffic window" if cycle.traffic else ""))
        return cycle

    def reference_for(self, loaded: LoadedModel) -> drift.DriftReference:
        """The prepared reference of a model, kept in the workspace's cache once read or built. The
        file's sha256 alone is not a key: one skops file imported into two projects has one hash but
        two references (an imported model's reference is its project's training data)."""
        key = (loaded.project.name, loaded.model_version.id, loaded.model_version.sha256)
        return self._drift_references.get_or_build(key, lambda: self.stored_reference(loaded))

    def stored_reference(self, loaded: LoadedModel) -> drift.DriftReference:
        """The reference stored beside the model file at deployment; one is prepared and stored now when
        it is missing (a version deployed before Keel stored them) or unusable."""
        from app.core.ml import reference_file

        path = reference_file.path_for(self._workspace.root / loaded.model_version.artifact_path)
        found = reference_file.load(path, loaded.model_version.sha256, _classes(loaded))
        if found is not None:
            return found
        return self._store_reference(loaded)

    def prepare_reference(self, loaded: LoadedModel) -> drift.DriftReference:
        """Summaries of the model's reference rows and of its predictions on them (the costly part:
        predicting every reference row), and the label-free estimate calibrated on its hold-out rows."""
        project = loaded.project
        schema = project.schema
        frame = self._data.reference_frame(project.name, loaded.version)
        saved_rows = frame is not None
        if frame is None:  # an imported model has no saved reference: use today's training data
            frame = self._data.training_frame(project.name)[0].assign(__split__="train")
        train_rows = frame[frame["__split__"] == "train"]
        holdout_rows = frame[frame["__split__"] == "holdout"]
        X_train = datasets.to_model_frame(train_rows, schema)
        reference = drift.DriftReference(
            features=drift.prepare_features(X_train, datasets.column_kinds(schema)), rows=len(train_rows))
        with capped_native_threads():
            if len(X_train):
                reference.predictions = drift.prediction_reference(loaded.model.predict(X_train), project.task)
            # the served probabilities' reference (traffic windows): only from saved reference rows
            reference.probability = (
                drift.NumericReference.build("probability", probability_summary(loaded.model.predict_proba(X_train)))
                if saved_rows and len(X_train) and hasattr(loaded.model, "predict_proba") else None)
            if has_probabilities(loaded) and len(holdout_rows):
                y_holdout = datasets.target_array(holdout_rows, schema)
                # a model refitted on all its rows saw them: its evaluated fit's probabilities calibrate it
                proba = datasets.stored_holdout_proba(holdout_rows)
                if proba is None:
                    proba = loaded.model.predict_proba(datasets.to_model_frame(holdout_rows, schema))
                reference.estimator = drift.ConfidenceEstimator.fit(proba, y_holdout, loaded.model.classes_)
            elif has_probabilities(loaded):
                reference.estimator = drift.ConfidenceEstimator(list(loaded.model.classes_), None)
        return reference

    def _store_reference(self, loaded: LoadedModel) -> drift.DriftReference:
        """Prepare the model's reference and keep it beside the model file (written to a temporary name,
        then renamed). Only a model with saved reference rows gets a file: an imported model's reference
        is its project's training data of the day, prepared again by each process as before."""
        from app.core.ml import reference_file

        reference = self.prepare_reference(loaded)
        model_path = self._workspace.root / loaded.model_version.artifact_path
        if model_path.with_suffix(".reference.parquet").exists():
            path = reference_file.path_for(model_path)
            try:
                reference_file.save(reference, path, loaded.model_version.sha256)
            except OSError as exc:  # a read-only or full disk: monitoring goes on with the reference in memory
                log.warning("drift reference of %s v%s not stored: %s", loaded.project.name, loaded.version, exc)
        return reference
