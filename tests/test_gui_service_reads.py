"""The window asks the services what it shows, off the GUI thread where a read queries the registry:
the production actions (deploy, roll back, approve, monitor) follow what the registry says."""

import threading

from app.demo import DEMO_PROJECT
from app.demo.demo_stream import demo_batch


def test_the_production_actions_follow_the_registry_read_off_the_gui_thread(qtbot, window, monkeypatch):
    controller = window.controller
    keel = controller.keel
    reading_threads = []
    read = keel.production_overview

    def recording_read(name):
        reading_threads.append(threading.current_thread())
        return read(name)

    monkeypatch.setattr(keel, "production_overview", recording_read)
    controller.read_overview()
    qtbot.waitUntil(lambda: controller.overview is not None and bool(reading_threads), timeout=10000)
    rollback = window.named_actions["rollback"]
    assert controller.overview.production_version == 1
    assert not rollback.isEnabled()  # only v1 has ever been in production

    keel.set_project(DEMO_PROJECT, {"preset": "logreg"})  # as another process would: the window polls
    keel.train(DEMO_PROJECT)
    keel.deploy(DEMO_PROJECT, 2)
    qtbot.waitUntil(rollback.isEnabled, timeout=10000)
    assert (controller.overview.production_version, controller.overview.rollback_version) == (2, 1)
    assert all(thread is not threading.main_thread() for thread in reading_threads)
    assert window.errors == []


def test_a_new_alert_is_announced_once(qtbot, window, monkeypatch, tmp_path):
    controller = window.controller
    keel = controller.keel
    announced = []
    monkeypatch.setattr(window, "notify", lambda level, message: announced.append(message))
    qtbot.waitUntil(lambda: window._last_alert_id is not None, timeout=10000)
    alerts_before = keel.last_alert_id()

    keel.set_project(DEMO_PROJECT, {"threshold": 0.99})  # as another process would: the window polls
    demo_batch(0).to_csv(tmp_path / "batch.csv", index=False)
    keel.ingest(DEMO_PROJECT, tmp_path / "batch.csv")
    keel.policy.monitor(DEMO_PROJECT)
    opened = keel.open_alerts_after(alerts_before)
    assert opened and all(alert.project == DEMO_PROJECT for alert in opened)
    expected = [f"New alert on {DEMO_PROJECT}: {alert.message}" for alert in opened]
    qtbot.waitUntil(lambda: [m for m in announced if m.startswith("New alert")] == expected, timeout=10000)
    reads = []
    window.controller.runner.finished.connect(lambda job, result: reads.append(job.title))
    window.refresh_projects()  # nothing new since: nothing announced twice
    qtbot.waitUntil(lambda: "Reading the projects" in reads, timeout=10000)
    assert [m for m in announced if m.startswith("New alert")] == expected
