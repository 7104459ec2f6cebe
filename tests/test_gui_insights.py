"""app/core/services/insights.py: the rules behind the project list's health and the model comparison (no Qt)."""

import pytest
from store_helpers import opened_store

from app.core.domain.cards import CommonRows, ComparedVersion
from app.core.services import insights
from app.core.services.lifecycle import Keel


@pytest.fixture
def keel(demo_workspace):
    keel = Keel.open(demo_workspace)
    yield keel
    keel.close()


def record(keel, value, estimated=None):
    project = keel.project("demo-credit")
    with opened_store(keel) as registry, registry.transaction():
        deployment = registry.current_deployment(project.id)
        registry.insert_monitor_result(project_id=project.id, model_version_id=deployment.model_version_id,
                                            rows=100, labelled_rows=100 if value is not None else 0,
                                            metric="accuracy", value=value, estimated_value=estimated)


def test_health_follows_threshold_drop_and_alerts(keel):
    health = keel.insights.health("demo-credit")
    assert health.state == "ok" and health.production_version == 1 and health.current_value is None
    trained = health.training_value
    record(keel, trained - 0.01)
    assert keel.insights.health("demo-credit").state == "ok"
    record(keel, None, estimated=trained - 0.08)  # an unlabelled batch: the estimate counts, and says so
    health = keel.insights.health("demo-credit")
    assert health.state == "warning" and health.current_is_estimate
    record(keel, 0.7)  # below the demo's threshold 0.8
    health = keel.insights.health("demo-credit")
    assert health.state == "alert" and "threshold" in health.reasons[0]
    card = keel.insights.production_card("demo-credit")
    assert card.production is not None and card.production.version == 1 and len(card.sparkline) == 3


def test_compare_versions_gives_confusion_and_importances(keel):
    keel.set_project("demo-credit", {"preset": "random_forest", "params": {"n_estimators": 20}})
    keel.train("demo-credit")
    result = keel.insights.compare_versions("demo-credit", [1, 2])
    hgb, forest = result.versions
    assert hgb.importance_kind == "permutation"  # HistGradientBoosting has no feature_importances_
    assert forest.importance_kind == "impurity"  # summed back from one-hot columns onto input columns
    features = keel.project("demo-credit").schema.features
    assert set(forest.importances) == set(features)
    assert sum(forest.importances.values()) == pytest.approx(1.0)
    for entry in (hgb, forest):
        assert entry.classes == ("0", "1")
        assert sum(map(sum, entry.confusion)) == entry.rows > 0


def test_compare_versions_scores_both_on_data_neither_has_seen(keel, tmp_path, monkeypatch):
    from app.core.ml import datasets, training
    from app.demo.simulator import make_batch

    monkeypatch.setattr(insights, "importances", lambda *args: (None, {}))  # not what this checks, and slow

    keel.set_project("demo-credit", {"preset": "logreg"})
    keel.train("demo-credit")
    assert keel.insights.compare_versions("demo-credit", [1, 2]).common is None  # nothing new since v2

    later = make_batch(250, seed=99, concept=1.0)
    later.to_csv(tmp_path / "later.csv", index=False)
    version = keel.ingest("demo-credit", tmp_path / "later.csv").dataset_version
    result = keel.insights.compare_versions("demo-credit", [1, 2])
    assert result.common == CommonRows(rows=250, dataset_versions=(version,))

    project = keel.project("demo-credit")
    frame = keel.dataset_frame("demo-credit", version)
    X, y = datasets.to_model_frame(frame, project.schema), datasets.target_array(frame, project.schema)
    for entry in result.versions:
        expected = training.evaluate_pipeline(keel.load_version("demo-credit", entry.version).model,
                                              "classification", X, y)
        assert entry.common_metrics == pytest.approx(expected)
        assert entry.common_metrics["accuracy"] != pytest.approx(entry.metrics["accuracy"])


def test_metric_comparison_respects_each_metrics_direction():
    entries = [compared(1, {"accuracy": 0.80, "log_loss": 0.40}, later={"accuracy": 0.70}),
               compared(2, {"accuracy": 0.85, "log_loss": 0.50}, later={"accuracy": 0.75})]
    rows = insights.metric_comparison(entries, "log_loss")
    assert [r.metric for r in rows] == ["log_loss", "accuracy"]  # the primary metric first
    assert rows[0].verdict == "v1 better" and rows[0].delta == pytest.approx(0.10)
    assert rows[1].verdict == "v2 better"
    [later] = insights.metric_comparison(entries, "log_loss", on_common_rows=True)  # on the rows neither saw
    assert (later.metric, later.a, later.b, later.verdict) == ("accuracy", 0.70, 0.75, "v2 better")


def compared(version: int, metrics: dict[str, float], later: dict[str, float]) -> ComparedVersion:
    return ComparedVersion(version=version, metrics=metrics, rows=0, confusion=None, classes=(), importance_kind=None,
                           importances={}, params={}, common_metrics=later)
