"""The window builds the demo project on an empty workspace and says what it built; Model > Reset demo
builds it afresh and says so."""

from gui_fixtures import open_window

import app.frontends.gui.common as common
from app.demo import DEMO_PROJECT, demo_project
from app.demo.simulator import make_batch


def test_an_empty_workspace_gets_the_demo_project_and_reset_builds_it_afresh(qtbot, tmp_path, gui_settings, leak_guard,
                                                                             monkeypatch):
    # a small, fast demo: what the window says is the same whatever the data and the model
    monkeypatch.setattr(demo_project, "initial_training_data", lambda: make_batch(120, seed=7000))
    monkeypatch.setitem(demo_project.DEMO_SETTINGS, "preset", "logreg")
    shown: list[str] = []
    window = open_window(qtbot, tmp_path / "empty", wait_project=False)
    try:
        window.statusBar().messageChanged.connect(lambda message: shown.append(message) if message else None)
        ready = ("Demo project demo-credit is ready: v1 in production. New batches arrive every few seconds "
                 "(Model > Play demo stream stops them).")
        qtbot.waitUntil(lambda: ready in shown, timeout=30000)
        assert window.controller.project == DEMO_PROJECT
        qtbot.waitUntil(lambda: not window.controller.busy() and window.named_actions["reset_demo"].isEnabled(),
                        timeout=20000)

        monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
        window.named_actions["reset_demo"].trigger()
        qtbot.waitUntil(lambda: "Demo reset: v1 in production, the stream starts over." in shown, timeout=30000)
        assert window.controller.project == DEMO_PROJECT
        qtbot.waitUntil(lambda: not window.controller.busy(), timeout=20000)
    finally:
        monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
        window.close()
