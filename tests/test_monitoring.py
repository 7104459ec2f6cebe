"""One monitoring cycle: metrics, drift, the estimate, and alerts (de-duplication, recovery)."""

from types import SimpleNamespace

import pytest
from loop_helpers import batch, cli, drop, make_project
from store_helpers import monitoring_service

from app.core.domain.errors import KeelError
from app.core.domain.settings import ProjectSettings
from app.core.ml import reference_file
from app.core.ml.datasets import to_model_frame
from app.core.services import monitoring, policy
from app.core.services.lifecycle import Keel
from app.core.services.monitoring import MonitoringService


@pytest.fixture
def keel(workspace):
    keel = make_project(workspace)
    yield keel
    keel.close()


def test_a_labelled_batch_is_measured_estimated_and_evaluated_once(keel, store):
    drop(keel, "loan", batch(1), "b1.csv")
    result = keel.policy.monitor("loan")
    assert [b.dataset_version for b in result.batches] == [2]
    measured = result.batches[0]
    assert measured.labelled and measured.rows == 300 and measured.metric == "accuracy"
    assert 0.85 < measured.value <= 1.0
    assert measured.estimated_value == pytest.approx(measured.value, abs=0.08)
    assert measured.drifted_features == ()
    assert result.decision == "none" and result.alerts_opened == ()
    stored = store(keel).monitor_results(keel.project("loan").id)
    assert len(stored) == 1
    details = stored[0].details
    assert set(details.per_class) == {"0", "1"}
    assert list(details.features) == keel.project("loan").schema.features
    assert details.prediction_drift.psi >= 0
    assert keel.policy.monitor("loan").batches == ()  # evaluated once


def test_an_unlabelled_batch_gets_drift_and_an_estimate_only(keel):
    drop(keel, "loan", batch(2, labelled=False), "unlabelled.csv")
    measured = keel.policy.monitor("loan").batches[0]
    assert not measured.labelled and measured.value is None
    assert 0.5 < measured.estimated_value <= 1.0


def test_covariate_shift_opens_one_drift_alert_naming_the_features(keel):
    drop(keel, "loan", batch(3, shift=1.0), "shifted.csv")
    result = keel.policy.monitor("loan")
    drifted = result.batches[0].drifted_features
    assert {"income", "age"} <= set(drifted)
    opened = {a.rule: a for a in result.alerts_opened}
    assert "drift_share" in opened and "income" in opened["drift_share"].message
    drop(keel, "loan", batch(4, shift=1.0), "shifted-again.csv")
    assert keel.policy.monitor("loan").alerts_opened == ()  # still firing: no second alert
    open_rules = [a.rule for a in keel.status("loan").open_alerts]
    assert sorted(open_rules) == sorted(opened)


def test_threshold_alert_is_deduplicated_then_recovers(keel, store):
    keel.set_project("loan", {"threshold": 0.999})
    drop(keel, "loan", batch(5), "a.csv")
    first = keel.policy.monitor("loan")
    assert [a.rule for a in first.alerts_opened] == ["metric_threshold"]
    assert first.alerts_opened[0].severity == "critical"
    assert first.decision == "alert"
    drop(keel, "loan", batch(6), "b.csv")
    second = keel.policy.monitor("loan")
    assert second.alerts_opened == () and second.decision == "alert"
    keel.set_project("loan", {"threshold": 0.5})
    drop(keel, "loan", batch(7), "c.csv")
    third = keel.policy.monitor("loan")
    assert [a.rule for a in third.alerts_recovered] == ["metric_threshold"]
    assert third.decision == "none"
    alerts = store(keel).alerts(keel.project("loan").id)
    assert [(a.rule, a.status) for a in alerts] == [("metric_threshold", "recovered")]
    kinds = [e.kind for e in keel.history("loan").events]
    assert kinds.count("alert_opened") == 1 and kinds.count("alert_recovered") == 1


def test_an_acknowledged_alert_reopens_if_the_rule_still_fires(keel):
    keel.set_project("loan", {"threshold": 0.999})
    drop(keel, "loan", batch(8), "a.csv")
    alert_id = keel.policy.monitor("loan").alerts_opened[0].id
    keel.acknowledge_alert("loan", alert_id)
    drop(keel, "loan", batch(9), "b.csv")
    reopened = keel.policy.monitor("loan").alerts_opened
    assert [a.rule for a in reopened] == ["metric_threshold"] and reopened[0].id != alert_id


def test_an_unlabelled_batch_leaves_measured_alerts_alone_and_checks_the_estimate(keel):
    keel.set_project("loan", {"threshold": 0.999})
    drop(keel, "loan", batch(10), "labelled.csv")
    keel.policy.monitor("loan")
    drop(keel, "loan", batch(11, labelled=False), "unlabelled.csv")
    result = keel.policy.monitor("loan")
    assert result.alerts_recovered == ()
    assert [a.rule for a in result.alerts_opened] == ["estimated_threshold"]
    assert {a.rule for a in keel.status("loan").open_alerts} == {"metric_threshold", "estimated_threshold"}


def test_policy_off_records_results_without_alerts(keel):
    keel.set_project("loan", {"policy": "off", "threshold": 0.999})
    drop(keel, "loan", batch(12, shift=1.0), "a.csv")
    result = keel.policy.monitor("loan")
    assert len(result.batches) == 1 and result.alerts_opened == () and result.decision == "none"
    assert keel.status("loan").open_alerts == ()


def _result(value, estimated=None, drifted=(), share=0.0, metric="accuracy"):
    return monitoring.BatchResult(dataset_version=3, rows=100, labelled=value is not None, labelled_rows=100,
                                  metric=metric, value=value, estimated_value=estimated,
                                  drifted_features=tuple(drifted), drift_share=share, prediction_drift=None)


def test_rules_respect_the_metric_direction():
    higher = ProjectSettings(metric="accuracy", threshold=0.8, max_drop=0.05)
    rules = monitoring.check_rules(_result(0.78), higher, training_value=0.9)
    assert rules["metric_threshold"] and rules["metric_drop"] and rules["drift_share"] == ""
    assert "estimated_threshold" not in rules  # labelled: the measured value decides
    ok = monitoring.check_rules(_result(0.86), higher, training_value=0.9)
    assert ok["metric_threshold"] == "" and ok["metric_drop"] == ""
    lower = ProjectSettings(metric="log_loss", threshold=0.5, max_drop=0.05)
    worse = monitoring.check_rules(_result(0.6, metric="log_loss"), lower, training_value=0.3)
    assert "ceiling" in worse["metric_threshold"] and worse["metric_drop"]
    better = monitoring.check_rules(_result(0.2, metric="log_loss"), lower, training_value=0.3)
    assert better["metric_threshold"] == "" and better["metric_drop"] == ""


def test_rules_without_data_are_absent():
    settings = ProjectSettings(threshold=None, drift_share=0.3)
    rules = monitoring.check_rules(_result(None, estimated=0.5, drifted=["a", "b"], share=0.5), settings, None)
    assert set(rules) == {"drift_share"} and rules["drift_share"]
    with_threshold = ProjectSettings(threshold=0.8)
    rules = monitoring.check_rules(_result(None, estimated=0.7), with_threshold, 0.9)
    assert rules["estimated_threshold"] and "metric_threshold" not in rules and "metric_drop" not in rules


def test_monitor_json_shape_through_the_cli(keel, capsys):
    drop(keel, "loan", batch(13), "a.csv")
    code, out = cli(capsys, keel.root, "monitor", "loan", "--once")
    assert code == 0
    assert {"batches", "alerts_opened", "decision", "production_version"} <= set(out)
    assert set(out["batches"][0]) >= {"dataset_version", "rows", "labelled", "metric", "value", "estimated_value",
                                      "drifted_features"}
    assert out["decision"] in policy.DECISIONS
    assert out["production_version"] == 1


def test_monitor_without_a_production_model_is_refused_after_the_sweep(workspace, capsys, store):
    keel = make_project(workspace, deploy=False)
    drop(keel, "loan", batch(14), "a.csv")
    with pytest.raises(KeelError, match="no production model"):
        keel.policy.monitor("loan")
    assert len(store(keel).dataset_versions(keel.project("loan").id)) == 2  # the inbox was swept
    code, out = cli(capsys, workspace, "monitor", "loan", "--once")
    assert code == 2 and "no production model" in out["error"]["message"]
    keel.close()


def test_the_reference_is_stored_at_deployment_and_no_cycle_predicts_the_reference_rows(keel, monkeypatch):
    stored = reference_file.path_for(keel.root / _production(keel).model_version.artifact_path)
    assert stored.is_file()
    monkeypatch.setattr(MonitoringService, "prepare_reference",
                        lambda self, loaded: pytest.fail("reference rows predicted"))
    for index in range(2):
        assert len(_monitor_as_a_new_process(keel, batch(20 + index), f"r{index}.csv").batches) == 1


def _monitor_as_a_new_process(keel, frame, filename: str):
    """A monitoring cycle of a new `monitor` process on keel's workspace: no drift reference in memory."""
    fresh = Keel.open(keel.root)
    try:
        drop(fresh, "loan", frame, filename)
        return fresh.policy.monitor("loan")
    finally:
        fresh.close()


def test_a_cycle_decides_the_same_from_the_stored_reference_as_from_the_reference_rows(keel, store):
    loaded = _production(keel)
    path = reference_file.path_for(keel.root / loaded.model_version.artifact_path)
    stored = reference_file.load(path, loaded.model_version.sha256, loaded.model.classes_)
    prepared = monitoring_service(keel, store(keel)).prepare_reference(loaded)
    for frame in (batch(30), batch(31, shift=1.0, concept=1.0), batch(32).assign(default=None)):
        row = SimpleNamespace(version=9)  # the dataset version the batch would be
        assert (monitoring.evaluate_batch(loaded, stored, frame, row, "accuracy")
                == monitoring.evaluate_batch(loaded, prepared, frame, row, "accuracy"))
    proba = loaded.model.predict_proba(to_model_frame(batch(33), loaded.project.schema))
    assert stored.estimator.calibrated(proba).tolist() == prepared.estimator.calibrated(proba).tolist()
    summary = monitoring.probability_summary(proba)
    assert stored.probability.compare(summary) == prepared.probability.compare(summary)


def test_a_missing_or_damaged_stored_reference_is_prepared_again_and_stored(keel):
    """A workspace of an earlier release has none for its deployed version; a damaged one is not trusted."""
    path = reference_file.path_for(keel.root / _production(keel).model_version.artifact_path)
    path.unlink()
    _monitor_as_a_new_process(keel, batch(40), "a.csv")
    assert path.is_file()
    path.write_bytes(path.read_bytes()[:-200])
    assert reference_file.load(path, _production(keel).model_version.sha256, [0, 1]) is None
    assert len(_monitor_as_a_new_process(keel, batch(41), "b.csv").batches) == 1
    assert reference_file.load(path, _production(keel).model_version.sha256, [0, 1]) is not None


def _production(keel):
    return keel.load_production("loan")




def test_monitoring_predicts_with_native_thread_pools_capped_to_the_cores_left(keel, monkeypatch):
    """On a busy machine (load average at the core count) a cycle's predictions get one thread per pool."""
    import os

    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1), 0.0, 0.0))
    loaded = _production(keel)
    seen = []
    predict = loaded.model.predict
    monkeypatch.setattr(loaded.model, "predict",
                        lambda X: (seen.extend(pool["num_threads"] for pool in threadpool_info()), predict(X))[1])
    reference = keel.monitoring.reference_for(loaded)
    with threadpool_limits(limits=2):  # as a process outside this test's one-thread fixture starts
        monitoring.evaluate_batch(loaded, reference, batch(50), SimpleNamespace(version=9), "accuracy")
    assert seen and set(seen) == {1}
