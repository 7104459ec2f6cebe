"""Loading a bench/ script as a module, for the tiny runs of the benchmarks in the suite."""

import importlib.util
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


def results_folder_state() -> dict[str, float]:
    """bench/results' files and their modification times: a tiny run must leave them alone."""
    return {path.name: path.stat().st_mtime for path in (BENCH / "results").iterdir()}
