"""Monitoring at its edges: drift references kept per project, a batch of a class the model never
saw, acknowledging an alert that is already closed."""

import pytest
from cli_helpers import loans_csv


def test_drift_reference_cache_is_per_project_not_per_file_hash(monkeypatch, tmp_path):
    """The same skops file imported into two projects has one sha256; a cache keyed by the hash
    alone would give the second project the first project's drift reference."""
    from types import SimpleNamespace

    from app.core.services.cache import BoundedCache
    from app.core.services.monitoring import MonitoringService

    service = MonitoringService(registry=None, workspace=None, data=None, traffic=None,  # a cached read needs none
                                drift_references=BoundedCache(8))
    monkeypatch.setattr(service, "stored_reference", lambda loaded: ("reference of", loaded.project.name))
    same_file = "ab" * 32
    first = SimpleNamespace(project=SimpleNamespace(name="a"), model_version=SimpleNamespace(id=1, version=1, sha256=same_file))
    second = SimpleNamespace(project=SimpleNamespace(name="b"), model_version=SimpleNamespace(id=2, version=1, sha256=same_file))
    assert service.reference_for(first) == ("reference of", "a")
    assert service.reference_for(second) == ("reference of", "b")
    assert service.reference_for(first) == ("reference of", "a")


@pytest.mark.filterwarnings("error::UserWarning")
def test_monitoring_a_labelled_batch_made_only_of_a_class_the_model_never_saw(tmp_path):
    """A small labelled batch whose every label is new (ingest accepts it with a warning): the
    cycle records its result (accuracy 0) and the batch is evaluated once, without scikit-learn's
    warnings about the unseen class reaching the log; a failure before the record would fail every
    later cycle on the same pending batch."""
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import make_batch

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        keel.deploy("p", keel.train("p").version)
        new_class = make_batch(40, seed=99).assign(default=2)
        new_class.to_csv(tmp_path / "new.csv", index=False)
        ingested = keel.ingest("p", tmp_path / "new.csv")
        assert any("unseen in training" in w for w in ingested.warnings)
        result = keel.policy.monitor("p")
        [batch] = result.batches
        assert batch.dataset_version == ingested.dataset_version and batch.value == 0.0
        assert keel.policy.monitor("p").batches == ()  # evaluated once, not stuck
    finally:
        keel.close()


def test_acknowledging_a_closed_alert_writes_no_acknowledged_event(tmp_path, store):
    """An alert that recovered (or was acknowledged) already is refused, and the audit log gets no
    "alert N acknowledged" event for it."""
    from app.core.domain.errors import KeelError
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        project = keel.project("p")
        with store(keel).transaction():
            alert_id = store(keel).insert_alert(project_id=project.id, rule="drift_share", severity="warning",
                                                  message="probe")
        keel.acknowledge_alert("p", alert_id)
        with store(keel).transaction():
            recovered = store(keel).insert_alert(project_id=project.id, rule="metric_drop", severity="warning",
                                                   message="probe")
            store(keel).close_alert(recovered, "recovered")
        for closed in (alert_id, recovered):
            with pytest.raises(KeelError, match="already"):
                keel.acknowledge_alert("p", closed)
        acknowledged = [e for e in store(keel).events(project.id) if e.kind == "alert_acknowledged"]
        assert [e.message.split()[1] for e in acknowledged] == [str(alert_id)]
    finally:
        keel.close()


def test_two_change_rules_firing_on_one_batch_mark_one_change(tmp_path, store):
    """A batch that both drops below the threshold and drifts opens two alerts but is one change:
    the audit log (and the report's decisions) get one change_detected event naming both rules."""
    from app.core.services.cycle import CycleResult, apply_rules
    from app.core.services.lifecycle import Keel

    workspace = tmp_path / "ws"
    keel = Keel.open(workspace)
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification")
    finally:
        keel.close()
    registry = store(workspace)
    project = registry.project("p")
    cycle = CycleResult(project="p", production_version=None)
    rules = {"metric_threshold": "accuracy 0.61 below 0.80", "metric_drop": "", "drift_share": "60% of features drifted"}
    with registry.transaction():
        apply_rules(registry, project, rules, "dataset v2", 2, None, "test", cycle)
    [change] = [event for event in registry.events(project.id) if event.kind == "change_detected"]
    assert change.message == "change detected at dataset v2"
    assert change.details == {"dataset_version": 2, "rule": "metric_threshold", "rules": ["metric_threshold", "drift_share"]}
    assert [alert.rule for alert in cycle.alerts_opened] == ["metric_threshold", "drift_share"]
