"""Deployments: the history, and one-click rollback to any earlier version."""

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QPushButton, QWidget

from app.frontends.gui.common import (
    GOOD_COLOR,
    Record,
    confirm,
    fmt_value,
    local_time,
    muted,
    selected_records,
)
from app.frontends.gui.panels.base import Panel

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller


class DeploymentsPanel(Panel[tuple[str, list[Record]]]):
    title = "Deployments"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        layout, top = self.page_layout("Deployment history")
        self.rollback_button = QPushButton("Roll back to selected version…")
        self.rollback_button.setObjectName("rollbackTo")
        self.rollback_button.clicked.connect(self.rollback_selected)
        top.addWidget(self.rollback_button)
        self.table_model, self.view = self.records_table([
            ("When", lambda r: local_time(r["deployed_at"])), ("Version", lambda r: f"v{r['version']}"),
            ("Status", lambda r: "● in production" if r["current"] else ""),
            ("Kind", lambda r: "rollback" if r["is_rollback"] else "deploy"), ("By", "by"),
            ("Metric at training", "training_value"), ("Reason", "reason"),
        ], "deploymentsTable")
        self.table_model.row_colors = lambda r: GOOD_COLOR if r["current"] else None
        layout.addWidget(self.view, 1)
        layout.addWidget(muted("Rolling back makes an earlier version the production model again; nothing is deleted, "
                               "and the rollback itself is recorded here and in Activity."))

    def clear(self) -> None:
        self.table_model.set_rows([])

    def read(self, keel: "Keel", name: str) -> tuple[str, list[Record]]:
        """The project's primary metric, and its deployments (oldest first) with that metric at training."""
        metric = keel.project(name).metric
        deployments = keel.deployments(name)
        metrics: dict[int, float | None] = {}  # the metric at training, by model version id
        for deployment in deployments:
            if deployment.model_version_id not in metrics:
                version = keel.model_version_by_id(deployment.model_version_id)
                metrics[deployment.model_version_id] = keel.model_metrics(version).get(metric)
        last = len(deployments) - 1
        return metric, [{**deployment.to_json(), "training_value": metrics[deployment.model_version_id],  # a table row
                         "current": index == last} for index, deployment in enumerate(deployments)]

    def show_data(self, data: tuple[str, list[Record]]) -> None:
        metric, rows = data
        self.metric_name = metric
        self.table_model.columns[5] = (f"{metric} at training", "training_value")
        self.table_model.set_rows(list(reversed(rows)))
        self.view.resizeColumnsToContents()

    def update_buttons(self) -> None:
        chosen = selected_records(self.view, self.table_model)
        current = next((r for r in self.table_model.rows if r["current"]), None)
        ok = len(chosen) == 1 and current is not None and chosen[0]["version"] != current["version"]
        self.rollback_button.setEnabled(ok and self.writable())

    def rollback_selected(self) -> None:
        chosen = selected_records(self.view, self.table_model)
        current = next((r for r in self.table_model.rows if r["current"]), None)
        if len(chosen) != 1 or current is None:
            return
        target = chosen[0]
        text = f"Roll {self.project} back from v{current['version']} to v{target['version']}?"
        informative = (f"Production changes from v{current['version']} ({self.metric_name} at training "
                       f"{fmt_value(current['training_value'])}) to v{target['version']} ({self.metric_name} at training "
                       f"{fmt_value(target['training_value'])}), first deployed {local_time(target['deployed_at'])}. "
                       "The scoring server answers with it from its next request. "
                       f"v{current['version']} stays in the registry and can be deployed again.")
        if confirm(self, "Roll back", text, informative, ok="Roll back"):
            self.controller.rollback(to_version=target["version"])
