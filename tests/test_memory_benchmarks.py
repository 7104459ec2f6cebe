"""Tiny runs of the memory benchmarks (whole processes, as at full size), so the scripts cannot rot:
the smallest file (2,100 rows), the cheapest model; the figures are real but meaningless at this size.
bench/train_memory.py and bench/monitor_memory.py run the real sizes (docs/benchmarks.md)."""

import json

from bench_helpers import load_bench, results_folder_state


def test_the_training_memory_benchmark_measures_the_estimate_against_the_peak(tmp_path, capsys):
    before = results_folder_state()
    output = tmp_path / "train_memory.json"
    assert load_bench("train_memory").main(["--rows", "2100", "--preset", "logreg", "--data-dir", str(tmp_path / "data"),
                                            "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    size = report["sizes"][0]
    assert size["rows"] == 2100 and size["trained_rows"] == 4100  # the template's 2,000 rows and the file's
    assert size["sample"] is None and size["estimated_bytes_per_row"] > 0 and size["estimated_mb"] > 0
    assert report["floor_mb"] > 50 and size["peak_mb"] > 50 and size["seconds"] > 0
    assert isinstance(size["measured_bytes_per_row"], int) and isinstance(size["measured_over_estimate"], float)
    assert "floor (train on 2,000 rows)" in capsys.readouterr().out
    assert results_folder_state() == before


def test_the_monitoring_memory_benchmark_measures_a_cycle_and_the_reference_read(tmp_path, capsys):
    before = results_folder_state()
    output = tmp_path / "monitor_memory.json"
    assert load_bench("monitor_memory").main(["--rows", "2100", "--preset", "logreg", "--data-dir",
                                              str(tmp_path / "data"), "--output", str(output)]) == 0
    results = json.loads(output.read_text())["results"]
    assert set(results) == {"keel monitor --once", "pandas.read_parquet (the batch)"}
    assert all(r["seconds"] > 0 and r["cpu_seconds"] > 0 and r["peak_mb"] > 50 for r in results.values())
    assert "keel monitor --once" in capsys.readouterr().out
    assert results_folder_state() == before
