"""What an alert records of the measurement that opened it (Alert.details; the alerts row's details_json
and its alert_opened event): a monitored batch, a traffic window, a window measured late, a rejected
inbox file. An alert of label coverage records nothing (None). to_json() is the stored document (its
keys in their order); alert_evidence_from_json() reads every shape ever stored back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class StoredEvidence(Protocol):
    """Anything an alert can store: a document under named keys."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BatchEvidence:
    """A monitored batch: its dataset version, measured and estimated metric, drifted features."""

    dataset_version: int
    value: float | None  # None: an unlabelled batch
    estimated_value: float | None
    drifted_features: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, "value": self.value,
                "estimated_value": self.estimated_value, "drifted_features": list(self.drifted_features)}


@dataclass(frozen=True)
class TrafficWindowEvidence:
    """A traffic window of served predictions: its id, prediction drift (PSI) and estimated metric."""

    traffic_window: int
    prediction_drift: float | None
    estimated_value: float | None

    def to_json(self) -> dict[str, Any]:
        return {"traffic_window": self.traffic_window, "prediction_drift": self.prediction_drift,
                "estimated_value": self.estimated_value}


@dataclass(frozen=True)
class LateMeasurementEvidence:
    """A window measured once its labels came late: the measurement's id, value and labels version."""

    late_measurement: int
    value: float | None
    labels_dataset_version: int | None

    def to_json(self) -> dict[str, Any]:
        return {"late_measurement": self.late_measurement, "value": self.value,
                "labels_dataset_version": self.labels_dataset_version}


@dataclass(frozen=True)
class RejectedFileEvidence:
    """An inbox file that could not be read: its name and why."""

    file: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason}


@dataclass(frozen=True)
class RecordedEvidence:
    """Any other stored shape (a policy's restore decision, what an earlier release stored), kept as
    it was read: a document under named keys, shown and written back unchanged."""

    document: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.document)


AlertEvidence = BatchEvidence | TrafficWindowEvidence | LateMeasurementEvidence | RejectedFileEvidence | RecordedEvidence

_SHAPES: tuple[tuple[type, tuple[str, ...]], ...] = (
    (BatchEvidence, ("dataset_version", "value", "estimated_value", "drifted_features")),
    (TrafficWindowEvidence, ("traffic_window", "prediction_drift", "estimated_value")),
    (LateMeasurementEvidence, ("late_measurement", "value", "labels_dataset_version")),
    (RejectedFileEvidence, ("file", "reason")),
)


def alert_evidence_from_json(document: Mapping[str, Any] | None) -> AlertEvidence | None:
    """The typed evidence of a stored details document, picked by its keys (exactly one shape's, in
    its order); {} or None -> None; any other shape -> RecordedEvidence."""
    if not document:
        return None
    keys = tuple(document)
    for kind, shape in _SHAPES:
        if keys == shape:
            if kind is BatchEvidence:
                return BatchEvidence(document["dataset_version"], document["value"], document["estimated_value"],
                                     tuple(document["drifted_features"]))
            return kind(**document)
    return RecordedEvidence(dict(document))


def evidence_json(evidence: StoredEvidence | None) -> dict[str, Any]:
    """The stored document of an alert's evidence ({} for none)."""
    return evidence.to_json() if evidence is not None else {}
