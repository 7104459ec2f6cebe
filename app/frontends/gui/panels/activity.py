"""Activity: the project's audit log, filterable."""

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QLineEdit, QWidget

from app.frontends.gui.common import SORT_ROLE, Record, RecordsModel, local_time, make_table
from app.frontends.gui.panels.base import Panel

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller

ALL_KINDS = "All kinds"


class ActivityPanel(Panel[list[Record]]):
    title = "Activity"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        layout, top = self.page_layout("Activity")
        self.kind = QComboBox()
        self.kind.addItem(ALL_KINDS)
        self.kind.currentTextChanged.connect(self._apply_filter)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter (text in any column)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_filter)
        top.addWidget(self.kind)
        top.addWidget(self.search)
        self.table_model = RecordsModel([("When", lambda r: local_time(r["at"])), ("Kind", "kind"), ("By", "by"),
                                   ("Message", "message")])
        self.view, _ = make_table(self.table_model)
        self.proxy = EventFilter(self.view)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view.setModel(self.proxy)
        self.view.setObjectName("activityTable")
        layout.addWidget(self.view, 1)

    def clear(self) -> None:
        self.table_model.set_rows([])

    def read(self, keel: "Keel", project: str) -> list[Record]:
        return [event.to_json() for event in keel.events(project)]  # a table shows rows of named values

    def show_data(self, rows: list[Record]) -> None:
        self.table_model.set_rows(list(reversed(rows)))  # newest first; a header click sorts
        kinds = sorted({r["kind"] for r in rows})
        current = self.kind.currentText()
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItems([ALL_KINDS] + kinds)
        self.kind.setCurrentText(current if current in kinds else ALL_KINDS)
        self.kind.blockSignals(False)
        self._apply_filter()
        for column in range(3):  # the message column stretches; sizing it would scan long texts
            self.view.resizeColumnToContents(column)

    def _apply_filter(self, *_: object) -> None:
        changing = hasattr(self.proxy, "beginFilterChange")  # Qt >= 6.9; invalidateFilter() is deprecated there
        if changing:
            self.proxy.beginFilterChange()
        self.proxy.kind = self.kind.currentText()
        self.proxy.text = self.search.text().strip().lower()
        if changing:
            self.proxy.endFilterChange()
        else:
            self.proxy.invalidateFilter()

    @property
    def visible_rows(self) -> int:
        return self.proxy.rowCount()


class EventFilter(QSortFilterProxyModel):
    """Rows of one kind (or all) whose kind, author or message contains the text."""

    kind = ALL_KINDS
    text = ""

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        source = self.sourceModel()
        if not isinstance(source, RecordsModel):  # not reached: the panel filters its RecordsModel
            return True
        record = source.rows[source_row]
        if self.kind not in ("", ALL_KINDS) and record["kind"] != self.kind:
            return False
        return not self.text or self.text in f"{record['kind']} {record['by']} {record['message']}".lower()
