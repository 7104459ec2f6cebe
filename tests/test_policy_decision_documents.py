"""The policy's decision documents stay as they were: `monitor --once --json`'s `details` and
`change_detected` (keys in order, values) and the details the audit log stores for each decision
(events.details_json, text), for a promoted retrain, a rejected one, its holds (back-off, budget,
new rows) and a change the detector dated. The documents are pinned in
tests/fixtures/policy_decision_documents.json (to regenerate them, only when a key is deliberately
added: KEEL_PIN_DOCUMENTS=write pytest tests/test_policy_decision_documents.py, and review the diff)."""

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest
from loop_helpers import batch, cli, drop, make_project
from store_helpers import sql_row, sql_rows

from app.core.domain.decisions import ChangeFinding, CycleDetails, HeldDetails, RestoreDetails, RetrainDetails
from app.core.domain.errors import KeelError

GOLDEN = Path(__file__).parent / "fixtures" / "policy_decision_documents.json"
POLICY_EVENTS = ("retrain_decision", "restore_decision", "retrain_held", "retrain_hold_ended", "change_detected",
                 "retrain_cancelled")


def rounded(value):
    """The document with its floats at 9 significant digits (the order of keys kept)."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def stored_details(registry, after_id: int) -> tuple[list[dict], int]:
    """The policy's events after `after_id`: kind and details_json (checked to be json.dumps' own text)."""
    rows = sql_rows(registry, f"SELECT id, kind, details_json FROM events WHERE id > ? AND kind IN "
                              f"({', '.join('?' for _ in POLICY_EVENTS)}) ORDER BY id", (after_id, *POLICY_EVENTS))
    newest = sql_rows(registry, "SELECT COALESCE(MAX(id), 0) AS id FROM events")[0]["id"]
    events = []
    for row in rows:
        details = json.loads(row["details_json"])
        assert json.dumps(details) == row["details_json"]  # the text is json.dumps of the document, in its order
        events.append({"kind": row["kind"], "details": rounded(details)})
    return events, newest


def through_the_cli(capsys, workspace: Path, keel) -> dict:
    code, out = cli(capsys, workspace, "monitor", "loan", "--once")
    assert code == 0, out
    return out


def through_the_service(capsys, workspace: Path, keel) -> dict:
    """The typed outcome (frozen, pickles, details of a decision's own type) and its document."""
    outcome = keel.policy.monitor("loan")
    assert isinstance(outcome.details, EXPECTED_DETAILS[outcome.decision])
    assert outcome.change_detected is None or isinstance(outcome.change_detected, ChangeFinding)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.details.change_detected = None  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(outcome)) == outcome  # crosses the window's child process as it is
    return json.loads(json.dumps(outcome.to_json()))


EXPECTED_DETAILS = {"none": CycleDetails, "alert": CycleDetails, "held": HeldDetails, "retrained_rejected": RetrainDetails,
                    "retrained_deployed": RetrainDetails, "retrained_waiting": RetrainDetails,
                    "restored": RestoreDetails, "restore_waiting": RestoreDetails}


def monitored_documents(capsys, workspace: Path, store, settings: dict, batches: list, rows: int = 800,
                        monitor=through_the_cli, after_cycle=None) -> list[dict]:
    """Each cycle's decision, `details`, `change_detected` (monitor --once --json) and the policy's events.
    after_cycle(keel, index, document): checks of the workspace after each cycle."""
    keel = make_project(workspace, rows=rows, settings=settings)
    registry = store(workspace)
    documents, seen = [], stored_details(registry, 0)[1]
    try:
        for index, frame in enumerate(batches):
            drop(keel, "loan", frame, f"batch-{index}.csv")
            out = monitor(capsys, workspace, keel)
            events, seen = stored_details(registry, seen)
            state = sql_row(registry, "SELECT budget_json, detector_json FROM policy_state")
            documents.append({"decision": out["decision"], "details": rounded(out["details"]),
                              "change_detected": rounded(out["change_detected"]), "events": events,
                              "budget": rounded(json.loads(state["budget_json"])),
                              "detector": rounded(json.loads(state["detector_json"]))})
            if after_cycle is not None:
                after_cycle(keel, index, out)
    finally:
        keel.close()
    return documents


def rejected_and_held(capsys, workspace: Path, store, after_cycle=None) -> list[dict]:
    """Stationary data and an unreachable floor: rejected, held (back-off), held (budget), rejected. (The
    policy service's typed outcomes: their to_json() is what `monitor --once --json` prints.)"""
    return monitored_documents(capsys, workspace, store, {"policy": "auto", "threshold": 0.999},
                               [batch(5), batch(6, rows=100), batch(7, rows=250), batch(17, rows=100)],
                               monitor=through_the_service, after_cycle=after_cycle)


def promoted_after_a_detected_change(capsys, workspace: Path, store) -> list[dict]:
    """Four stationary batches, then a change the detector dates: promoted, held (new rows), a follow-up
    promoted; then the old concept again: the first version is restored."""
    concepts = [0.0, 0.0, 0.0, 0.0, 0.6, 0.8, 0.0, 0.0]
    return monitored_documents(capsys, workspace, store, {"policy": "auto"},
                               [batch(60 + index, rows=300, concept=c) for index, c in enumerate(concepts)], rows=1000)


def assert_same_documents(name: str, documents: list[dict]) -> None:
    pinned = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("KEEL_PIN_DOCUMENTS") == "write":
        GOLDEN.write_text(json.dumps({**pinned, name: documents}, indent=1) + "\n")
    expected = json.loads(GOLDEN.read_text())[name]
    assert [d["decision"] for d in documents] == [e["decision"] for e in expected]
    for document, want in zip(documents, expected):
        # json.dumps compares the order of the keys as well as the values
        assert json.dumps(document) == json.dumps(want), document["decision"]


def test_a_challenger_that_is_not_better_is_kept_but_not_deployed_and_its_holds_are_documented_as_always(
        capsys, workspace, store):
    def after_cycle(keel, index, document):
        # rejected: kept as v2, not deployed, not waiting; the same champion is challenged again only once
        # its unseen rows have doubled (back-off) and the budget has a challenger; then v3, rejected too
        assert [v.version for v in keel.status("loan").versions] == [[1, 2], [1, 2], [1, 2], [1, 2, 3]][index]
        assert document["production_version"] == 1 and keel.status("loan").versions[1].aliases == ()
        if index == 0:
            with pytest.raises(KeelError, match="no challenger"):
                keel.policy.approve("loan")
        if index == 1:
            assert "metric_threshold" in document["message"]

    documents = rejected_and_held(capsys, workspace, store, after_cycle)
    assert [d["decision"] for d in documents] == ["retrained_rejected", "held", "held", "retrained_rejected"]
    assert not documents[0]["details"]["accepted"]
    assert documents[0]["details"]["rule"] == "better"  # a threshold the user set does not start a drift
    assert [d["details"].get("hold") for d in documents] == [None, "back-off", "budget", None]
    assert_same_documents("rejected_and_held", documents)


def test_a_detected_change_its_retrains_and_a_restore_print_and_store_the_documents_they_always_had(
        capsys, workspace, store):
    documents = promoted_after_a_detected_change(capsys, workspace, store)
    assert [d["decision"] for d in documents] == ["none"] * 4 + ["retrained_deployed", "held", "retrained_deployed",
                                                                   "restored"]
    change = documents[4]["change_detected"]
    assert change is not None and change == documents[4]["details"]["change_detected"]
    assert [e["kind"] for e in documents[4]["events"]][:2] == ["change_detected", "change_detected"]
    assert documents[7]["details"]["restored_version"] == 1
    assert_same_documents("promoted_after_a_detected_change", documents)


def test_the_policy_state_reads_back_every_budget_and_detector_it_stored():
    from app.core.domain.decisions import DetectorState, RetrainBudget

    pinned = json.loads(GOLDEN.read_text())
    documents = [document for scenario in pinned.values() for document in scenario]
    for document in documents:
        for kind, stored in ((RetrainBudget, document["budget"]), (DetectorState, document["detector"])):
            assert json.dumps(kind.from_json(stored).to_json()) == json.dumps(stored)  # key for key, in order
    assert RetrainBudget.from_json({}).to_json() == {} and DetectorState.from_json({}).to_json() == {}
    # a drift that started after a challenger was fitted came last in the dict the policy wrote: the same
    # values come back, the keys in the budget's own order
    later_drift = {"batches": 9, "tokens": 0.5, "retrains": 1, "momentum": False, "drift": {"since": 8, "rejected": 0}}
    assert RetrainBudget.from_json(later_drift).to_json() == later_drift
