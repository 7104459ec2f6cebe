"""Closing the window while work runs: Keel asks, waits for the work to end, then closes cleanly."""

import threading

from gui_fixtures import start_job

import app.frontends.gui.common as common


def test_closing_during_a_deploy_waits_for_it_then_closes_without_an_error(qtbot, window, monkeypatch):
    keel = window.controller.keel
    release = threading.Event()
    deploy = keel.deploy

    def held_deploy(*args, **kwargs):
        release.wait(30)
        return deploy(*args, **kwargs)

    monkeypatch.setattr(keel, "deploy", held_deploy)
    monkeypatch.setattr(common, "confirm", lambda *a, **k: True)  # "Quit anyway?" answered Quit
    job = start_job(qtbot, window, lambda: window.controller.deploy(1), kind="deploy")
    assert not job.cancellable  # a deploy is finished first, never cancelled

    window.close()
    assert window.isVisible()
    release.set()
    # the deploy's callbacks start reads (the project list, the registry stamp) as the window becomes
    # idle; an exception raised from them in the event loop fails this test
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30000)
    assert job.state == "done", job.error
    assert keel.production_version("demo-credit") == 1
