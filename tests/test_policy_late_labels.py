"""The policy counts a window labelled late like a labelled batch, once: its rows feed the change
detector and score the earlier versions (app/core/services/policy.py, traffic.late_windows)."""

from loop_helpers import batch, drop, make_project
from store_helpers import opened_store

from app.core.store import policy_state


def with_ids(frame, prefix: str):
    return frame.assign(customer_id=[f"{prefix}-{i}" for i in range(len(frame))])


def add_labels(keel, frame, path):
    labels = frame[["customer_id", "default"]].rename(columns={"customer_id": "id", "default": "label"})
    labels.to_csv(path, index=False)
    return keel.labels.add_labels("loan", path)


def detector_and_budget(keel):
    with opened_store(keel) as registry:
        state = policy_state.read_policy_state(registry, keel.project("loan").id)
    return state.detector.cusum, state.budget


def test_a_batch_labelled_late_brings_back_the_earlier_version(workspace):
    keel = make_project(workspace, settings={"policy": "auto"})
    drop(keel, "loan", batch(40, rows=400, concept=1.0), "b.csv")
    assert keel.policy.monitor("loan").decision == "retrained_deployed" and keel.production_version("loan") == 2
    keel.set_project("loan", {"id_column": "customer_id"})
    concept_a = with_ids(batch(41, rows=400, concept=0.0), "a")
    drop(keel, "loan", concept_a.drop(columns="default"), "a-unlabelled.csv")
    unlabelled = keel.policy.monitor("loan")
    assert unlabelled.batches[0].labelled is False and unlabelled.production_version == 2

    assert add_labels(keel, concept_a, workspace / "labels.csv").joined == 400
    result = keel.policy.monitor("loan")
    assert result.batches == () and len(result.late_labels) == 1
    assert result.decision == "restored" and result.production_version == 1
    assert result.details.best.verdict.gate_rows == 400  # scored on the rows joined late, each once
    again = keel.policy.monitor("loan")
    assert again.late_labels == () and again.decision == "none" and again.production_version == 1
    keel.close()


def test_late_labels_feed_the_change_detector_once_per_window(workspace):
    keel = make_project(workspace, settings={"policy": "alert"})
    keel.set_project("loan", {"id_column": "customer_id"})
    served = with_ids(batch(42, rows=300), "served")
    served.drop(columns="default").to_csv(workspace.parent / "to-score.csv", index=False)
    keel.predict("loan", workspace.parent / "to-score.csv", workspace.parent / "scored.csv")
    ingested = with_ids(batch(43, rows=200), "ingested")
    drop(keel, "loan", ingested.drop(columns="default"), "unlabelled.csv")
    first = keel.policy.monitor("loan")
    assert len(first.traffic) == 1 and first.batches[0].labelled is False
    detector, budget = detector_and_budget(keel)
    assert detector["batches"] == 0 and budget.batches == 1  # the unlabelled batch counts; the window not yet

    # labels for both windows, in two files: the second labels rows of the same windows for the first time
    add_labels(keel, served.iloc[:200], workspace / "labels-1.csv")
    add_labels(keel, ingested.iloc[:150], workspace / "labels-2.csv")
    add_labels(keel, served.iloc[200:], workspace / "labels-3.csv")
    late = keel.policy.monitor("loan")
    assert late.batches == () and len(late.late_labels) == 2
    detector, budget = detector_and_budget(keel)
    assert detector["batches"] == 2 and detector["reference_rows"] == 300 + 150  # one update per window, every row once
    assert budget.batches == 2  # the traffic window now counts as a batch; the batch was counted already

    repeat = keel.policy.monitor("loan")
    assert repeat.late_labels == ()
    assert detector_and_budget(keel) == (detector, budget)
    keel.close()
