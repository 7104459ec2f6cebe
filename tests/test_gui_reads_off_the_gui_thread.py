"""Every tab, the project list, the clicks that need data before they can show a dialog, and the
once-a-second check for other processes' writes ask the services on a worker, never on the GUI
thread: a refresh (a monitoring cycle landing, a batch arriving, a tab opened) or a click cannot
stall the window on a registry query, however big the registry grows."""

import threading

from gui_fixtures import DialogAnswerer
from PySide6.QtWidgets import QApplication

# What the GUI thread may still ask the service object for: where the workspace is, and its clock
# (the time the user looked at a project's alerts); no query.
ALLOWED_ON_THE_GUI_THREAD = {"root", "log_path", "clock"}


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


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.controller.runner.active_jobs(), timeout=30000)


def test_clicks_and_the_registry_poll_read_the_services_off_the_gui_thread(qtbot, backlog_window, monkeypatch):
    import app.frontends.gui.controller as controller_module
    from app.frontends.gui.settings_dialog import SettingsDialog

    window, controller = backlog_window, backlog_window.controller
    keel = controller.keel
    # the training runs in a child process (tests/test_gui_main.py); here, the reads around it are checked
    monkeypatch.setattr(controller_module, "call_in_child", lambda job, workspace, method, *args, takes_cancel_event=False,
                        **kwargs: getattr(keel, method)(*args, **kwargs))
    wait_idle(qtbot, window)
    notices = []
    controller.notify.connect(lambda level, message: notices.append(message))
    recorder = RecordingKeel(keel)
    controller.keel = recorder
    answerer = None
    try:
        window.named_actions["settings"].trigger()  # opens once the project's settings are read
        qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), SettingsDialog), timeout=10000)
        dialog = QApplication.activeModalWidget()
        assert dialog.isVisible()
        dialog.max_drop.setValue(0.07)
        with qtbot.waitSignal(dialog.saved, timeout=10000):
            dialog.accept()  # the core checks the change on a worker, then the dialog closes
        wait_idle(qtbot, window)
        answerer = DialogAnswerer(decline=("Delete project",))
        for key in ("retrain", "deploy", "delete_project", "export_mlflow"):
            window.named_actions[key].trigger()
            wait_idle(qtbot, window)
        controller._stamp = None  # as if another process had written since the last poll
        with qtbot.waitSignal(controller.registry_changed, timeout=10000):
            controller.poll_registry()
        wait_idle(qtbot, window)
    finally:
        if answerer is not None:
            answerer.stop()
        controller.keel = keel
    assert recorder.on_gui_thread == []
    assert {"project", "check_settings", "set_project", "status", "production_version",
            "change_stamp"} <= set(recorder.on_workers)
    titles = {title for _, title in answerer.seen}
    assert {"Deploy", "Delete project"} <= titles and any("MLflow" in title for title in titles), titles
    assert keel.project("demo-credit").settings.max_drop == 0.07
    assert any(message.startswith("demo-credit: v3 trained (accuracy ") for message in notices), notices
    assert keel.production_version("demo-credit") == 3  # the Deploy dialog's first choice: the version just trained
    assert window.errors == []


def test_the_wizard_reads_the_project_names_off_the_gui_thread_and_trains_in_a_child(qtbot, window, tmp_path,
                                                                                      monkeypatch):
    import app.frontends.gui.controller as controller_module
    from app.demo.simulator import make_batch
    from app.frontends.gui.wizard import NewProjectWizard

    controller, keel = window.controller, window.controller.keel
    in_children = []
    real_call_in_child = controller_module.call_in_child

    def recording_call_in_child(job, workspace, method, *args, **kwargs):
        in_children.append((method, args, kwargs.get("takes_cancel_event"), job.cancellable))
        return real_call_in_child(job, workspace, method, *args, **kwargs)

    monkeypatch.setattr(controller_module, "call_in_child", recording_call_in_child)
    data = tmp_path / "demo-credit.csv"  # its name is taken: the wizard suggests another
    make_batch(300, seed=3).to_csv(data, index=False)
    wizard = NewProjectWizard(controller, window)
    qtbot.addWidget(wizard)
    wizard.show()
    recorder = RecordingKeel(keel)
    controller.keel = recorder
    try:
        wizard.file_page.path.setText(str(data))
        wizard.file_page.load()
        qtbot.waitUntil(lambda: wizard.raw is not None, timeout=20000)
        wizard.next()
        name = wizard.target_page.name.text()
        assert name.startswith("demo-credit") and name != "demo-credit"
        wizard.target_page.preset.setCurrentIndex(wizard.target_page.preset.findData("logreg"))
        wizard.next()
        assert wizard.schema_page.train_now.isChecked()
        wizard.accept()
        qtbot.waitUntil(lambda: ("train", (name,), True, True) in in_children, timeout=20000)
        [training] = [job for job in controller.runner.active_jobs(name) if job.kind == "train"]
        with qtbot.waitSignal(controller.runner.cancelled, timeout=10000):  # Cancel ends the child
            controller.runner.cancel(training)
        wait_idle(qtbot, window)
    finally:
        controller.keel = keel
    assert recorder.on_gui_thread == []
    assert "project_names" in recorder.on_workers
    assert keel.project(name) is not None and keel.production_version(name) is None  # created; nothing trained
    assert window.errors == []
