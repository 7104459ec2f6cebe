"""The window sweeps the inbox every few seconds, between monitoring cycles (a child process
per sweep, results in the job runner), so a finished file waits seconds, not a schedule period."""

from gui_fixtures import open_window

from app.core.services import inbox
from app.core.services.lifecycle import Keel
from app.demo.simulator import make_batch

JOB_TIMEOUT_MS = 90_000


def test_the_window_sweeps_the_inbox_between_monitoring_cycles(qtbot, demo_workspace, gui_settings, leak_guard,
                                                               monkeypatch, store):
    import app.frontends.gui.common as common

    monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
    monkeypatch.setenv(inbox.QUIET_ENV, "0.3")
    monkeypatch.setenv("KEEL_INBOX_SWEEP_SECONDS", "0.5")
    keel = Keel.open(demo_workspace)
    try:  # monitored hourly, and just now: no cycle is due while the test runs
        keel.set_project("demo-credit", {"schedule": "every 1h"})
        store(keel).mark_schedule_run(keel.project("demo-credit").id)
    finally:
        keel.close()
    win = open_window(qtbot, demo_workspace, start_scheduler=True)
    try:
        controller = win.controller
        keel = controller.keel
        monitored, swept = [], []
        controller.runner.finished.connect(lambda job, result: job.kind == "monitor" and monitored.append(result))
        controller.runner.finished.connect(lambda job, result: job.kind == "inbox" and swept.extend(result))
        versions_before = len(store(keel).dataset_versions(keel.project("demo-credit").id))
        make_batch(120, seed=77).to_csv(keel.inbox_dir("demo-credit") / "arrived.csv", index=False)
        qtbot.waitUntil(lambda: any(r.file == "arrived.csv" for r in swept), timeout=JOB_TIMEOUT_MS)
        [taken] = [r for r in swept if r.file == "arrived.csv"]
        assert taken.status == "processed" and taken.rows == 120
        assert len(store(keel).dataset_versions(keel.project("demo-credit").id)) == versions_before + 1
        assert monitored == []  # no monitoring cycle was needed for it
    finally:
        win.close()
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=JOB_TIMEOUT_MS)
