"""End to end through the CLI: a concept comes, the policy retrains; the old concept returns, the
policy restores the earlier version (`monitor --once --json`: decision, numbers, change)."""

from loop_helpers import batch, cli, drop

from app.core.services.lifecycle import Keel
from app.demo.simulator import initial_training_data


def test_a_returning_concept_restores_the_earlier_version_through_the_cli(workspace, capsys):
    data = workspace / "initial.csv"
    initial_training_data(rows=1000, seed=3).to_csv(data, index=False)
    assert cli(capsys, workspace, "project", "create", "loan", "--data", str(data), "--target", "default",
               "--model", "logreg", "--policy", "auto")[0] == 0
    assert cli(capsys, workspace, "train", "loan")[0] == 0
    assert cli(capsys, workspace, "deploy", "loan", "--version", "1")[0] == 0
    keel = Keel.open(workspace)
    outcomes = []
    for index, concept in enumerate([0.0, 0.0, 1.0, 1.0, 0.0]):
        drop(keel, "loan", batch(40 + index, rows=400, concept=concept), f"batch-{index}.csv")
        code, out = cli(capsys, workspace, "monitor", "loan", "--once")
        assert code == 0, out
        assert "change_detected" in out and "details" in out
        outcomes.append(out)
    keel.close()
    assert [o["decision"] for o in outcomes[:2]] == ["none", "none"]
    assert outcomes[2]["decision"] == "retrained_deployed" and outcomes[2]["production_version"] == 2
    assert outcomes[2]["details"]["window"]["chosen"] == "since change"
    restored = outcomes[4]
    assert restored["decision"] == "restored" and restored["production_version"] == 1
    assert restored["challenger_version"] == 1 and restored["details"]["champion_version"] == 2
    assert "p=" in restored["message"] and "nothing was trained" in restored["message"]
    code, history = cli(capsys, workspace, "history", "loan")
    kinds = [event["kind"] for event in history["events"]]
    assert "restore_decision" in kinds and "rolled_back" in kinds
    code, status = cli(capsys, workspace, "status", "loan")
    assert status["production_version"] == 1 and len(status["versions"]) >= 2
