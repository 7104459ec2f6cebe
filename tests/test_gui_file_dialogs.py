"""Browsing the workspace folder in a file dialog must not release this process's SQLite
locks: Qt's dialog used to read each listed file to name its type, and closing registry.db
or its -shm file dropped every POSIX lock on it, so the next process to close a connection
deleted the WAL under the window ("disk I/O error" afterwards)."""

import sqlite3
import subprocess
import sys

import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog

from app.frontends.gui import file_dialogs


def test_listing_a_folder_with_a_live_sqlite_database_keeps_its_wal(qtbot, tmp_path):
    database = tmp_path / "registry.db"
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")
        listed, shown = [], []

        def look_then_cancel():
            dialog = QApplication.activeModalWidget()
            assert isinstance(dialog, QFileDialog) and dialog.isVisible()
            assert isinstance(dialog.iconProvider(), file_dialogs.NameOnlyIconProvider)
            shown.append(dialog)
            qtbot.waitUntil(lambda: _listed(dialog), timeout=5000)
            listed.append(True)
            dialog.grab()
            dialog.reject()

        def _listed(dialog):
            from PySide6.QtWidgets import QFileSystemModel

            model = dialog.findChild(QFileSystemModel)
            root = model.index(str(tmp_path))
            names = {model.index(row, 0, root).data(): model.index(row, 2, root).data() for row in range(model.rowCount(root))}
            return all(names.get(name) for name in ("registry.db", "registry.db-wal", "registry.db-shm"))

        QTimer.singleShot(50, look_then_cancel)
        assert file_dialogs.open_file(None, "Pick", str(tmp_path)) == ""
        assert listed
        assert not shiboken6.isValid(shown[0])  # deleted before its icon provider was let go
        # another process opens and closes the database: it must see this process's connection
        subprocess.run([sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(database)!r}); "
                                              "c.execute('SELECT * FROM t').fetchall(); c.close()"], check=True)
        assert (tmp_path / "registry.db-wal").exists() and (tmp_path / "registry.db-shm").exists()
    finally:
        connection.close()


def test_type_names_come_from_the_file_name(tmp_path):
    from PySide6.QtCore import QFileInfo

    provider = file_dialogs.NameOnlyIconProvider()
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    assert provider.type(QFileInfo(str(tmp_path / "data.parquet"))) == "PARQUET file"
    assert provider.type(QFileInfo(str(tmp_path))) == "Folder"
