"""Overview: the production model card and the big actions."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QHideEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.core.domain.cards import ProductionCard
from app.core.domain.settings import PRESET_LABELS, higher_is_better
from app.frontends.gui.common import (
    HEALTH_COLORS,
    Card,
    Record,
    RecordsModel,
    Sparkline,
    fmt_value,
    heading,
    local_time,
    make_table,
    muted,
)
from app.frontends.gui.panels.base import Panel, action_button

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller

STATE_TEXT = {"ok": "Healthy", "warning": "Degrading", "alert": "Needs attention", "none": "No production model"}


@dataclass(frozen=True)
class OverviewPage:
    """What the Overview shows of a project: its production card and its recent events (table rows)."""

    card: ProductionCard
    recent: list[Record]


class OverviewPanel(Panel[OverviewPage]):
    title = "Overview"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        self.named_actions = actions
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        self.title_label = heading("No project selected", 1.6)
        self.subtitle = muted("Create a project (File > New project…) or pick one on the left.")
        layout.addWidget(self.title_label)
        layout.addWidget(self.subtitle)

        row = QHBoxLayout()
        self.card = Card()
        card = self.card.layout_
        self.state_label = QLabel()
        self.state_label.setObjectName("healthState")
        self.version_label = heading("—", 2.2)
        self.version_label.setObjectName("productionVersion")
        self.deployed_label = QLabel()
        self.deployed_label.setWordWrap(True)
        self.metric_label = QLabel()
        self.metric_label.setWordWrap(True)
        self.reasons_label = muted()
        card.addWidget(muted("PRODUCTION MODEL"))
        card.addWidget(self.version_label)
        card.addWidget(self.state_label)
        card.addWidget(self.deployed_label)
        card.addWidget(self.metric_label)
        card.addWidget(self.reasons_label)
        self.spark_empty = muted("No monitoring results yet: run monitoring to see the metric over time here.")
        self.sparkline = Sparkline()
        self.sparkline.setObjectName("sparkline")
        self.sparkline.setToolTip("The primary metric in recent monitoring cycles (measured, or estimated when "
                                  "a batch has no labels); the dashed line is the threshold")
        self.sparkline.hide()
        card.addWidget(self.spark_empty)
        card.addWidget(self.sparkline)
        card.addStretch(1)
        row.addWidget(self.card, 3)

        facts = Card()
        self.facts = QGridLayout()
        facts.layout_.addWidget(muted("PROJECT"))
        facts.layout_.addLayout(self.facts)
        facts.layout_.addStretch(1)
        row.addWidget(facts, 2)
        layout.addLayout(row)

        buttons = QHBoxLayout()
        for key in ("retrain", "deploy", "rollback", "monitor", "approve"):
            button = action_button(actions[key], primary=key == "retrain")
            button.setMinimumHeight(34)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        extras = QHBoxLayout()
        for key in ("settings", "serve", "demo_batch"):
            extras.addWidget(action_button(actions[key]))
        self.server_label = muted()
        self.server_label.setObjectName("serverLine")
        self._server_clock = QTimer(self)  # the request counter moves without any registry change
        self._server_clock.setInterval(1000)
        self._server_clock.timeout.connect(self.show_server)
        self.server_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        extras.addWidget(self.server_label, 1)
        layout.addLayout(extras)
        layout.addSpacing(8)
        layout.addWidget(muted("RECENT ACTIVITY"))
        self.recent = RecordsModel([("When", lambda r: local_time(r["at"])), ("What", "kind"), ("By", "by"),
                                    ("", "message")])
        self.recent_view, _ = make_table(self.recent, sortable=False)
        self.recent_view.setObjectName("recentActivity")
        layout.addWidget(self.recent_view, 1)

    def clear(self) -> None:
        self.title_label.setText("No project selected" if self.keel is not None else "Opening the workspace…")
        self.subtitle.setText("Create a project (File > New project…) or pick one on the left.")
        self.version_label.setText("—")
        self.recent.set_rows([])
        for label in (self.state_label, self.deployed_label, self.metric_label, self.reasons_label):
            label.setText("")

    def read(self, keel: "Keel", project: str) -> OverviewPage:
        return OverviewPage(card=keel.insights.production_card(project),
                            recent=[event.to_json() for event in keel.recent_events(project)])

    def show_data(self, data: OverviewPage) -> None:
        card = data.card
        health = card.health
        metric = card.metric
        self.title_label.setText(self.project)
        self.subtitle.setText(f"{card.task.capitalize()} of “{card.target}” · primary metric {metric} "
                              f"({'higher' if higher_is_better(metric) else 'lower'} is better)")
        color = HEALTH_COLORS[health.state]
        self.state_label.setText(f"<span style='color:{color}; font-size:14pt'>●</span> <b>{STATE_TEXT[health.state]}</b>")
        production = card.production
        if production is None:
            self.version_label.setText("none yet")
            self.deployed_label.setText("Train a version, then deploy it (Models tab or Deploy…).")
            self.metric_label.setText("")
        else:
            kind = "rolled back" if production.is_rollback else "deployed"
            self.version_label.setText(f"v{production.version}")
            self.deployed_label.setText(f"{kind.capitalize()} {local_time(production.deployed_at)} by "
                                        f"{production.by}: {production.reason}")
            trained = health.training_value
            current = health.current_value
            now = "not measured yet" if current is None else \
                f"{fmt_value(current)}{' (estimated, no labels yet)' if health.current_is_estimate else ''}"
            self.metric_label.setText(f"<b>{metric}</b> now: {now}<br>at training: {fmt_value(trained)}")
        self.reasons_label.setText("; ".join(health.reasons))
        self._sparkline(card.sparkline, card.settings.threshold)
        self._facts(card)
        self.recent.set_rows(data.recent)
        self.recent_view.resizeColumnsToContents()
        self.show_server()

    def show_server(self) -> None:
        """Which project and version the scoring server answers for, and how many requests it answered."""
        server = self.controller.server
        if server is None:
            self.server_label.setText("")
            self._server_clock.stop()
            return
        version = server.model_version
        serving = f"v{version}" if version is not None else "no production model yet (/ping answers 503)"
        self.server_label.setText(f"Serving {server.project} {serving} at {server.url} · "
                                  f"{server.answered_count} request(s) answered, {server.request_count} scoring")
        if self.isVisible() and not self._server_clock.isActive():
            self._server_clock.start()

    def hideEvent(self, event: QHideEvent) -> None:
        self._server_clock.stop()
        super().hideEvent(event)

    def _facts(self, card: ProductionCard) -> None:
        while self.facts.count():
            item = self.facts.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        settings = card.settings
        facts = [
            ("Model preset", PRESET_LABELS.get(settings.preset, settings.preset)),
            ("Model versions", card.versions),
            ("Dataset versions", card.dataset_versions),
            ("Deployments", card.deployments),
            ("Threshold", fmt_value(settings.threshold) or "none"),
            ("Largest allowed drop", settings.max_drop),
            ("Policy", settings.policy),
            ("Schedule", f"{settings.schedule}{'' if settings.schedule_enabled else ' (off)'}"),
            ("Open alerts", card.health.open_alerts),
        ]
        for row, (name, value) in enumerate(facts):
            self.facts.addWidget(muted(name), row, 0)
            label = QLabel(str(value))
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts.addWidget(label, row, 1)

    def _sparkline(self, values: tuple[float, ...], threshold: float | None) -> None:
        self.spark_empty.setVisible(not values)
        self.sparkline.setVisible(bool(values))
        self.sparkline.set_values(list(values), threshold)
