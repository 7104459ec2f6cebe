"""File dialogs that never open the files they list.

Qt's file dialog names each listed file's type by reading its first bytes. Opening and
closing registry.db (or its -shm file) in this process releases every POSIX lock SQLite
holds on it (a POSIX rule); the next process that closes a connection to the registry (a
monitoring child) then believes it was the last one and deletes the WAL and shared-memory
files under this window, whose connections then fail with "disk I/O error". These dialogs
name types and icons from the file name only. They are Qt's own dialogs on every platform:
an in-process native dialog may read files too.
"""

from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QFileInfo
from PySide6.QtGui import QAbstractFileIconProvider, QIcon
from PySide6.QtWidgets import QFileDialog, QFileIconProvider, QWidget


class NameOnlyIconProvider(QFileIconProvider):
    """Icons and type names from the path alone: no file is opened to guess its type."""

    def icon(self, target: QAbstractFileIconProvider.IconType | QFileInfo) -> QIcon:
        if isinstance(target, QFileInfo):
            kind = QAbstractFileIconProvider.IconType.Folder if target.isDir() else QAbstractFileIconProvider.IconType.File
            return super().icon(kind)
        return super().icon(target)

    def type(self, info: QFileInfo) -> str:
        if info.isDir():
            return "Folder"
        suffix = info.suffix()
        return f"{suffix.upper()} file" if suffix else "File"


def _choose(parent: QWidget | None, title: str, folder: str, name_filter: str = "",
            configure: Callable[[QFileDialog], None] = lambda dialog: None) -> list[str]:
    """Show one dialog and return what was chosen ([] when cancelled). The dialog has an icon provider
    of its own, which Qt does not take ownership of: the dialog, and with it the file system model whose
    thread asks the provider, is deleted here, before the provider goes (C++'s stack order)."""
    icons = NameOnlyIconProvider()
    dialog = QFileDialog(parent, title, folder, name_filter)
    dialog.setObjectName("keelFileDialog")
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setIconProvider(icons)
    configure(dialog)
    try:
        return dialog.selectedFiles() if dialog.exec() == QFileDialog.DialogCode.Accepted else []
    finally:
        shiboken6.delete(dialog)


def _first(chosen: list[str]) -> str:
    return chosen[0] if chosen else ""


def open_files(parent: QWidget | None, title: str, folder: str, name_filter: str = "") -> list[str]:
    """One or more existing files (Ctrl/Shift+click); [] when cancelled."""
    return _choose(parent, title, folder, name_filter,
                   lambda dialog: dialog.setFileMode(QFileDialog.FileMode.ExistingFiles))


def open_file(parent: QWidget | None, title: str, folder: str, name_filter: str = "") -> str:
    return _first(_choose(parent, title, folder, name_filter,
                          lambda dialog: dialog.setFileMode(QFileDialog.FileMode.ExistingFile)))


def existing_folder(parent: QWidget | None, title: str, folder: str) -> str:
    def folders_only(dialog: QFileDialog) -> None:
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)

    return _first(_choose(parent, title, folder, configure=folders_only))


def save_file(parent: QWidget | None, title: str, suggested: str, name_filter: str = "") -> str:
    path = Path(suggested)

    def save_as(dialog: QFileDialog) -> None:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.selectFile(path.name)

    return _first(_choose(parent, title, str(path.parent) if path.is_absolute() else str(Path.home()), name_filter,
                          save_as))
