import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# One OpenMP/BLAS thread per fit: on 2 shared cores, oversubscribed OpenMP makes hgb fits 50x slower.
for _threads_variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads_variable, "1")

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The GUI fixtures as a plugin, so a session-scoped one (the demo workspace, built once) is built
# once per worker: a test module that imports a fixture gets its own copy, built again.
pytest_plugins = ["gui_fixtures"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder, also set as $KEEL_WORKSPACE."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder
