"""The crash harness at small size: a SIGKILL at each kind of injected point loses no commit,
and every workspace it leaves is healthy or repaired by `verify --repair`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import crash_harness  # noqa: E402

# four kinds of point, each in a different operation (the bench runs every pair, 300 kills)
PLAN = [("ingest", "after_file_write"), ("deploy", "inside_transaction"), ("monitor", "before_inbox_move"),
        ("backup", "before_manifest")]


def test_kills_at_injected_points_lose_nothing_and_leave_repairable_workspaces(tmp_path):
    summary = crash_harness.campaign(kills=len(PLAN), seed=3, folder=tmp_path, echo=lambda line: None,
                                     max_trials=len(PLAN) + 4, plan=PLAN)
    assert summary["kills"] == len(PLAN), summary
    assert summary["lost_commits"] == 0, summary["failures"]
    assert summary["unrepairable"] == 0, summary["failures"]
    assert summary["partial_backups"] == 0
    assert summary["repaired"] >= 1, "a file written before the commit is left for repair (an orphan)"
    assert set(summary["kills_by_point"]) == {point for _, point in PLAN}


def test_the_harness_notices_a_lost_commit():
    before = {"events": {1, 2, 3}, "model_versions": {1}}
    after = {"events": {1, 3}, "model_versions": {1}}
    assert crash_harness.lost_rows(before, after) == {"events": 1}
