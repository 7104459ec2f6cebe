"""Alerts: severity, when, message; acknowledge."""

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QCheckBox, QPushButton, QWidget

from app.frontends.gui.common import (
    BAD_COLOR,
    MUTED_COLOR,
    WARNING_COLOR,
    Record,
    local_time,
    muted,
    selected_records,
)
from app.frontends.gui.panels.base import Panel

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller

SEVERITY_COLORS = {"critical": BAD_COLOR, "error": BAD_COLOR, "warning": WARNING_COLOR, "info": None}


class AlertsPanel(Panel[list[Record]]):
    title = "Alerts"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        layout, top = self.page_layout("Alerts")
        self.open_only = QCheckBox("Open alerts only")
        self.open_only.setChecked(False)
        self.open_only.toggled.connect(lambda *_: self.mark_stale())
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setObjectName("acknowledge")
        self.ack_button.clicked.connect(self.acknowledge_selected)
        top.addWidget(self.open_only)
        top.addWidget(self.ack_button)
        self.table_model, self.view = self.records_table([
            ("Opened", lambda r: local_time(r["opened_at"])), ("Severity", "severity"), ("Status", "status"),
            ("Rule", "rule"), ("Message", "message"), ("Closed", lambda r: local_time(r.get("closed_at"))),
        ], "alertsTable")
        self.table_model.row_colors = lambda r: SEVERITY_COLORS.get(r["severity"]) if r["status"] == "open" else MUTED_COLOR
        layout.addWidget(self.view, 1)
        self.empty = muted("No alerts. Monitoring opens one when the metric crosses the threshold, drops too far, "
                           "or too many features drift.")
        layout.addWidget(self.empty)

    def clear(self) -> None:
        self.table_model.set_rows([])

    def read(self, keel: "Keel", project: str) -> list[Record]:
        return [alert.to_json() for alert in keel.alerts(project)]

    def show_data(self, rows: list[Record]) -> None:
        if self.open_only.isChecked():
            rows = [r for r in rows if r["status"] == "open"]
        self.table_model.set_rows(list(reversed(rows)))
        self.empty.setVisible(not rows)
        self.view.resizeColumnsToContents()

    def update_buttons(self) -> None:
        chosen = selected_records(self.view, self.table_model)
        self.ack_button.setEnabled(bool(chosen) and all(r["status"] == "open" for r in chosen)
                                   and self.controller.can_write())

    def acknowledge_selected(self) -> None:
        for record in selected_records(self.view, self.table_model):
            self.controller.acknowledge(record["id"])
