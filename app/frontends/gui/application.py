"""Starts the desktop application: QApplication, the workspace lock, the main window.

First paint comes before anything heavy: Keel (pandas, the registry) is constructed
on a worker once the window is on screen, and pyqtgraph only when the first plot is built.
"""

import functools
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app import RESOURCES

if TYPE_CHECKING:
    from app.core.services.session import WorkspaceLock
    from app.frontends.gui.main_window import MainWindow

PROCESS_START = time.time()
log = logging.getLogger("keel.ui")


def settings_store() -> QSettings:
    """QSettings for geometry, splitters, last project. $KEEL_SETTINGS points it at a file (tests, benchmarks)."""
    path = os.environ.get("KEEL_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("Keel", "Keel")


def install_excepthook() -> None:
    """An unexpected exception in a slot: logged with its traceback, shown as a message; never a crash."""
    showing: list[bool] = []  # an error dialog is open

    def hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        details = "".join(traceback.format_exception(kind, value, trace))
        log.error("unhandled exception:\n%s", details)
        if showing:  # an error while an error dialog is open: logged only, never a cascade of dialogs
            return
        from app.frontends.gui import common
        from app.frontends.gui.jobs import describe_error

        showing.append(True)
        try:
            common.show_error(QApplication.activeWindow(), describe_error(value), details)
        except Exception:
            log.exception("the error dialog failed")
        finally:
            showing.clear()

    sys.excepthook = hook


def acquire_workspace_lock(workspace_root: Path, ask: bool = True) -> "tuple[WorkspaceLock | None, bool]":
    """-> (lock or None, read_only). A second window on the same workspace is offered read-only or quit."""
    from app.core.services.session import WorkspaceLock

    lock = WorkspaceLock(workspace_root)
    if lock.try_acquire():
        return lock, False
    if not ask:
        return None, True
    holder = lock.holder_pid()
    box = QMessageBox(QMessageBox.Icon.Warning, "Keel",
                      f"This workspace is already open in another Keel window or runner"
                      f"{f' (process {holder})' if holder else ''}.")
    box.setInformativeText(f"{workspace_root}\n\nOnly one window may change a workspace at a time. "
                           "You can open it read-only (you see changes live, but cannot train, deploy or add data), or quit.")
    read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    if box.clickedButton() is read_only:
        return None, True
    raise SystemExit(0)


class StartupReport(QObject):
    """Prints when the window first painted (FIRST_PAINT <epoch s>) and when it was painted with the
    workspace shown (WORKSPACE_SHOWN <epoch s>: the project list and the Overview filled) for
    bench/startup.py, when $KEEL_REPORT_FIRST_PAINT is set; "quit" ends the process once both are out."""

    POLL_MS = 5

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.main_window = window
        self.painted = False
        self._poll = QTimer(self)
        self._poll.setInterval(self.POLL_MS)
        self._poll.timeout.connect(self._check_shown)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.painted and event.type() == QEvent.Type.Paint:
            self.painted = True
            QTimer.singleShot(0, self._report_paint)
        return False

    def _report_paint(self) -> None:
        print(f"FIRST_PAINT {time.time():.6f}", flush=True)
        self._poll.start()

    def _check_shown(self) -> None:
        if not self.main_window.workspace_shown():
            return
        self._poll.stop()
        self.main_window.repaint()  # painted filled (the last change may have painted nothing)
        print(f"WORKSPACE_SHOWN {time.time():.6f}", flush=True)
        if os.environ.get("KEEL_REPORT_FIRST_PAINT") == "quit":
            # at once, on a throwaway workspace: closing would wait for (and ask about) a catch-up
            # monitoring cycle the scheduler may have started meanwhile
            os._exit(0)


class Application:
    """One window on one workspace; File > Open workspace… swaps it for another."""

    def __init__(self, qt_app: QApplication, start_scheduler: bool = True) -> None:
        self.qt_app = qt_app
        self.main_window: MainWindow | None = None
        self.lock: WorkspaceLock | None = None
        self.start_scheduler = start_scheduler

    def open(self, workspace: str | None) -> bool:
        from app.core.services.session import log_path, open_workspace
        from app.frontends.gui.controller import Controller
        from app.frontends.gui.main_window import MainWindow
        from app.logs import setup_logging

        root = open_workspace(workspace)
        setup_logging(log_path(root))
        lock, read_only = acquire_workspace_lock(root)
        controller = Controller(str(root), read_only=read_only, start_scheduler=self.start_scheduler)
        window = MainWindow(controller, settings_store())
        window.open_workspace_requested.connect(self.switch)
        if os.environ.get("KEEL_REPORT_FIRST_PAINT"):
            StartupReport(window)
        self.main_window, self.lock = window, lock
        window.show()
        QTimer.singleShot(0, controller.open_keel)  # after the first paint
        log.info("GUI opened on %s%s", root, " (read-only)" if read_only else "")
        return True

    def switch(self, workspace: str) -> None:
        old, old_lock = self.main_window, self.lock
        if old is not None:
            old.close()
            if old.isVisible():  # the user kept it open
                return
            old.deleteLater()
        if old_lock is not None:
            old_lock.release()
        self.open(workspace)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


NONE_REFERENCE_CUSHION = 1 << 40


@functools.cache  # once per process
def shield_none_refcount() -> None:
    """Work around a PySide6 6.12 reference leak on None (checked on Python 3.11).

    Each time C++ calls a Python override that returns None (QAbstractItemModel.data for a
    role it does not handle, QGraphicsItem.itemChange in pyqtgraph, ...) one reference to
    None is lost; a session that paints tables and plots for a while then dies with
    "Fatal Python error: none_dealloc". Python 3.12+ makes None immortal. On older Pythons,
    give None a huge reference count once, at start-up, before any other thread exists
    (tests/test_gui_jobs.py::test_none_is_shielded... shows the leak and the cure).
    """
    if sys.version_info >= (3, 12):
        return
    import ctypes

    # ob_refcnt is the first field. True and False get the same cushion: a full GUI test session
    # (tests/test_gui_*.py in one process) ended in "Fatal Python error: bool_dealloc" at exit;
    # they are immortal from Python 3.12 on, like None.
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += NONE_REFERENCE_CUSHION


def configure_process() -> None:
    shield_none_refcount()  # the job runner sets the switch interval its workers need


def follow_system_colour_scheme(qt_app: QApplication) -> None:
    """Light or dark as the system says, switched live: the style's palette for the new scheme
    (widgets and plots repaint from the palette, see plot_items.apply_palette)."""
    hints = qt_app.styleHints()
    if not hasattr(hints, "colorSchemeChanged"):  # Qt before 6.5
        return

    def switch(_scheme: Qt.ColorScheme | None = None) -> None:
        qt_app.setPalette(qt_app.style().standardPalette())

    hints.colorSchemeChanged.connect(switch)


def run(workspace: str | None = None) -> int:
    configure_process()
    existing = QApplication.instance()
    qt_app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    qt_app.setApplicationName("Keel")
    qt_app.setOrganizationName("Keel")
    qt_app.setQuitOnLastWindowClosed(True)
    style = RESOURCES / "keel.qss"
    if style.exists():
        qt_app.setStyleSheet(style.read_text())
    install_excepthook()
    follow_system_colour_scheme(qt_app)
    application = Application(qt_app)
    try:
        application.open(workspace)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    code = qt_app.exec()
    application.close()
    return code
