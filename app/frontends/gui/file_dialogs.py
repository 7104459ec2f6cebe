"""File dialogs that never open the files they list.

Qt's file dialog names each listed file's type by reading its first bytes. Opening and
closing registry.db (or its -shm file) in this process releases every POSIX lock SQLite
holds on it (a POSIX rule); the next process that closes a connection to the registry (a
monitoring child) then believes it was the last one and deletes the WAL and shared-memory
files under this window, whose connections then fail with "disk I/O error". These dialogs
name types and icons from the file name only. They are Qt's own dialogs on every platform:
an in-process native dialog may read files too.
"""

from pathlib import Path

from PySide6.QtCore import QFileInfo
from PySide6.QtGui import QAbstractFileIconProvider
from PySide6.QtWidgets import QFileDialog, QFileIconProvider, QWidget


class NameOnlyIconProvider(QFileIconProvider):
    """Icons and type names from the path alone: no file is opened to guess its type."""

    def icon(self, target):
        if isinstance(target, QFileInfo):
            kind = QAbstractFileIconProvider.IconType.Folder if target.isDir() else QAbstractFileIconProvider.IconType.File
            return super().icon(kind)
        return super().icon(target)

    def type(self, info: QFileInfo) -> str:
        if info.isDir():
            return "Folder"
        suffix = info.suffix()
        return f"{suffix.upper()} file" if suffix else "File"


_provider: NameOnlyIconProvider | None = None  # shared; a dialog does not own its icon provider


def _dialog(parent: QWidget | None, title: str, folder: str, name_filter: str = "") -> QFileDialog:
    global _provider
    if _provider is None:
        _provider = NameOnlyIconProvider()
    dialog = QFileDialog(parent, title, folder, name_filter)
    dialog.setObjectName("keelFileDialog")
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setIconProvider(_provider)
    return dialog


def _run(dialog: QFileDialog) -> list[str]:
    try:
        return dialog.selectedFiles() if dialog.exec() == QFileDialog.DialogCode.Accepted else []
    finally:
        dialog.deleteLater()


def open_files(parent: QWidget | None, title: str, folder: str, name_filter: str = "") -> list[str]:
    """One or more existing files (Ctrl/Shift+click); [] when cancelled."""
    dialog = _dialog(parent, title, folder, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
    return _run(dialog)


def open_file(parent: QWidget | None, title: str, folder: str, name_filter: str = "") -> str:
    dialog = _dialog(parent, title, folder, name_filter)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    chosen = _run(dialog)
    return chosen[0] if chosen else ""


def existing_folder(parent: QWidget | None, title: str, folder: str) -> str:
    dialog = _dialog(parent, title, folder)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    chosen = _run(dialog)
    return chosen[0] if chosen else ""


def save_file(parent: QWidget | None, title: str, suggested: str, name_filter: str = "") -> str:
    path = Path(suggested)
    dialog = _dialog(parent, title, str(path.parent) if path.is_absolute() else str(Path.home()), name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.selectFile(path.name)
    chosen = _run(dialog)
    return chosen[0] if chosen else ""
