"""A tiny Keel-only run of each side-by-side benchmark, so the scripts cannot rot.

The reference tools (MLflow, Evidently) live in their own environments and stay out of the tests;
the real sizes run from bench/ (docs/benchmarks.md has the figures and the commands)."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def load_bench(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the scripts import their shared harness as a sibling
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ingest_benchmark_ingests_and_reports(tmp_path, capsys):
    output = tmp_path / "ingest.json"
    assert load_bench("ingest").main(["--rows", "500", "--repeats", "1", "--keel-only", "--data-dir",
                                      str(tmp_path / "data"), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    keel = report["sizes"][0]["results"]["keel ingest"]
    assert report["sizes"][0]["rows"] == 500
    assert keel["seconds"] > 0 and keel["peak_mb"] > 10
    assert "keel ingest" in capsys.readouterr().out
