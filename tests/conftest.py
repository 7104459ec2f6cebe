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


UNANSWERED_CONFIRMATION_SECONDS = 20


@pytest.fixture(autouse=True)
def unanswered_confirmation_fails(monkeypatch):
    """A confirmation box that no test answers would wait offscreen for ever (e.g. "Quit anyway?"
    when a failed test leaves a job running at tear-down): after a while it is closed and the
    test fails with its text instead of hanging the run. Tests that answer boxes are unaffected."""
    common = sys.modules.get("app.frontends.gui.common")  # loaded only by the GUI tests
    if common is None:
        return
    shown = common.confirm

    def confirm_or_fail(parent, title, text, informative="", ok="OK"):
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication, QMessageBox

        unanswered = []

        def close_if_still_open():
            box = QApplication.activeModalWidget()
            if isinstance(box, QMessageBox) and box.windowTitle() == title:
                unanswered.append(title)
                box.reject()

        QTimer.singleShot(UNANSWERED_CONFIRMATION_SECONDS * 1000, close_if_still_open)
        answer = shown(parent, title, text, informative, ok)
        if unanswered:
            raise AssertionError(f"a confirmation box nobody answered: {title}: {text} {informative}")
        return answer

    monkeypatch.setattr(common, "confirm", confirm_or_fail)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder, also set as $KEEL_WORKSPACE."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder


@pytest.fixture
def store():
    """store(keel or workspace folder) -> its registry on a connection of its own (tests/store_helpers.py),
    one per workspace and clock, closed when the test ends."""
    from store_helpers import open_store, store_key

    opened = {}

    def open_for(keel_or_root):
        key = store_key(keel_or_root)
        if key not in opened:
            opened[key] = open_store(keel_or_root)
        return opened[key]

    yield open_for
    for registry in opened.values():
        registry.close()
