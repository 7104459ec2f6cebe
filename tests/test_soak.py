"""The soak at CI size: scheduler every second, scoring clients, CLI writers and inbox drops
together for 8 s (bench/soak.py runs 2 minutes by default). Nothing may fail or go missing."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import soak  # noqa: E402


def test_a_short_soak_of_everything_at_once_loses_nothing(tmp_path):
    result = soak.soak(seconds=8, clients=1, warmup=3, drop_every=1.5, folder=tmp_path)
    assert result["requests"] > 0 and result["failed_requests"] == 0, result["errors"]
    assert result["cli_commands"] > 0 and result["cli_failures"] == 0 and result["lock_errors"] == 0, result["errors"]
    assert result["inbox_drops"] > 0 and result["inbox_rejected"] == [] and result["inbox_left"] == []
    assert result["rows_found"] == result["rows_expected"]
    assert result["monitoring_results"] > 0  # the runner's schedule ran alongside
    assert result["server_exit"] == 0 and result["runner_exit"] == 0, result["stop_output"]
    assert all(growth["samples"] > 0 for growth in result["rss"].values())  # both processes were measured
