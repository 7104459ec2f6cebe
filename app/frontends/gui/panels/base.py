"""What every tab shares: a controller, and a refresh that runs only when the tab is visible."""

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from app.frontends.gui.common import heading


class Panel(QWidget):
    title = ""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self._stale = True
        self._shown_project = None  # the project whose data the widgets hold
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

    @property
    def keel(self):
        return self.controller.keel

    @property
    def project(self) -> str:
        return self.controller.project

    def shows(self, project: str) -> bool:
        """The widgets hold the project's current data (refreshed since the last change)."""
        return not self._stale and self._shown_project == project

    def mark_stale(self, *_) -> None:
        self._stale = True
        if self.isVisible():
            self._refresh_timer.start()

    def _refresh_if_stale(self) -> None:
        if self._stale and self.isVisible():
            self.refresh_now()

    def hideEvent(self, event):
        self._refresh_timer.stop()
        super().hideEvent(event)

    def showEvent(self, event):
        super().showEvent(event)
        if self._stale:
            self.refresh_now()

    def refresh_now(self) -> None:
        self._stale = False
        if self.keel is None or not self.project:
            self.clear()
            self._shown_project = None
        else:
            try:
                self.keel.project(self.project)
            except Exception:  # deleted by another process: the project list will drop it
                self.clear()
                return
            if self._shown_project != self.project:
                self.clear()  # nothing of the previous project survives into this one
                self._shown_project = self.project
            self.refresh()
        self.update_buttons()

    def refresh(self) -> None:  # read the registry and fill the view
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

    def sync():
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
