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
