"""Fixtures and helpers for the GUI tests (tests/test_gui_*.py): a demo workspace, a main window,
a guard that fails a test which leaves a worker thread, a child process or a QTimer running, and
ways to start a job from the window and wait for that job (never for a tab read running beside it)."""

import multiprocessing
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QInputDialog, QMessageBox, QWizard
from store_helpers import opened_store

GUARD_GRACE_MS = 5000
JOB_TIMEOUT_MS = 90_000

from app.frontends.gui.application import shield_none_refcount  # noqa: E402

shield_none_refcount()  # PySide6 6.12 leaks references to None (see app/frontends/gui/application.py)


def _running_timers():
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return []
    owners = [app] + list(app.topLevelWidgets())
    return [t for owner in owners for t in owner.findChildren(QTimer) if t.isActive()]


def _extra_threads(before: set[int]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]


@pytest.fixture
def leak_guard(qtbot):
    """Fails the test if it leaves a thread, a child process or an active QTimer behind."""
    before = {t.ident for t in threading.enumerate()}
    yield
    try:
        qtbot.waitUntil(lambda: not _extra_threads(before) and not multiprocessing.active_children(),
                        timeout=GUARD_GRACE_MS)
    except AssertionError:
        names = [t.name for t in _extra_threads(before)] + [p.name for p in multiprocessing.active_children()]
        pytest.fail(f"the test left threads or processes running: {names}")
    timers = _running_timers()
    if timers:
        pytest.fail(f"the test left {len(timers)} QTimer(s) running: "
                    f"{[(t.parent().objectName() or type(t.parent()).__name__) for t in timers]}")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A demo workspace built once per session (create_demo: one trained, deployed model)."""
    from app.core.services.lifecycle import Keel
    from app.demo.demo_project import create_demo

    folder = tmp_path_factory.mktemp("demo-template") / "ws"
    keel = Keel.open(folder)
    create_demo(keel)
    keel.close()
    return folder


@pytest.fixture
def demo_workspace(demo_template, tmp_path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(demo_template, target, ignore=shutil.ignore_patterns("*.lock", "keel.log*"))
    return target


@pytest.fixture
def gui_settings(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("KEEL_SETTINGS", str(path))
    return path


def open_window(qtbot, workspace: Path, read_only: bool = False, wait_project: bool = True,
                start_scheduler: bool = False, before_close=None):
    from app.frontends.gui.application import settings_store
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.main_window import MainWindow

    controller = Controller(str(workspace), read_only=read_only, start_scheduler=start_scheduler)
    window = MainWindow(controller, settings_store())
    qtbot.addWidget(window, before_close_func=before_close)  # pytest-qt closes it before fixtures end
    window.show()
    with qtbot.waitSignal(controller.keel_ready, timeout=20000):
        controller.open_keel()
    if wait_project:
        qtbot.waitUntil(lambda: bool(controller.project), timeout=20000)
    return window


@pytest.fixture
def window(qtbot, demo_workspace, gui_settings, leak_guard, monkeypatch):
    """The main window on a copy of the demo workspace; closed (and its workers stopped) after the test."""
    import app.frontends.gui.common as common

    errors = []
    monkeypatch.setattr(common, "show_error", lambda parent, message, details="": errors.append((message, details)))

    def quit_without_asking(_window) -> None:
        # a test that failed with a job running must not leave "Quit anyway?" open: nothing answers it
        monkeypatch.setattr(common, "confirm", lambda *a, **k: True)

    win = open_window(qtbot, demo_workspace, before_close=quit_without_asking)
    win.errors = errors
    yield win
    quit_without_asking(win)
    win.close()


@pytest.fixture(scope="session")
def backlog_template(demo_template, tmp_path_factory) -> Path:
    """The demo after 6 batches scored in ONE monitoring run, a retrain and deploy of v2,
    then 3 more batches scored in one more run (dataset versions 2-7 and 8-10)."""
    from app.core.services.lifecycle import Keel
    from app.demo import simulator

    folder = tmp_path_factory.mktemp("backlog") / "ws"
    shutil.copytree(demo_template, folder, ignore=shutil.ignore_patterns("*.lock", "keel.log*"))
    files = tmp_path_factory.mktemp("backlog-files")
    keel = Keel.open(folder)
    try:
        keel.set_project("demo-credit", {"policy": "alert"})  # alerts only: the trainings are the test's own
        for index in range(6):
            path = files / f"batch-{index:02d}.csv"
            simulator.make_batch(150, seed=100 + index, shift=0.15 * index).to_csv(path, index=False)
            keel.ingest("demo-credit", path)
        keel.policy.monitor("demo-credit")
        version = keel.train("demo-credit", reason="test").version
        keel.deploy("demo-credit", version)
        for index in range(6, 9):
            path = files / f"batch-{index:02d}.csv"
            simulator.make_batch(150, seed=100 + index, shift=0.9).to_csv(path, index=False)
            keel.ingest("demo-credit", path)
        keel.policy.monitor("demo-credit")
    finally:
        keel.close()
    return folder


@pytest.fixture
def backlog_window(qtbot, backlog_template, tmp_path, gui_settings, leak_guard, monkeypatch):
    import app.frontends.gui.common as common

    errors = []
    monkeypatch.setattr(common, "show_error", lambda parent, message, details="": errors.append(message))
    workspace = tmp_path / "ws"
    shutil.copytree(backlog_template, workspace, ignore=shutil.ignore_patterns("*.lock", "keel.log*"))
    window = open_window(qtbot, workspace)
    window.errors = errors
    yield window
    monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
    window.close()


# --------------------------------------------------------------------------- jobs started from the window
@contextmanager
def jobs_ending(runner) -> Iterator[list]:
    """Collects every job of runner that ends (finished, failed or cancelled) inside the block."""
    ended: list = []

    def record(job, *_):
        ended.append(job)

    signals = (runner.finished, runner.failed, runner.cancelled)
    for signal in signals:
        signal.connect(record)
    try:
        yield ended
    finally:
        for signal in signals:
            signal.disconnect(record)


def _the_job_started(qtbot, runner, start: Callable, kind: str | None, ended: list, timeout: int):
    """Calls start(); -> the job it started: the Job start() returns, or else the one job of `kind`
    submitted since start() was called (an action may read on a worker first and start it then;
    a tab read submitted meanwhile has another kind)."""
    from app.frontends.gui.jobs import Job

    before = runner.active_jobs()
    returned = start()
    if isinstance(returned, Job):
        job = returned
    else:
        assert kind is not None, "start() returned no Job: name the kind of job it starts"

        def started() -> list:
            return [j for j in runner.active_jobs() + ended if j.kind == kind and not any(j is b for b in before)]

        qtbot.waitUntil(lambda: bool(started()), timeout=timeout)
        new = started()
        assert len(new) == 1, f"expected the action to start one {kind!r} job, it started {[j.title for j in new]}"
        job = new[0]
    assert kind is None or job.kind == kind, f"the action started a {job.kind!r} job, not {kind!r}"
    return job


def start_job(qtbot, window, start: Callable, kind: str | None = None, timeout: int = JOB_TIMEOUT_MS):
    """Calls start() (a controller call, or a click on a button or a menu action) -> the job it started."""
    return _the_job_started(qtbot, window.controller.runner, start, kind, [], timeout)


def run_job(qtbot, window, start: Callable, kind: str | None = None, timeout: int = JOB_TIMEOUT_MS):
    """Calls start() and waits until the job it started ends (finished, failed or cancelled) -> that Job."""
    runner = window.controller.runner
    with jobs_ending(runner) as ended:
        job = _the_job_started(qtbot, runner, start, kind, ended, timeout)
        assert job is not None, "the action did not start a job"
        qtbot.waitUntil(lambda: any(j is job for j in ended), timeout=timeout)
    return job


def commit_from_a_worker(keel, write: Callable) -> None:
    """Runs write(registry) in one transaction on another thread and waits for it: a commit the
    window did not make, as a scheduled monitoring run makes it."""
    def work():
        with opened_store(keel) as registry, registry.transaction():
            write(registry)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()


def record_a_monitoring_result(keel, value: float, events: tuple = (), **fields) -> None:
    """A monitoring result of demo-credit's v1 (300 labelled rows, accuracy `value`) and the
    events (add_event's arguments after the project) committed together from another thread;
    fields override the result's other columns."""
    project = keel.project("demo-credit")
    with opened_store(keel) as registry:
        model_version = registry.model_versions(project.id)[0]
    row = dict(project_id=project.id, model_version_id=model_version.id, rows=300, labelled_rows=300,
               metric="accuracy", value=value, estimated_value=None, drift_share=0.0, drifted_features=[]) | fields

    def write(registry):
        registry.insert_monitor_result(**row)
        for event in events:
            registry.add_event(project, *event)

    commit_from_a_worker(keel, write)


class DialogAnswerer:
    """Watches for modal dialogs: paints each one (grab), then answers it the way a user
    would: confirmations accepted unless their title is in `decline`, input dialogs
    accepted with their default choice, file dialogs and wizards cancelled, others OK'd."""

    def __init__(self, decline: tuple[str, ...] = ()):
        self.decline = decline
        self.seen: list[tuple[str, str]] = []
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self.answer)
        self.timer.start()

    def answer(self) -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None or not dialog.isVisible():
            return
        image = dialog.grab().toImage()
        assert not image.isNull(), f"{dialog.windowTitle()} did not paint"
        self.seen.append((type(dialog).__name__, dialog.windowTitle()))
        if isinstance(dialog, QMessageBox):
            accept = next((b for b in dialog.buttons()
                           if dialog.buttonRole(b) in (QMessageBox.ButtonRole.AcceptRole, QMessageBox.ButtonRole.YesRole)),
                          None)
            if accept is not None and dialog.windowTitle() not in self.decline:
                accept.click()
            else:
                dialog.reject()
        elif isinstance(dialog, (QFileDialog, QWizard)):
            dialog.reject()
        elif isinstance(dialog, (QInputDialog, QDialog)):
            dialog.accept()
        else:
            dialog.close()

    def stop(self) -> None:
        self.timer.stop()
