"""Help: every keyboard shortcut, and the user guide (the README's sections, read from the
checkout, shown offline)."""

import re

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import SOURCE_ROOT

GUIDE = SOURCE_ROOT / "README.md"


def shortcuts(window: QWidget) -> list[tuple[str, str]]:
    """(what, keys) for every action of the window that has a shortcut, in menu order."""
    seen, rows = set(), []
    for action in window.findChildren(QAction):
        keys = action.shortcut().toString()
        if keys and id(action) not in seen:
            seen.add(id(action))
            rows.append((action.text().replace("&", "").rstrip("…"), keys))
    return rows


def _closable(dialog: QDialog, layout: QVBoxLayout) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    buttons.accepted.connect(dialog.accept)
    layout.addWidget(buttons)


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.setObjectName("shortcutsDialog")
        rows = shortcuts(window)
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        for row, (what, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(what))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        _closable(self, layout)
        self.resize(460, min(560, 80 + 30 * len(rows)))


def guide_sections(markdown: str) -> list[tuple[str, str]]:
    """The README split at its level-2 headings: (title, markdown of the section)."""
    parts = re.split(r"(?m)^## ", markdown)
    sections = [("Keel", parts[0])] if parts[0].strip() else []
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        sections.append((title.strip(), f"## {part}"))
    return sections


class UserGuideDialog(QDialog):
    """The README, one section at a time, with the list of sections on the left."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keel user guide")
        self.setObjectName("userGuide")
        text = GUIDE.read_text(encoding="utf-8") if GUIDE.exists() else (
            "# Keel\n\nThe user guide (README.md) is not installed with this copy of Keel.")
        self.sections = guide_sections(text)
        self.index = QListWidget()
        self.index.addItems([title for title, _ in self.sections])
        self.index.setMaximumWidth(220)
        self.page = QTextBrowser()
        self.page.setOpenLinks(False)  # offline: links to other files are not followed
        self.page.setSearchPaths([str(SOURCE_ROOT)])  # the screenshots under docs/
        self.index.currentRowChanged.connect(self.show_section)
        body = QHBoxLayout()
        body.addWidget(self.index)
        body.addWidget(self.page, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        _closable(self, layout)
        self.index.setCurrentRow(0)
        self.resize(900, 600)

    def show_section(self, row: int) -> None:
        if 0 <= row < len(self.sections):
            self.page.setMarkdown(self.sections[row][1])
