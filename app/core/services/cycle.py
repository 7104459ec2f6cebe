"""What one monitoring cycle records, and the alert rules it applies: to each ingested batch
(monitoring.py) and to each window of served traffic (traffic.py), with one open alert per rule
until it is acknowledged or recovers. Both modules use this one; neither needs the other's."""

from dataclasses import dataclass, field

import pandas as pd

from app.core.domain.alert_evidence import AlertEvidence, evidence_json
from app.core.domain.entities import Alert, Project
from app.core.domain.results import MonitoredBatch, OpenedAlert, RecoveredAlert
from app.core.domain.traffic import LateMeasurementEvaluated, MonitoredWindow
from app.core.store.registry import Registry

RULE_SEVERITY = {
    "metric_threshold": "critical",
    "metric_drop": "warning",
    "drift_share": "warning",
    "estimated_threshold": "warning",
    # served traffic (app/core/services/traffic.py): alerts only, never a retrain by themselves
    "prediction_drift": "warning",
    "traffic_drift_share": "warning",
    "traffic_estimated_threshold": "warning",
    "labels_late": "warning",
}
CHANGE_RULES = ("metric_threshold", "metric_drop", "drift_share")  # an alert of these marks a change point


@dataclass(frozen=True)
class BatchResult:
    """What one monitoring cycle found on one batch: its metric, estimate and drift, and each alert
    rule's message (rule -> message, "" when it holds; absent: no data to decide)."""

    dataset_version: int
    rows: int
    labelled: bool
    labelled_rows: int
    metric: str
    value: float | None
    estimated_value: float | None
    drifted_features: tuple[str, ...]
    drift_share: float
    prediction_drift: float | None
    rules: dict[str, str] = field(default_factory=dict)

    def monitored(self) -> MonitoredBatch:
        """What `monitor` reports of the batch (its rules' messages stay in the cycle)."""
        return MonitoredBatch(dataset_version=self.dataset_version, rows=self.rows, labelled=self.labelled,
                              labelled_rows=self.labelled_rows, metric=self.metric, value=self.value,
                              estimated_value=self.estimated_value, drifted_features=self.drifted_features,
                              drift_share=self.drift_share, prediction_drift=self.prediction_drift)


@dataclass
class CycleResult:
    project: str
    production_version: int | None
    batches: list[BatchResult] = field(default_factory=list)
    alerts_opened: list[OpenedAlert] = field(default_factory=list)
    alerts_recovered: list[RecoveredAlert] = field(default_factory=list)
    firing: dict = field(default_factory=dict)  # rule -> message, as of the last batch that could decide it
    traffic: list[MonitoredWindow] = field(default_factory=list)  # the traffic window of this cycle, if any
    late_labels: list[LateMeasurementEvaluated] = field(default_factory=list)  # evaluated in this cycle
    late_windows: list["LateWindow"] = field(default_factory=list)  # their newly labelled rows, for the policy

    def summary(self) -> str:
        """One line for the audit log: each traffic window's prediction drift, each batch's metric and drift."""
        if not self.batches and not self.traffic:
            return "no new batches"
        parts = [f"traffic window {w.id}: {w.rows} rows, prediction drift {w.prediction_drift:.3f}"
                 for w in self.traffic if w.prediction_drift is not None]
        for batch in self.batches:
            measured = f"{batch.metric} {batch.value:.4f}" if batch.value is not None else "unlabelled"
            estimated = f" (est. {batch.estimated_value:.4f})" if batch.estimated_value is not None else ""
            parts.append(f"v{batch.dataset_version}: {measured}{estimated}, {len(batch.drifted_features)} drifted")
        return "; ".join(parts)


@dataclass
class LateWindow:
    """The rows of one window (a traffic window or an ingested batch) labelled since the last cycle:
    the policy counts them like a labelled batch, once."""
    labels_dataset_version: int  # the newest labels version among them: where a change is dated
    rows: pd.DataFrame  # the joined rows of this window in those labels versions, and no other
    traffic_window: int | None  # None: an ingested batch (already counted as a batch when it was monitored)
    value: float | None


def open_alert_by_rule(registry: Registry, project_id: int) -> dict[str, Alert]:
    return {alert.rule: alert for alert in registry.open_alerts(project_id)}


def apply_rules(registry: Registry, project: Project, rules: dict, where: str, dataset_version: int | None,
                evidence: AlertEvidence | None, by: str, cycle: CycleResult) -> None:
    """rules: rule -> message ("" when it holds). dataset_version: where a change is marked (the
    adaptive training window starts there); None for traffic, which has no rows to train on.
    evidence: what an opened alert records (None: nothing)."""
    open_alerts = open_alert_by_rule(registry, project.id)
    change_rules: list[str] = []  # the change rules that opened an alert here: one change, however many
    for rule, message in rules.items():
        cycle.firing[rule] = message
        current = open_alerts.get(rule)
        if message and current is None:
            alert_id = registry.insert_alert(project_id=project.id, rule=rule, severity=RULE_SEVERITY[rule],
                                             message=message, details=evidence)
            registry.add_event(project, "alert_opened", f"alert {alert_id} ({RULE_SEVERITY[rule]}): {message}", by,
                               {"alert_id": alert_id, "rule": rule, **evidence_json(evidence)})
            if rule in CHANGE_RULES and dataset_version is not None:
                change_rules.append(rule)
            cycle.alerts_opened.append(OpenedAlert(id=alert_id, rule=rule, severity=RULE_SEVERITY[rule],
                                                   message=message, dataset_version=dataset_version))
        elif not message and current is not None:
            registry.close_alert(current.id, "recovered")
            registry.add_event(project, "alert_recovered", f"alert {current.id} ({rule}) recovered on {where}", by,
                               {"alert_id": current.id, "rule": rule, "dataset_version": dataset_version})
            cycle.alerts_recovered.append(RecoveredAlert(id=current.id, rule=rule, dataset_version=dataset_version))
    if change_rules:
        registry.add_event(project, "change_detected", f"change detected at dataset v{dataset_version}", by,
                           {"dataset_version": dataset_version, "rule": change_rules[0], "rules": change_rules})
