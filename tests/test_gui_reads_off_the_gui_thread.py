"""Every tab and the project list ask the services for what they show on a worker, never on the
GUI thread: a refresh (a monitoring cycle landing, a batch arriving, a tab opened) cannot stall
the window on a registry query, however big the registry grows."""

import threading

# What the GUI thread may still ask the service object for: where the workspace is (no query), and the
# one-line change stamp the window polls each second to learn that another process wrote.
ALLOWED_ON_THE_GUI_THREAD = {"root", "log_path", "change_stamp"}


class RecordingKeel:
    """Stands in for the controller's Keel: records which thread asks it for what, then forwards."""

    def __init__(self, keel):
        self._keel = keel
        self.on_gui_thread: list[str] = []
        self.on_workers: list[str] = []

    def __getattr__(self, name):
        if threading.current_thread() is threading.main_thread():
            if name not in ALLOWED_ON_THE_GUI_THREAD:
                self.on_gui_thread.append(name)
        else:
            self.on_workers.append(name)
        return getattr(self._keel, name)


def test_every_tab_and_the_project_list_read_the_services_off_the_gui_thread(qtbot, backlog_window):
    window = backlog_window
    controller = window.controller
    qtbot.waitUntil(lambda: window.panels["monitoring"].plots_built, timeout=20000)
    recorder = RecordingKeel(controller.keel)
    controller.keel = recorder
    try:
        for index in range(window.tabs.count()):
            panel = window.tabs.widget(index)
            window.tabs.setCurrentIndex(index)
            controller.registry_changed.emit()  # e.g. a monitoring cycle landed: the list and the tab refresh
            qtbot.waitUntil(lambda panel=panel: panel.up_to_date and not window._reading_projects, timeout=10000)
    finally:
        controller.keel = recorder._keel
    assert recorder.on_gui_thread == []
    asked = set(recorder.on_workers)
    assert {"monitor_results", "model_timeline", "deployments", "alerts", "events", "dataset_versions",
            "status", "project_names", "traffic"} <= asked  # the reads did happen, on workers
    assert len(window.panels["monitoring"].results) == 9  # one per batch of the backlog workspace (6 + 3)
    assert window.panels["models"].table_model.rows and window.project_list.count() == 1
