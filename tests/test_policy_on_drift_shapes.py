"""Each drift shape, small and seeded, replayed through the services with policy auto: Keel beats
never retraining once the concept drifts, does no harm under a covariate shift, fits nothing on a
stationary stream, and restores the earlier version when a concept comes back
(bench/drift_loop.py runs the full-size streams, three seeds each, against three baselines)."""

from dataclasses import replace

import numpy as np
import pytest

from app.core.ml import datasets, training
from app.core.services import policy
from app.core.services.lifecycle import Keel
from app.demo.streams import shapes

SEED = 7
ALL = shapes()


def small(name: str, batches: int = 7, drift_at: int | None = 2, rows: int = 250):
    return replace(ALL[name], batches=batches, batch_rows=rows, drift_at=drift_at)


@pytest.fixture(autouse=True)
def one_thread_per_fit():
    """hgb's OpenMP pool oversubscribes two shared cores (a 0.2 s fit takes seconds)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def replay(tmp_path, shape, initial_rows: int = 1000):
    """-> (Keel's metric per batch, never-retrain's metric per batch, Keel's decisions, Keel's versions)."""
    keel = Keel.open(tmp_path / "ws")
    initial = shape.initial(initial_rows, SEED)
    initial.to_csv(tmp_path / "initial.csv", index=False)
    keel.create_project("s", tmp_path / "initial.csv", shape.target, shape.task, {"policy": "auto"})
    keel.deploy("s", keel.train("s").version)
    project = keel.project("s")
    schema = project.schema
    clean = datasets.clean(datasets.RawTable(initial, "initial"), schema).frame
    never = training.make_pipeline(schema, shape.task, "hgb", {}, seed=42)
    never.fit(datasets.to_model_frame(clean, schema), datasets.target_array(clean, schema))
    keel_values, never_values, decisions = [], [], []
    for index, frame in shape.stream(SEED):
        frame.to_csv(tmp_path / f"batch-{index}.csv", index=False)
        keel.ingest("s", tmp_path / f"batch-{index}.csv")
        result = keel.policy.monitor("s")
        keel_values.append(result.batches[0].value)
        decisions.append(result.decision)
        batch = datasets.clean(datasets.RawTable(frame, "batch"), schema).frame
        X, y = datasets.to_model_frame(batch, schema), datasets.target_array(batch, schema)
        never_values.append(policy.metric_value(shape.task, project.metric, y, never.predict(X), never))
    versions = [v.version for v in keel.status("s").versions]
    keel.close()
    return np.array(keel_values), np.array(never_values), decisions, versions


@pytest.mark.parametrize("name,batches,rows", [("loan-abrupt", 7, 400), ("loan-gradual", 10, 250), ("agrawal", 7, 250)])
def test_keel_beats_never_retraining_once_the_concept_drifts(tmp_path, name, batches, rows):
    shape = small(name, batches=batches, rows=rows)  # the gradual drift takes 6 batches to complete
    keel, never, decisions, _ = replay(tmp_path, shape)
    assert "retrained_deployed" in decisions
    after = slice(shape.drift_at + 2, None)
    assert keel[after].mean() > never[after].mean() + 0.02
    assert sum(d.startswith("retrained") for d in decisions) <= 1 + shape.batches / 4  # the budget


def test_a_covariate_shift_does_no_harm(tmp_path):
    shape = small("loan-covariate")
    keel, never, decisions, _ = replay(tmp_path, shape)
    assert keel[shape.drift_at:].mean() >= never[shape.drift_at:].mean() - 0.01
    assert sum(d.startswith("retrained") for d in decisions) <= 1 + shape.batches / 4


def test_no_challenger_and_no_alert_on_a_stationary_stream(tmp_path):
    keel, never, decisions, versions = replay(tmp_path, small("loan-stationary", batches=8, drift_at=None),
                                              initial_rows=1500)
    assert decisions == ["none"] * 8 and versions == [1]


def test_the_earlier_version_is_restored_when_its_concept_returns(tmp_path):
    shape = small("friedman", batches=8, drift_at=3)  # the features swap at batch 3 and swap back at batch 6
    keel, never, decisions, versions = replay(tmp_path, shape)
    assert never[3:6].mean() < 0.5 < never[6:].mean()  # v1 fails on the second concept, fits the first
    assert "retrained_deployed" in decisions[3:6]
    assert decisions[6] == "restored" and "restored" not in decisions[:6]
    assert keel[7] > 0.5
