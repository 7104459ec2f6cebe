"""What every tab shares: a controller, and a refresh that runs only when the tab is visible:
its service reads on a worker (Panel.read), the widgets filled on the GUI thread (Panel.show_data)."""

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QHideEvent, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableView, QVBoxLayout, QWidget

from app.frontends.gui.common import Column, RecordsModel, heading, make_table

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller

log = logging.getLogger("keel.ui")
READS_QUEUE = "tab-reads"  # one worker reads for every tab (and the project list), in turn
PanelData = TypeVar("PanelData")  # what a tab's read returns and its show_data shows


class Panel(QWidget, Generic[PanelData]):
    title = ""

    def __init__(self, controller: "Controller", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._stale = True
        self._shown_project: str | None = None  # the project whose data the widgets hold
        self._reading = False  # a read of this tab's data is on a worker
        self._read_again = False  # a refresh was asked for while it ran
        # refreshes run in their own event-loop turn, coalesced: a burst of changes costs one refresh,
        # and the project list and this panel do not redraw in the same turn
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self._refresh_if_stale)
        controller.project_changed.connect(self.mark_stale)
        controller.registry_changed.connect(self.mark_stale)
        controller.keel_ready.connect(self.mark_stale)
        controller.jobs_changed.connect(self.update_buttons)

    def page_layout(self, title: str) -> tuple[QVBoxLayout, QHBoxLayout]:
        """The tab's layout and its title row; the caller adds its actions to the row, on the right."""
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading(title))
        top.addStretch(1)
        layout.addLayout(top)
        return layout, top

    def records_table(self, columns: Sequence[Column], object_name: str) -> tuple[RecordsModel, QTableView]:
        """A table of records whose selection decides the tab's buttons (update_buttons runs on each change)."""
        table_model = RecordsModel(columns)
        view, _ = make_table(table_model)
        view.setObjectName(object_name)
        view.selectionModel().selectionChanged.connect(lambda *_: self.update_buttons())
        return table_model, view

    @property
    def keel(self) -> "Keel | None":
        return self.controller.keel

    @property
    def project(self) -> str:
        return self.controller.project

    def shows(self, project: str) -> bool:
        """The widgets hold the project's current data (refreshed since the last change)."""
        return not self._stale and self._shown_project == project

    def mark_stale(self, *_: object) -> None:
        self._stale = True
        if self.isVisible():
            self._refresh_timer.start()

    def _refresh_if_stale(self) -> None:
        if self._stale and self.isVisible():
            self.refresh_now()

    def hideEvent(self, event: QHideEvent) -> None:
        self._refresh_timer.stop()
        super().hideEvent(event)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh_now()

    def refresh_now(self) -> None:
        """Read what the tab shows on a worker (read), then fill the widgets on the GUI thread (show).
        A refresh asked for while a read is in flight reads again once it lands."""
        self._stale = False
        if self.keel is None or not self.project:
            self.clear()
            self._shown_project = None
            self.update_buttons()
            return
        keel, name = self.keel, self.project
        if self._shown_project not in (None, name):
            self.clear()  # nothing of the previous project stays on show while this one is read
            self._shown_project = None
        if self._reading:
            self._read_again = True
            return
        self._reading, self._read_again = True, False
        self.controller.run(READS_QUEUE, "read", f"Reading {name} for {self.title or 'a tab'}",
                            lambda job: self.read(keel, name), project=name,
                            on_done=lambda data: self._read_done(keel, name, data),
                            on_error=lambda message, details: self._read_failed(keel, name, message))

    @property
    def up_to_date(self) -> bool:
        """The widgets show the latest read: no refresh pending, no read on a worker."""
        return not self._stale and not self._reading

    def _read_done(self, keel: "Keel", name: str, data: PanelData) -> None:
        self._reading = False
        if keel is self.keel and name == self.project:
            if self._shown_project != name:
                self.clear()  # nothing of the previous project survives into this one
                self._shown_project = name
            self.show_data(data)
            self.update_buttons()
        else:
            self._stale = True  # read for a project (or workspace) no longer on show
        self._read_again_if_asked()

    def _read_failed(self, keel: "Keel", name: str, message: str) -> None:
        """E.g. the project was deleted by another process: the project list drops it."""
        self._reading = False
        log.warning("reading %s for the %s tab failed: %s", name, self.title, message)
        if keel is self.keel and name == self.project:
            self.clear()
            self._shown_project = None
        self._read_again_if_asked()

    def _read_again_if_asked(self) -> None:
        if self._read_again or self._stale:
            self._read_again = False
            self.mark_stale()

    def read(self, keel: "Keel", project: str) -> PanelData:
        """On a worker thread: ask the services for what the tab shows. Touches no widget."""
        raise NotImplementedError

    def show_data(self, data: PanelData) -> None:
        """On the GUI thread: fill the widgets with what read returned."""
        raise NotImplementedError

    def clear(self) -> None:
        pass

    def update_buttons(self) -> None:
        pass

    def writable(self) -> bool:
        """A change of production makes sense: a workspace we may write, a project, and no deploy,
        rollback, archive or delete under way on it (other work just queues behind the running job)."""
        from app.frontends.gui.controller import DEPLOY_KINDS

        return self.controller.can_write() and bool(self.project) and not self.controller.busy(DEPLOY_KINDS)


def action_button(action: QAction, primary: bool = False) -> QPushButton:
    """A push button that mirrors a QAction (text, enabled, tooltip), so menus and buttons agree."""
    button = QPushButton(action.text().replace("&", ""))
    button.setObjectName("primaryAction" if primary else "")
    button.setProperty("mirrorsAction", True)
    button.setToolTip(action.toolTip())

    button.setCheckable(action.isCheckable())

    def sync() -> None:
        button.setEnabled(action.isEnabled())
        button.setVisible(action.isVisible())
        if action.isCheckable():
            button.setChecked(action.isChecked())
        button.setToolTip(action.toolTip() + (f"  ({action.shortcut().toString()})" if not action.shortcut().isEmpty() else ""))
        button.setText(action.text().replace("&", ""))

    action.changed.connect(sync)
    button.clicked.connect(action.trigger)
    sync()
    return button
