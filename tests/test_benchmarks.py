"""A tiny Keel-only run of each side-by-side benchmark, so the scripts cannot rot.

The reference tools (MLflow, Evidently) live in their own environments and stay out of the tests;
the real sizes run from bench/ (docs/benchmarks.md has the figures and the commands)."""

import json

from bench_helpers import load_bench


def test_the_ingest_benchmark_ingests_and_reports(tmp_path, capsys):
    output = tmp_path / "ingest.json"
    assert load_bench("ingest").main(["--rows", "500", "--repeats", "1", "--keel-only", "--data-dir",
                                      str(tmp_path / "data"), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    keel = report["sizes"][0]["results"]["keel ingest"]
    assert report["sizes"][0]["rows"] == 500
    assert keel["seconds"] > 0 and keel["peak_mb"] > 10
    assert "keel ingest" in capsys.readouterr().out


def test_the_tracking_comparison_times_keel_with_both_durabilities(tmp_path, capsys):
    output = tmp_path / "tracking.json"
    assert load_bench("compare_tracking").main(["--keel-only", "--repeats", "1", "--scale", "0.01", "--case",
                                                "read a metric history", "--case", "filter runs on a metric",
                                                "--output", str(output)]) == 0
    cases = json.loads(output.read_text())["cases"]
    assert [(c["case"], c["n"]) for c in cases] == [("read a metric history", 1000), ("filter runs on a metric", 10)]
    assert all(c["keel"] > 0 and c["keel synchronous=FULL"] > 0 for c in cases)


def test_the_drift_comparison_flags_the_shifted_columns(tmp_path, capsys):
    output = tmp_path / "drift.json"
    assert load_bench("compare_drift").main(["--keel-only", "--rows", "3000", "--repeats", "1", "--data-dir",
                                             str(tmp_path / "data"), "--output", str(output)]) == 0
    keel = json.loads(output.read_text())["sizes"][0]["results"]["keel"]
    assert keel["drifted"] == ["c0", "n0", "n1", "n2", "n3"]
    assert keel["seconds"] > 0 and keel["peak_above_mb"] >= 0


def test_the_growth_benchmark_times_commands_at_each_size(tmp_path, capsys):
    output = tmp_path / "growth.json"
    assert load_bench("growth").main(["--steps", "1", "--batches", "4", "--versions", "2", "--points", "100",
                                      "--repeats", "1", "--skip-monitor", "--skip-gui", "--id-column",
                                      "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert [s["batches"] for s in report["steps"]] == [0, 4]
    assert set(report["slope_ms_per_1000_batches"]) == {"status --json", "history --json", "project list --json",
                                                        "--help", "cycle reads (in-process)",
                                                        "same, read whole (before)"}


def test_the_growth_benchmark_times_the_windows_switch_to_the_grown_project(tmp_path, qtbot, gui_settings, leak_guard):
    """The benchmark's window step (its own offscreen process there; here in the test's), on a
    project grown a little: the switch to it and back is timed and the Overview shown."""
    from app.frontends.gui.application import settings_store
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.main_window import MainWindow

    bench = load_bench("growth")
    workspace = tmp_path / "workspace"
    bench.build_project(workspace, tmp_path)
    bench.grow(workspace, batches=6, versions=3, points=30)
    controller = Controller(str(workspace), start_scheduler=False)
    window = MainWindow(controller, settings_store())
    qtbot.addWidget(window)
    window.show()
    switches = bench.switch_times(window, controller, repeats=1)
    assert len(switches) == 1 and 0 < switches[0] < 60
    assert controller.project == bench.SMALL_PROJECT and window.workspace_shown()  # and back again
    window.close()


def test_the_reference_benchmark_reads_what_the_deployment_stored(workspace):
    from loop_helpers import make_project

    bench = load_bench("monitor_reference")
    make_project(workspace, name=bench.PROJECT, rows=300).close()  # what bench.build makes, small
    prepared, read = (bench.worker(workspace, mode) for mode in ("prepare", "read"))
    assert prepared["features"] == read["features"] > 0 and prepared["estimator"] and read["estimator"]
    assert read["seconds"] > 0 and read["peak_above_mb"] >= 0


def test_the_late_label_count_benchmark_times_both_reads(tmp_path):
    output = tmp_path / "late.json"
    assert load_bench("late_label_count").main(["--sizes", "5", "20", "--output", str(output)]) == 0
    sizes = json.loads(output.read_text())["sizes"]
    assert [s["batches"] for s in sizes] == [5, 20]
    assert all(s["indexed_count_s"] > 0 and s["decode_every_result_s"] > 0 for s in sizes)


def test_the_serve_imports_benchmark_times_the_imports_the_load_and_a_start(tmp_path, capsys):
    from bench_helpers import results_folder_state

    before = results_folder_state()
    output = tmp_path / "serve_imports.json"
    assert load_bench("serve_imports").main(["--repeats", "1", "--starts", "1", "--imports", "numpy",
                                             "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert set(report["results"]) == {"python -c pass", "numpy", "Keel's load_model (hgb)"}
    assert all(r["seconds"] > 0 and r["cpu_seconds"] > 0 and r["peak_mb"] > 0 for r in report["results"].values())
    assert 0 < report["serve"]["first_answer_s"] <= report["serve"]["ready_s"] < 60
    assert "ready (200)" in capsys.readouterr().out
    assert results_folder_state() == before


def test_the_drift_bound_replays_the_clairvoyant_schedules(tmp_path, capsys):
    """On an 8-batch hyperplane stream (drift at batch 2) and a drift_loop result of that size."""
    from bench_helpers import results_folder_state

    before = results_folder_state()
    loop_result = tmp_path / "drift_loop.json"
    loop_result.write_text(json.dumps({"streams": {"hyperplane": {
        "shape": {"name": "hyperplane", "batches": 8, "drift_at": 2},
        "seeds": [{"seed": 101, "strategies": {"keel": {"signals": [1, 4], "mean_from_drift_plus_3": 0.9},
                                               "every batch": {"mean_from_drift_plus_3": 0.91}}}]}}}))
    assert load_bench("drift_bound").main(["--drift-loop", str(loop_result)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 fits spread evenly" in lines[-4]  # a quarter of 8 batches
    every_batch, target, from_detection, from_drift, on_80, keel = (
        cell.strip() for cell in lines[-1].strip("| ").split("|"))
    assert (every_batch, target, keel) == ("0.910", "0.900", "0.900")  # read from the result file
    assert from_detection.endswith("(detected at 4)")  # the first signal at or after the drift
    assert 0.5 < float(from_detection.split()[0]) <= 1 and 0.5 < float(from_drift) <= 1 and 0.5 < float(on_80) <= 1
    assert results_folder_state() == before


def test_the_drift_bound_counts_the_window_rule_s_switches_on_a_stream_with_no_change(capsys):
    """One seed, 3 batches: the counts are per rule, and a stricter level never switches more often."""
    switched = load_bench("drift_bound").window_noise(seeds=1, batches=3)
    before, now, shared = switched.values()
    assert list(switched) == ["0.16 per candidate (before)", "0.05 per candidate (now)", "0.05 shared by the candidates"]
    assert 0 <= shared <= now <= before <= 1
    assert "| 0.05 per candidate (now) |" in capsys.readouterr().out
