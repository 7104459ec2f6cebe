"""Every action and every button of the main window, clicked as a user would, with the demo
project loaded: each dialog that opens is painted and answered, and the run fails on any
uncaught exception (pytest-qt), any Qt warning, any "Error calling Python override" on
stderr, any error dialog for an internal error, or a thread, child process or timer left
behind (leak_guard).

Actions are found by walking the window's QActions, so a new one is covered without
touching this file."""

import pytest
from gui_fixtures import DialogAnswerer
from PySide6.QtCore import QtMsgType
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QPushButton,
    QTableView,
    QWhatsThis,
)
from shiboken6 import isValid

JOB_TIMEOUT_MS = 90_000
DECLINED = ("Delete project", "Quit", "Reset demo")  # confirmations answered No during the walk
LAST = ("delete_project", "quit")
OFFSCREEN_NOTE = "This plugin does not support propagateSizeHints"  # the offscreen platform's own, not ours  # triggered after everything else, accepted


def wait_idle(qtbot, window) -> None:
    runner = window.controller.runner
    qtbot.waitUntil(lambda: not [j for j in runner.active_jobs()], timeout=JOB_TIMEOUT_MS)
    window.grab()  # paint whatever the action left on screen


def window_actions(window) -> list[tuple[str, QAction]]:
    """Every QAction of the window, menus included, each once, named (the named ones by their key)."""
    names = {id(action): key for key, action in window.named_actions.items()}
    found, seen = [], set()
    for action in window.findChildren(QAction):
        if id(action) in seen or action.isSeparator() or action.menu() is not None:
            continue
        seen.add(id(action))
        found.append((names.get(id(action), action.text().replace("&", "")), action))
    return found


def click_every_button(qtbot, window) -> list[str]:
    """Visit every tab; with the first row, then every row of each table selected, click each
    enabled button that is not a mirror of an action (those were triggered already)."""
    clicked = []
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        panel = window.tabs.widget(index)
        wait_idle(qtbot, window)
        tables = [t for t in panel.findChildren(QTableView) if t.isVisible() and t.model() is not None]
        for select in ("first", "all"):
            for table in tables:
                if table.model().rowCount() == 0:
                    continue
                if select == "first" or table.selectionMode() == QAbstractItemView.SelectionMode.SingleSelection:
                    table.selectRow(0)
                else:
                    table.selectAll()
            for button in panel.findChildren(QPushButton):
                if not isValid(button):  # deleted by an earlier click (a view rebuilt)
                    continue
                if button.property("mirrorsAction") or not (button.isVisible() and button.isEnabled()):
                    continue
                clicked.append(f"{panel.title}: {button.text()}")
                button.click()
                wait_idle(qtbot, window)
    return clicked


@pytest.mark.qt_log_level_fail("WARNING")
@pytest.mark.qt_log_ignore(OFFSCREEN_NOTE)
def test_every_action_and_button_of_the_window_runs_cleanly(qtbot, window, qtlog, capfd):
    answerer = DialogAnswerer(decline=DECLINED)
    try:
        actions = window_actions(window)
        names = [name for name, _ in actions]
        for key in ("new_project", "add_data", "retrain", "deploy", "rollback", "monitor", "settings", "serve", "about"):
            assert key in names, f"{key} is not reachable from the window"
        triggered = []
        walk = [a for a in actions if a[0] not in LAST] + [a for a in actions if a[0] == "delete_project"]
        for name, action in walk:
            if not action.isEnabled():
                continue
            triggered.append(name)
            action.trigger()
            wait_idle(qtbot, window)
            if QWhatsThis.inWhatsThisMode():  # What's this? waits for a click on a widget: Esc, as a user would
                QWhatsThis.leaveWhatsThisMode()
            if action.isCheckable() and action.isChecked():  # a toggle: switch it back off
                action.trigger()
                wait_idle(qtbot, window)
            if name == "deploy":  # v2 deployed: Roll back now has somewhere to go
                assert window.controller.keel.production_version("demo-credit") == 2
            if name == "Models":  # the buttons, once the first actions have made versions to act on
                triggered += click_every_button(qtbot, window)
        assert {"retrain", "deploy", "rollback", "monitor", "settings", "serve", "about", "new_project",
                "Models: Compare selected"} <= set(triggered), triggered
        titles = {title for _, title in answerer.seen}
        assert {"Deploy", "Roll back", "About Keel", "Delete project", "Keyboard shortcuts",
                "Keel user guide"} <= titles, titles
        assert any(kind == "SettingsDialog" for kind, _ in answerer.seen)
        assert any(kind == "NewProjectWizard" for kind, _ in answerer.seen)
        assert window.controller.keel.list_projects()  # "Delete project" was declined during the walk
    finally:
        answerer.stop()
    # the last click: deleting the project, accepted; every panel then shows nothing of it
    accept_all = DialogAnswerer()
    try:
        window.named_actions["delete_project"].trigger()
        wait_idle(qtbot, window)
        qtbot.waitUntil(lambda: window.project_list.count() == 0 and window.controller.project == "", timeout=10000)
        for index in range(window.tabs.count()):
            window.tabs.setCurrentIndex(index)
            window.grab()
        assert window.panels["models"].table_model.rowCount() == 0
        assert window.panels["monitoring"].table_model.rowCount() == 0
        window.named_actions["quit"].trigger()
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=JOB_TIMEOUT_MS)
    finally:
        accept_all.stop()
    # an action may fail for a reason the user can fix (no MLflow server to push to): a one-line
    # message; an internal error ("Unexpected error (…)") or a multi-line message is a defect
    defects = [message for message, _ in window.errors if "Unexpected error" in message or "\n" in message.strip()]
    assert defects == []
    warnings = [r.message for r in qtlog.records
                if r.type != QtMsgType.QtDebugMsg and OFFSCREEN_NOTE not in r.message]
    assert warnings == []
    stderr = capfd.readouterr().err
    assert "Error calling Python override" not in stderr and "Traceback" not in stderr, stderr
