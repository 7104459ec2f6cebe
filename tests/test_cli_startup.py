"""Read-only CLI commands answer without loading the data-science stack.

pandas, pyarrow, scipy and scikit-learn cost ~1 s of imports; `status` does 5-90 ms of
work. Each command runs in a fresh interpreter, which then reports what it loaded.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import deployed_loans_workspace

ROOT = Path(__file__).resolve().parents[1]

HEAVY_MODULES = ("pandas", "pyarrow", "scipy", "sklearn", "numpy", "skops")

PROBE = """
import contextlib, io, json, sys
sys.path.insert(0, {root!r})
from app.frontends.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main({argv!r})
print(json.dumps({{"code": code, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _run_fresh(argv: list[str]) -> dict:
    script = PROBE.format(root=str(ROOT), argv=argv, heavy=HEAVY_MODULES)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def project_workspace(tmp_path_factory):
    """A project with a trained version in production, so `status` has versions and metrics to show."""
    return deployed_loans_workspace(tmp_path_factory.mktemp("startup"), rows=120, seed=4)


@pytest.mark.parametrize("command", [["status", "loans", "--json"], ["status", "loans"], ["history", "loans"],
                                     ["history", "loans", "--json"], ["project", "list", "--json"],
                                     ["project", "list"], ["--help"], ["status", "--help"], ["verify", "--quick"],
                                     ["verify", "--quick", "--json"]])
def test_read_only_commands_load_no_data_science_library(project_workspace, command):
    outcome = _run_fresh(["--workspace", str(project_workspace), *command])
    assert outcome == {"code": 0, "loaded": []}


def test_the_probe_sees_a_command_that_does_load_pandas(project_workspace):
    """The check above can fail: a command that reads data does load pandas."""
    outcome = _run_fresh(["--workspace", str(project_workspace), "ingest", "loans",
                          str(project_workspace.parent / "loans.csv")])
    assert "pandas" in outcome["loaded"]


def test_the_server_binds_before_loading_the_data_science_stack(project_workspace):
    """`serve` answers /ping with 503 while its model loads: binding must not wait for numpy or pandas
    (the model's own load imports them, and scikit-learn and skops, in the background)."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from app.adapters import serving
serving.ProductionWatcher._run = lambda self: None  # no model load: what binding alone imports
handle = serving.start_server({str(project_workspace)!r}, "loans")
loaded = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)
handle.stop()
print(json.dumps({{"port": handle.port, "loaded": loaded}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["port"] > 0 and outcome["loaded"] == []
