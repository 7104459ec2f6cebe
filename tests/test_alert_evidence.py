"""An alert's evidence (Alert.details) reads every stored shape back typed and writes the same document:
the same keys in their order, the same JSON text."""

import dataclasses
import json
import pickle

import pytest

from app.core.domain.alert_evidence import (
    BatchEvidence,
    LateMeasurementEvidence,
    RecordedEvidence,
    RejectedFileEvidence,
    TrafficWindowEvidence,
    alert_evidence_from_json,
    evidence_json,
)
from app.core.domain.entities import Alert

STORED = {  # details_json as the cycle, the traffic service, the inbox and the policy store it
    BatchEvidence: '{"dataset_version": 3, "value": null, "estimated_value": 0.95, "drifted_features": ["age", "region"]}',
    TrafficWindowEvidence: '{"traffic_window": 1, "prediction_drift": 0.05, "estimated_value": 0.87}',
    LateMeasurementEvidence: '{"late_measurement": 4, "value": 0.91, "labels_dataset_version": 6}',
    RejectedFileEvidence: '{"file": "bad.csv", "reason": "no rows"}',
    RecordedEvidence: '{"champion_version": 3, "restored_version": 1, "candidates": [{"version": 1}], "p_value": 0.01}',
}


@pytest.mark.parametrize("kind", list(STORED))
def test_each_stored_shape_reads_back_typed_and_writes_the_same_text(kind):
    evidence = alert_evidence_from_json(json.loads(STORED[kind]))
    assert type(evidence) is kind
    assert json.dumps(evidence.to_json()) == STORED[kind]
    assert pickle.loads(pickle.dumps(evidence)) == evidence  # crosses the window's child process
    with pytest.raises(dataclasses.FrozenInstanceError):
        evidence.value = 0.0  # type: ignore[misc]


def test_a_batch_keeps_its_drifted_features_as_a_tuple_and_stores_a_list():
    evidence = alert_evidence_from_json(json.loads(STORED[BatchEvidence]))
    assert evidence == BatchEvidence(dataset_version=3, value=None, estimated_value=0.95, drifted_features=("age", "region"))
    assert evidence.to_json()["drifted_features"] == ["age", "region"]


def test_an_empty_or_unknown_shape_still_reads_back():
    assert alert_evidence_from_json({}) is None and alert_evidence_from_json(None) is None
    assert evidence_json(None) == {}
    reordered = {"value": 0.9, "dataset_version": 2}  # no known shape: kept as stored
    assert alert_evidence_from_json(reordered) == RecordedEvidence(reordered)
    row = {"id": 1, "project_id": 1, "rule": "labels_late", "severity": "warning", "opened_at": "2026-01-01T00:00:00",
           "message": "m", "status": "open", "closed_at": None, "details_json": "{}"}
    assert Alert.from_row(row).details is None and Alert.from_row(row).to_json()["details"] == {}
