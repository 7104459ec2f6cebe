"""The window's side of verify, backup/restore and project bundles (File menu entries).

After the workspace opens, the quick `verify` runs on a worker; when it finds a problem
the window says what it found and offers the repair. Every action is a job of the
controller (off the GUI thread); the services do the work.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton, QFileDialog, QMainWindow, QMenu, QMenuBar, QMessageBox, QWidget

from app.core.domain.upkeep import BundleImported, Finding, Restored, VerifyReport
from app.frontends.gui import common
from app.frontends.gui.controller import Controller

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel


@runtime_checkable
class RecoveryHost(Protocol):
    """What the entries use of the main window (which imports this module, so it is not imported here)."""

    controller: Controller
    named_actions: dict[str, QAction]

    def notify(self, level: str, message: str, seconds: float = 10.0) -> None: ...

    def show_error(self, message: str, details: str = "") -> None: ...

    def menuBar(self) -> QMenuBar: ...


def save_path(parent: QWidget | None, title: str, suggested: str, name_filter: str) -> str:
    """A file name to write ("" when cancelled); tests patch this function."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggested, name_filter)
    return path


def open_path(parent: QWidget | None, title: str, folder: str, name_filter: str) -> str:
    """A file to read ("" when cancelled); tests patch this function."""
    path, _ = QFileDialog.getOpenFileName(parent, title, folder, name_filter)
    return path


class RecoveryActions(QObject):
    def __init__(self, window: QMainWindow) -> None:
        if not isinstance(window, RecoveryHost):
            raise TypeError("the recovery entries belong to Keel's main window")
        super().__init__(window)
        self.main_window = window
        self.controller = window.controller
        self.last_verify: VerifyReport | None = None
        self.repair_box: QMessageBox | None = None
        self.named_actions = {
            "verify": self._action("&Verify workspace…", self.verify_full,
                                   "Check the registry and every file's sha256; offer to repair what can be"),
            "backup": self._action("&Back up…", self.backup, "The whole workspace in one file"),
            "restore": self._action("Res&tore…", self.restore, "Replace this workspace with a backup"),
            "export_project": self._action("E&xport project…", self.export_project,
                                           "The selected project in one .keel file, for a colleague"),
            "import_project": self._action("I&mport project…", self.import_project,
                                           "Add the project of a .keel file to this workspace"),
        }
        self._add_to_file_menu()
        # keel_ready comes after the first paint (the workspace opens on a worker): the check runs on one too
        self.controller.keel_ready.connect(self.verify_quick)

    def _action(self, text: str, slot: Callable[[], object], tip: str) -> QAction:
        action = QAction(text, self.main_window)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _add_to_file_menu(self) -> None:
        quit_action = self.main_window.named_actions["quit"]
        file_menu = self.main_window.menuBar().actions()[0].menu()
        if not isinstance(file_menu, QMenu):  # Qt types QAction.menu() as a QObject
            raise RuntimeError("the window's first menu is not File")
        for key in ("export_project", "import_project", None, "backup", "restore", "verify", None):
            if key is None:
                file_menu.insertSeparator(quit_action)
            else:
                file_menu.insertAction(quit_action, self.named_actions[key])
        self.main_window.named_actions.update(self.named_actions)

    # ------------------------------------------------------------------ verify
    def verify_quick(self) -> None:
        if self.controller.keel is not None:
            self._run_verify(quick=True, repair=False)

    def verify_full(self) -> None:
        self._run_verify(quick=False, repair=False, always_report=True)

    def _opened_keel(self) -> "Keel | None":
        """The workspace's Keel; None, said in the window, while the workspace is still opening."""
        keel = self.controller.keel
        if keel is None:
            self.main_window.notify("info", "The workspace is still opening: try again in a moment.")
        return keel

    def _writable_keel(self) -> "Keel | None":
        """The workspace's Keel for an action that writes to it; None, said in the window, while the
        workspace is still opening or when this window is read-only."""
        keel = self._opened_keel()
        if keel is not None and self.controller.read_only:
            self.main_window.notify("warning", "This window is read-only: another Keel window holds the workspace.")
            return None
        return keel

    def _run_verify(self, quick: bool, repair: bool, always_report: bool = False) -> None:
        keel = self._writable_keel() if repair else self._opened_keel()
        if keel is None:
            return
        title = "Repairing the workspace" if repair else "Checking the workspace"
        self.controller.run("verify", "verify", title, lambda job: keel.verifier.verify(quick=quick, repair=repair),
                            on_done=lambda result: self._verified(result, always_report or repair))

    def _verified(self, report: VerifyReport, always_report: bool) -> None:
        self.last_verify = report
        errors = report.errors
        if not errors:
            if always_report or report.repaired:
                fixed = f" ({len(report.repaired)} repaired)" if report.repaired else ""
                self.main_window.notify("info", f"The workspace is healthy{fixed}.")
            return
        self.main_window.notify("warning", f"verify found {len(errors)} problem(s) in the workspace: "
                                      f"{errors[0].path}: {errors[0].message}")
        self._offer_repair(report, errors)

    def _offer_repair(self, report: VerifyReport, errors: tuple[Finding, ...]) -> None:
        repairable = [p for p in errors if p.repair]
        box = QMessageBox(QMessageBox.Icon.Warning, "Workspace check",
                          f"Keel found {len(errors)} problem(s) in {report.workspace_root}.", parent=self.main_window)
        shown = [f"• {p.path}: {p.message}" + (f"  [repair: {p.repair}]" if p.repair else "")
                 for p in errors[:12]]
        if len(errors) > len(shown):
            shown.append(f"… and {len(errors) - len(shown)} more (`keel verify` lists them all)")
        box.setInformativeText("\n".join(shown) + (
            "\n\nRepair removes temporary files, rewrites stale manifests and moves orphans into "
            "quarantine/ (nothing is deleted)." if repairable else
            "\n\nNone of these can be repaired here: restore a backup (File > Restore…)."))
        repair_button = box.addButton("Repair", QMessageBox.ButtonRole.AcceptRole) if repairable else None
        box.addButton(QMessageBox.StandardButton.Close)
        box.setObjectName("verifyReport")

        def clicked(button: QAbstractButton) -> None:
            if repair_button is not None and button is repair_button:
                self._run_verify(quick=report.quick, repair=True)
        box.buttonClicked.connect(clicked)
        self.repair_box = box
        box.open()

    # ------------------------------------------------------------------ backup / restore
    def backup(self) -> None:
        keel = self._opened_keel()
        if keel is None:
            return
        suggested = str(Path.home() / f"{keel.root.name}.keel-backup")
        path = save_path(self.main_window, "Back up the workspace", suggested, "Keel backup (*.keel-backup)")
        if path:
            self.controller.run("backup", "backup", "Backing up the workspace", lambda job: keel.backup.backup(path),
                                on_done=lambda r: self.main_window.notify(
                                    "info", f"Backed up {len(r.projects)} project(s) to {r.path}."))

    def restore(self) -> None:
        keel = self._writable_keel()
        if keel is None:
            return
        if self.controller.busy():
            self.main_window.notify("warning", "Wait for the running jobs to finish before restoring.")
            return
        path = open_path(self.main_window, "Restore a backup", str(Path.home()), "Keel backup (*.keel-backup)")
        if not path or not common.confirm(
                self.main_window, "Restore this backup?", f"Replace the workspace {keel.root} with {Path(path).name}?",
                "Every file of the backup is checked first. The current projects and files are moved into "
                "quarantine/, not deleted.", ok="Restore"):
            return
        self.controller.stop_scheduler()

        def done(result: Restored) -> None:
            self.controller.restart_after_restore()
            self.main_window.notify("info", f"Restored {len(result.projects)} project(s) from {Path(path).name}.")

        def failed(message: str, details: str) -> None:
            self.controller.restart_after_restore()
            self.main_window.show_error(f"Restore failed: {message}", details)

        self.controller.run("workspace", "restore", "Restoring the workspace",
                            lambda job: keel.backup.restore(path, force=True, holding_workspace_lock=True),
                            on_done=done, on_error=failed)

    # ------------------------------------------------------------------ bundles
    def export_project(self) -> None:
        name = self.controller.project
        if not name:
            self.main_window.notify("info", "Select a project to export.")
            return
        keel = self._opened_keel()
        if keel is None:
            return
        path = save_path(self.main_window, f"Export {name}", str(Path.home() / f"{name}.keel"),
                                      "Keel project (*.keel)")
        if path:
            self.controller.run(name, "export", f"Exporting {name}", lambda job: keel.bundle.export_bundle(name, path),
                                project=name, on_done=lambda r: self.main_window.notify(
                                    "info", f"{name} exported to {r.path}."))

    def import_project(self) -> None:
        keel = self._writable_keel()
        if keel is None:
            return
        path = open_path(self.main_window, "Import a project", str(Path.home()), "Keel project (*.keel)")
        if not path:
            return

        def done(result: BundleImported) -> None:
            self.controller.registry_changed.emit()
            self.main_window.notify("info", f"Project {result.project} imported from {Path(path).name}.")

        self.controller.run("workspace", "import", f"Importing {Path(path).name}",
                            lambda job: keel.bundle.import_bundle(path), on_done=done)
