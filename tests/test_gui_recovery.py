"""The window's recovery entries: the quick verify after opening says what it found and offers
the repair; File > Back up…, Restore…, Export project…, Import project… run as jobs."""

import os
import time

from cli_helpers import deployed_loans_workspace
from gui_fixtures import open_window
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import app.frontends.gui.common as common
import app.frontends.gui.recovery_actions as recovery_actions


def test_the_file_menu_has_the_recovery_entries(window):
    file_menu = window.menuBar().actions()[0].menu()
    texts = [a.text().replace("&", "") for a in file_menu.actions() if not a.isSeparator()]
    for entry in ("Export project…", "Import project…", "Back up…", "Restore…", "Verify workspace…"):
        assert entry in texts
    assert texts[-1] == "Quit"


def test_a_healthy_workspace_opens_without_a_report(window, qtbot):
    qtbot.waitUntil(lambda: window.recovery_actions.last_verify is not None, timeout=20000)
    assert window.recovery_actions.last_verify.healthy
    assert window.recovery_actions.last_verify.quick
    assert window.recovery_actions.repair_box is None


def test_the_quick_check_reports_an_orphan_and_repairs_it_when_asked(qtbot, demo_workspace, gui_settings,
                                                                      leak_guard, monkeypatch):
    orphan = demo_workspace / "datasets" / "demo-credit" / "v99.parquet"
    orphan.write_bytes(b"left by a killed ingest")
    past = time.time() - 3600
    os.utime(orphan, (past, past))
    win = open_window(qtbot, demo_workspace)
    try:
        actions = win.recovery_actions
        qtbot.waitUntil(lambda: actions.repair_box is not None and actions.repair_box.isVisible(), timeout=20000)
        assert not actions.last_verify.healthy
        assert "datasets/demo-credit/v99.parquet" in actions.repair_box.informativeText()
        repair = next(b for b in actions.repair_box.buttons() if b.text() == "Repair")
        repair.click()
        qtbot.waitUntil(lambda: bool(actions.last_verify.healthy and actions.last_verify.repaired), timeout=20000)
        assert not orphan.exists()
        assert list((demo_workspace / "quarantine").rglob("v99.parquet"))
    finally:
        monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
        win.close()


def test_back_up_then_export_and_import_a_project(window, qtbot, tmp_path, monkeypatch):
    backup_path = tmp_path / "ws.keel-backup"
    bundle_path = tmp_path / "demo.keel"
    saves = iter([str(backup_path), str(bundle_path)])
    monkeypatch.setattr(recovery_actions, "save_path", lambda *a, **k: next(saves))
    window.named_actions["backup"].trigger()
    qtbot.waitUntil(backup_path.exists, timeout=30000)
    window.named_actions["export_project"].trigger()
    qtbot.waitUntil(bundle_path.exists, timeout=30000)
    qtbot.waitUntil(lambda: not window.controller.busy(), timeout=30000)


    other = tmp_path / "other-ws"
    from app.core.services.lifecycle import Keel

    keel = Keel.open(other)
    try:
        assert keel.bundle.import_bundle(bundle_path).project == "demo-credit"
    finally:
        keel.close()
    assert not window.errors


def test_a_failed_import_is_reported(window, qtbot, tmp_path, monkeypatch):
    junk = tmp_path / "junk.keel"
    junk.write_text("not a bundle")
    monkeypatch.setattr(recovery_actions, "open_path", lambda *a, **k: str(junk))
    window.named_actions["import_project"].trigger()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=20000)
    assert "not a Keel archive" in window.errors[0][0]
    assert QMessageBox  # the report box class used by the check above


def test_restore_from_the_window_replaces_the_workspace(window, qtbot, tmp_path, monkeypatch):

    keel = window.controller.keel
    archive = tmp_path / "before.keel-backup"
    keel.backup.backup(archive)
    keel.archive_version("demo-credit", 1, archived=False)  # an event after the backup
    events_before = len(keel.history("demo-credit").events)
    monkeypatch.setattr(recovery_actions, "open_path", lambda *a, **k: str(archive))
    monkeypatch.setattr(common, "confirm", lambda *a, **k: True)
    qtbot.waitUntil(lambda: not window.controller.busy(), timeout=20000)
    notes = []
    monkeypatch.setattr(window, "notify", lambda level, message, seconds=10.0: notes.append(message))
    window.named_actions["restore"].trigger()
    qtbot.waitUntil(lambda: any(n.startswith("Restored 1 project") for n in notes), timeout=30000)
    assert len(keel.history("demo-credit").events) == events_before - 1
    assert list((window.controller.keel.root / "quarantine").rglob("registry.db"))
    assert not window.errors


def test_the_recovery_actions_show_what_verify_backup_export_and_import_did(window, qtbot, tmp_path, monkeypatch):
    shown: list[str] = []
    window.statusBar().messageChanged.connect(lambda message: shown.append(message) if message else None)
    qtbot.waitUntil(lambda: window.recovery_actions.last_verify is not None and not window.controller.busy(),
                    timeout=20000)

    window.named_actions["verify"].trigger()
    qtbot.waitUntil(lambda: "The workspace is healthy." in shown, timeout=30000)
    assert window.recovery_actions.last_verify.checked.hashed

    backup_path, bundle_path = tmp_path / "ws.keel-backup", tmp_path / "demo.keel"
    saves = iter([str(backup_path), str(bundle_path)])
    monkeypatch.setattr(recovery_actions, "save_path", lambda *a, **k: next(saves))
    window.named_actions["backup"].trigger()
    qtbot.waitUntil(lambda: f"Backed up 1 project(s) to {backup_path}." in shown, timeout=30000)
    window.named_actions["export_project"].trigger()
    qtbot.waitUntil(lambda: f"demo-credit exported to {bundle_path}." in shown, timeout=30000)

    from app.core.services.lifecycle import Keel

    other = Keel.open(deployed_loans_workspace(tmp_path / "other", rows=120, seed=3))
    try:
        loans_bundle = other.bundle.export_bundle("loans", tmp_path / "loans.keel")
    finally:
        other.close()
    monkeypatch.setattr(recovery_actions, "open_path", lambda *a, **k: loans_bundle.path)
    window.named_actions["import_project"].trigger()
    qtbot.waitUntil(lambda: "Project loans imported from loans.keel." in shown, timeout=30000)
    listed = lambda: [window.project_list.item(i).data(Qt.ItemDataRole.UserRole)  # noqa: E731
                      for i in range(window.project_list.count())]
    qtbot.waitUntil(lambda: "loans" in listed(), timeout=20000)
    qtbot.waitUntil(lambda: not window.controller.busy(), timeout=20000)
    assert not window.errors


def test_the_recovery_entries_wait_while_the_workspace_opens(qtbot, demo_workspace, gui_settings, leak_guard,
                                                             monkeypatch):
    """Before Keel is constructed (it opens on a worker after the first paint) the entries ask for no
    file and start no job: the window says the workspace is still opening (they used to fail on None)."""
    from app.frontends.gui.application import settings_store
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.main_window import MainWindow

    errors, asked = [], []
    monkeypatch.setattr(common, "show_error", lambda *a, **k: errors.append(a))
    monkeypatch.setattr(recovery_actions, "save_path", lambda *a, **k: asked.append(a) or "")
    monkeypatch.setattr(recovery_actions, "open_path", lambda *a, **k: asked.append(a) or "")
    controller = Controller(str(demo_workspace), start_scheduler=False)
    window = MainWindow(controller, settings_store())
    qtbot.addWidget(window)
    window.show()
    for key in ("backup", "verify", "import_project"):
        window.named_actions[key].trigger()
    assert not asked and not errors and not controller.runner.active_jobs()
    opening = "The workspace is still opening: try again in a moment."
    assert [message for _, message in window.banner.history] == [opening] * 3


def test_a_read_only_window_refuses_to_import_restore_or_repair(qtbot, demo_workspace, monkeypatch):
    """Another window holds the workspace: import, restore and repair would write to it, so they ask
    for no file and start no job; the window says why."""
    asked = []
    monkeypatch.setattr(recovery_actions, "open_path", lambda *a, **k: asked.append(a) or "")
    window = open_window(qtbot, demo_workspace, read_only=True)
    try:
        qtbot.waitUntil(lambda: not window.controller.runner.active_jobs(), timeout=20000)  # the check at opening
        window.banner.history.clear()
        for key in ("import_project", "restore"):
            window.named_actions[key].trigger()
        window.recovery_actions._run_verify(quick=True, repair=True)  # what the report's Repair button runs
        assert not asked and not window.controller.runner.active_jobs()
        refused = "This window is read-only: another Keel window holds the workspace."
        assert [message for _, message in window.banner.history] == [refused] * 3
    finally:
        window.close()
