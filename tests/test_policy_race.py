"""The policy's decision against a concurrent deploy, and a gate that fails after the challenger
is registered (review of app/core/services/policy.py: decide must record under the project lock, in one
transaction, and only while production is still the champion the challenger was gated against)."""

import threading

import pytest
from loop_helpers import batch, drop, make_project

from app.core.services import policy
from app.core.services.lifecycle import Keel
from app.core.store.registry import Registry


def decisions(keel, name="loan"):
    return [e for e in keel.history(name).events if e.kind == "retrain_decision"]


def deploy_from_another_keel(workspace, version):
    """A user's deploy from another Keel instance (its own registry connection and lock file
    description), on another thread, finished before the policy goes on."""
    errors = []

    def run():
        other = Keel.open(workspace)
        try:
            other.deploy("loan", version, by="user", reason="the user's choice")
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            other.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the user's deploy blocked"
    assert not errors, errors


@pytest.mark.parametrize("mode", ["auto", "approve"])
def test_a_deploy_during_the_gate_wins_and_the_challenger_is_not_promoted(workspace, monkeypatch, mode, store):
    keel = make_project(workspace, settings={"policy": mode, "window": "adaptive"})
    assert keel.train("loan").version == 2  # a version the user will deploy meanwhile
    real_gate = policy.gate

    def gate_with_a_deploy_meanwhile(*args, **kwargs):
        verdict = real_gate(*args, **kwargs)
        deploy_from_another_keel(workspace, 2)
        return verdict

    monkeypatch.setattr(policy, "gate", gate_with_a_deploy_meanwhile)
    drop(keel, "loan", batch(2, concept=1.0), "drift.csv")
    result = keel.policy.monitor("loan")

    assert result.decision == "retrained_rejected" and result.challenger_version == 3
    assert result.details.verdict.accepted  # the gate said yes, against v1; production moved to v2 meanwhile
    assert result.production_version == 2 and result.challenger_waiting is None
    project = keel.project("loan")
    deployment = store(keel).current_deployment(project.id)
    assert deployment.by == "user" and deployment.version == 2
    assert "challenger" not in store(keel).aliases(project.id)
    [event] = decisions(keel)
    assert event.details["decision"] == "retrained_rejected"
    assert event.details["champion_version"] == 1 and event.details["production_version"] == 2
    assert "production changed from v1 to v2" in event.message
    assert [v.version for v in keel.status("loan").versions] == [1, 2, 3]
    keel.close()


def test_a_failing_gate_records_a_decision_and_reraises(workspace, monkeypatch, store):
    keel = make_project(workspace, settings={"policy": "auto", "window": "adaptive"})

    def broken_gate(*args, **kwargs):
        raise RuntimeError("gate exploded")

    monkeypatch.setattr(policy, "gate", broken_gate)
    drop(keel, "loan", batch(2, concept=1.0), "drift.csv")
    with pytest.raises(RuntimeError, match="gate exploded"):
        keel.policy.monitor("loan")

    [event] = decisions(keel)
    assert event.by == "policy" and "gate exploded" in event.message and "v2" in event.message
    details = event.details
    assert details["challenger_version"] == 2 and details["champion_version"] == 1
    assert details["decision"] == "retrained_rejected" and "gate exploded" in details["error"]
    assert keel.production_version("loan") == 1
    assert "challenger" not in store(keel).aliases(keel.project("loan").id)

    # the recorded attempt backs the next firing batch off: no second retrain for a few more rows
    monkeypatch.undo()
    drop(keel, "loan", batch(3, rows=100, concept=1.0), "more-drift.csv")
    again = keel.policy.monitor("loan")
    assert again.decision == "held" and again.details.hold.hold == "back-off"
    assert [v.version for v in keel.status("loan").versions] == [1, 2]
    keel.close()


def test_a_failing_decision_write_rolls_back_and_is_explained(workspace, monkeypatch):
    # the deployment and the decision event are one transaction: if the event cannot be written,
    # production stays the champion, and the failure itself is recorded
    keel = make_project(workspace, settings={"policy": "auto", "window": "adaptive"})
    real_add_event = Registry.add_event
    calls = []

    def add_event(registry, project, kind, message, by="user", details=None):
        if kind == "retrain_decision" and not calls:
            calls.append(message)
            raise OSError("disk full")
        return real_add_event(registry, project, kind, message, by, details)

    monkeypatch.setattr(Registry, "add_event", add_event)  # every registry's: the store fails, as a full disk would
    drop(keel, "loan", batch(2, concept=1.0), "drift.csv")
    with pytest.raises(OSError, match="disk full"):
        keel.policy.monitor("loan")
    assert calls and "promoted to production" in calls[0]
    assert keel.production_version("loan") == 1
    assert not [e for e in keel.history("loan").events if e.kind == "deployed" and e.by == "policy"]
    [event] = decisions(keel)
    assert "disk full" in event.message and event.details["challenger_version"] == 2
    keel.close()
