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


@pytest.fixture(autouse=True)
def unexpected_confirmation_fails(monkeypatch):
    """A confirmation box that no test answers would wait offscreen for ever (e.g. "Quit anyway?"
    when a failed test leaves a job running at tear-down): fail with its text instead of hanging."""
    common = sys.modules.get("app.frontends.gui.common")  # loaded only by the GUI tests
    if common is not None:
        def refuse(parent, title, text, informative="", ok="OK"):
            raise AssertionError(f"an unexpected confirmation box: {title}: {text} {informative}")

        monkeypatch.setattr(common, "confirm", refuse)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder, also set as $KEEL_WORKSPACE."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder
