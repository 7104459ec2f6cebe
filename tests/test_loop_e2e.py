"""End to end through the CLI: a stationary stream, then an abrupt concept drift,
monitored with `monitor --once`, ending in a promoted challenger."""

from loop_helpers import cli, drop

from app.core.services.lifecycle import Keel
from app.demo.simulator import StreamSpec, initial_training_data, stream


def test_stationary_then_drifting_stream_ends_in_a_promoted_challenger(workspace, capsys):
    data = workspace / "initial.csv"
    initial_training_data(rows=1000, seed=3).to_csv(data, index=False)
    code, _ = cli(capsys, workspace, "project", "create", "loan", "--data", str(data), "--target", "default",
                  "--policy", "auto", "--window", "adaptive")
    assert code == 0
    assert cli(capsys, workspace, "train", "loan")[0] == 0
    assert cli(capsys, workspace, "deploy", "loan", "--version", "1")[0] == 0

    keel = Keel.open(workspace)
    spec = StreamSpec(kind="abrupt", batches=6, batch_rows=300, drift_at=3, seed=21)
    outcomes = []
    for index, frame in stream(spec):
        drop(keel, "loan", frame, f"batch-{index:02d}.csv")
        code, out = cli(capsys, workspace, "monitor", "loan", "--once")
        assert code == 0, out
        assert [item["status"] for item in out["inbox"]] == ["processed"]
        [measured] = out["batches"]
        outcomes.append((measured["value"], out["decision"], out["production_version"],
                         [a["rule"] for a in out["alerts_opened"]]))

    stationary, drifted = outcomes[:3], outcomes[3:]
    assert all(decision == "none" and alerts == [] and version == 1 for _, decision, version, alerts in stationary)
    assert all(value > 0.85 for value, *_ in stationary)
    value, decision, version, alerts = drifted[0]
    assert value < 0.8 and "metric_drop" in alerts  # the alert comes with the first drifted batch
    assert decision == "retrained_deployed" and version == 2
    assert all(later_version >= 2 for _, _, later_version, _ in drifted[1:])  # follow-ups may refresh it
    assert all(later_value > 0.8 for later_value, *_ in drifted[1:])  # the new model fits the new concept

    code, status = cli(capsys, workspace, "status", "loan")
    assert status["production_version"] >= 2 and status["open_alerts"] == []  # recovered after the change
    code, history = cli(capsys, workspace, "history", "loan")
    kinds = [event["kind"] for event in history["events"]]
    for kind in ("alert_opened", "change_detected", "retrain_decision", "deployed", "alert_recovered"):
        assert kind in kinds
    decision_event = next(e for e in history["events"] if e["kind"] == "retrain_decision")
    assert "promoted" in decision_event["message"] and decision_event["by"] == "policy"
    keel.close()
