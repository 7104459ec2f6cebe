"""Monitoring: the production metric over time (threshold, deployments), estimated vs
actual, drift; the schedule editor. Plots update live as results land in the registry."""

from datetime import datetime

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.frontends.gui.common import (
    ACCENT_COLOR,
    BAD_COLOR,
    DRIFT_COLOR,
    GOOD_COLOR,
    WARNING_COLOR,
    RecordsModel,
    fmt_value,
    heading,
    local_time,
    make_table,
    muted,
)
from app.frontends.gui.panels.base import Panel, action_button
from app.frontends.gui.panels.traffic import TrafficSection

FLUSH_MS = 100  # plots redraw at most 10 times a second, only when new points arrived
UNITS = [("seconds", "s", 1), ("minutes", "m", 60), ("hours", "h", 3600), ("days", "d", 86400)]


# the retraining policy's decisions, marked on the metric curve: legend text, symbol, colour
DECISION_MARKS = {
    "retrain": ("challenger promoted or waiting", "t1", GOOD_COLOR),
    "rejected": ("challenger rejected", "x", BAD_COLOR),
    "restored": ("earlier version restored", "d", "#8e44ad"),
    "held": ("retrain held (back-off, budget)", "s", "#8a8a8a"),
}
DECISION_GROUPS = {"retrained_deployed": "retrain", "retrained_waiting": "retrain", "retrained_rejected": "rejected",
                   "restored": "restored", "restore_waiting": "restored", "held": "held"}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def feature_drift_scores(results: list[dict]) -> tuple[str, dict[str, float]]:
    """Per-feature drift of the latest result when the cycle recorded scores, else how often
    each feature was flagged as drifted over the results shown."""
    if results:
        details = results[-1].get("details") or {}
        for key in ("features", "feature_drift", "drift"):
            block = details.get(key)
            if isinstance(block, dict) and block:
                scores = {}
                for name, value in block.items():
                    if isinstance(value, (int, float)):
                        scores[name] = float(value)
                    elif isinstance(value, dict):
                        for stat in ("score", "psi", "wasserstein", "jensen_shannon", "effect"):
                            if isinstance(value.get(stat), (int, float)):
                                scores[name] = float(value[stat])
                                break
                if scores:
                    return "drift score of the latest batch", scores
    counts: dict[str, float] = {}
    for row in results:
        for name in row.get("drifted_features") or []:
            counts[name] = counts.get(name, 0) + 1
    return f"times flagged as drifted in {len(results)} cycle(s)", counts


class MonitoringPanel(Panel):
    title = "Monitoring"

    def __init__(self, controller, actions: dict, parent=None):
        super().__init__(controller, parent)
        self.named_actions = actions
        self._shown_project = None
        self._last_id = 0
        self.results: list[dict] = []
        self.plots_built = False
        self.series = {}
        self._deployment_lines = []
        self._threshold_line = None
        self.flush_timer = QTimer(self)
        self.flush_timer.setInterval(FLUSH_MS)
        self.flush_timer.timeout.connect(self.flush)
        controller.plots_ready.connect(self.prepare_plots)

        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(heading("Monitoring"))
        self.summary = muted()
        top.addWidget(self.summary, 1)
        top.addWidget(action_button(actions["monitor"], primary=True))
        top.addWidget(action_button(actions["demo_batch"]))
        layout.addLayout(top)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("monitoringSplitter")
        self.plot_area = QWidget()
        self.plot_grid = QGridLayout(self.plot_area)
        self.plot_grid.setContentsMargins(0, 0, 0, 0)
        self.empty = muted("No monitoring results yet. Results appear here live as monitoring cycles run.")
        self.plot_grid.addWidget(self.empty, 0, 0)
        self.splitter.addWidget(self.plot_area)

        lower = QWidget()
        lower_layout = QHBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        self.table_model = RecordsModel([
            ("When", lambda r: local_time(r["at"])), ("Model", lambda r: f"v{r['model_version']}"),
            ("Data", lambda r: f"v{r['dataset_version']}" if r.get("dataset_version") else ""),
            ("Rows", "rows"), ("Labelled", "labelled_rows"), ("Value", "value"), ("Estimated", "estimated_value"),
            ("Drift share", "drift_share"), ("Drifted features", lambda r: ", ".join(r.get("drifted_features") or [])),
        ])
        self.table, _ = make_table(self.table_model)
        lower_layout.addWidget(self.table, 3)
        lower_layout.addWidget(self._schedule_box(), 2)
        self.splitter.addWidget(lower)
        self.traffic = TrafficSection(controller.plots_ready)
        self.splitter.addWidget(self.traffic)
        self.splitter.setSizes([400, 200, 200])
        layout.addWidget(self.splitter, 1)

    # ------------------------------------------------------------------ schedule editor
    def _schedule_box(self) -> QGroupBox:
        box = QGroupBox("Schedule")
        form = QGridLayout(box)
        self.schedule_enabled = QCheckBox("Run monitoring on a schedule")
        self.schedule_kind = QComboBox()
        self.schedule_kind.addItems(["Every…", "Cron expression"])
        self.interval_value = QSpinBox()
        self.interval_value.setRange(1, 100_000)
        self.interval_unit = QComboBox()
        self.interval_unit.addItems([u[0] for u in UNITS])
        self.cron_text = QLineEdit()
        self.cron_text.setPlaceholderText("*/15 * * * *  (minute hour day month weekday)")
        interval = QWidget()
        interval_layout = QHBoxLayout(interval)
        interval_layout.setContentsMargins(0, 0, 0, 0)
        interval_layout.addWidget(self.interval_value)
        interval_layout.addWidget(self.interval_unit)
        self.schedule_stack = QStackedWidget()
        self.schedule_stack.addWidget(interval)
        self.schedule_stack.addWidget(self.cron_text)
        self.schedule_stack.setMaximumHeight(36)
        self.schedule_kind.currentIndexChanged.connect(self.schedule_stack.setCurrentIndex)
        self.save_schedule_button = QPushButton("Save schedule")
        self.save_schedule_button.clicked.connect(self.save_schedule)
        self.next_run = muted()
        form.addWidget(self.schedule_enabled, 0, 0, 1, 2)
        form.addWidget(self.schedule_kind, 1, 0)
        form.addWidget(self.schedule_stack, 1, 1)
        form.addWidget(self.next_run, 2, 0, 1, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_schedule_button)
        buttons.addWidget(action_button(self.named_actions["monitor"]))
        form.addLayout(buttons, 3, 0, 1, 2)
        form.setRowStretch(4, 1)
        return box

    def schedule_text(self) -> str:
        if self.schedule_kind.currentIndex() == 1:
            return f"cron {self.cron_text.text().strip()}"
        return f"every {self.interval_value.value()}{UNITS[self.interval_unit.currentIndex()][1]}"

    def save_schedule(self) -> None:
        self.controller.save_settings({"schedule": self.schedule_text(),
                                       "schedule_enabled": self.schedule_enabled.isChecked()})

    def _load_schedule(self, project: dict) -> None:
        schedule = self.keel.schedule(project["name"])
        if schedule is None:
            return
        self.schedule_enabled.setChecked(bool(schedule["enabled"]))
        if schedule["kind"] == "cron":
            self.schedule_kind.setCurrentIndex(1)
            self.cron_text.setText(schedule["expression"])
        else:
            self.schedule_kind.setCurrentIndex(0)
            seconds = int(float(schedule["expression"]))
            unit = max(i for i, u in enumerate(UNITS) if seconds % u[2] == 0)
            self.interval_unit.setCurrentIndex(unit)
            self.interval_value.setValue(seconds // UNITS[unit][2])
        parts = []
        if schedule.get("last_run_at"):
            parts.append(f"last run {local_time(schedule['last_run_at'])}")
        next_time = self.controller.next_run_times().get(project["name"])
        if next_time is not None:
            parts.append(f"next run {next_time:%Y-%m-%d %H:%M:%S}" if hasattr(next_time, "strftime") else f"next run {next_time}")
        elif self.controller.read_only:
            parts.append("read-only: the window that holds the workspace runs the schedule")
        elif self.controller.scheduler is None:
            parts.append("scheduler off in this window")
        self.next_run.setText("; ".join(parts))

    def update_buttons(self) -> None:
        self.save_schedule_button.setEnabled(self.writable())

    # ------------------------------------------------------------------ plots
    def prepare_plots(self) -> None:
        """Build the plot widgets at idle time, one per event-loop turn, so that neither the first
        visit to this tab nor the first result stalls the window."""
        steps = [self._build_metric_plot, self._build_drift_plots, self._place_plots]

        def next_step():
            if self.plots_built or not steps:
                return
            steps.pop(0)()
            if steps:
                QTimer.singleShot(0, self, next_step)

        if not self.plots_built and not getattr(self, "_preparing", False):
            self._preparing = True
            QTimer.singleShot(0, self, next_step)

    def _build_plots(self) -> None:
        for step in (self._build_metric_plot, self._build_drift_plots, self._place_plots):
            step()

    def _build_metric_plot(self) -> None:
        from app.frontends.gui.plots import GrowingSeries, plot_widget

        if hasattr(self, "metric_plot"):
            return
        self.metric_plot = plot_widget(title="Production metric over time", time_axis=True, height=220)
        self.metric_plot.addLegend(offset=(-10, 10))
        actual = self.metric_plot.plot(name="measured (labelled batches)", pen={"color": ACCENT_COLOR, "width": 2},
                                       symbol="o", symbolSize=6, symbolBrush=ACCENT_COLOR)
        estimated = self.metric_plot.plot(name="estimated (label-free)", pen={"color": WARNING_COLOR, "width": 2,
                                                                              "style": Qt.PenStyle.DashLine},
                                          symbol="t", symbolSize=6, symbolBrush=WARNING_COLOR)
        self.decision_marks = {group: self.metric_plot.plot(name=label, pen=None, symbol=symbol, symbolSize=11,
                                                            symbolBrush=color, symbolPen=color)
                               for group, (label, symbol, color) in DECISION_MARKS.items()}
        self.metric_plot.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.metric_plot.getPlotItem().setClipToView(True)
        self.metric_plot.hide()
        self.series.update(actual=GrowingSeries(actual), estimated=GrowingSeries(estimated))

    def _build_drift_plots(self) -> None:
        from app.frontends.gui.plots import GrowingSeries, pg, plot_widget

        if hasattr(self, "drift_plot"):
            return
        lib = pg()
        self.drift_plot = plot_widget(title="Share of drifted features", time_axis=True, height=160)
        drift = self.drift_plot.plot(pen={"color": DRIFT_COLOR, "width": 2}, symbol="o", symbolSize=5, symbolBrush=DRIFT_COLOR)
        self.drift_limit = lib.InfiniteLine(angle=0, pen={"color": BAD_COLOR, "style": Qt.PenStyle.DashLine},
                                            label="alert at {value:.2f}", labelOpts={"position": 0.9})
        self.drift_plot.addItem(self.drift_limit)
        self.drift_plot.setYRange(0, 1)
        self.drift_plot.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.drift_plot.getPlotItem().setClipToView(True)
        self.feature_plot = plot_widget(title="Per-feature drift", height=200)
        self.drift_plot.hide()
        self.feature_plot.hide()
        self.series["drift"] = GrowingSeries(drift)

    def _place_plots(self) -> None:
        self._build_metric_plot()
        self._build_drift_plots()
        self.plot_grid.addWidget(self.metric_plot, 0, 0, 1, 2)
        self.plot_grid.addWidget(self.drift_plot, 1, 0)
        self.plot_grid.addWidget(self.feature_plot, 1, 1)
        self.plots_built = True
        self._show_plots(bool(self.results))
        if self.results:
            self._decorated = None
            self._replay()

    def _show_plots(self, has_results: bool) -> None:
        # the plots stay visible once built (empty axes until the first cycle): showing them
        # later would lay out and render three plots in the middle of live updates
        self.empty.setVisible(not has_results)
        for plot in (self.metric_plot, self.drift_plot, self.feature_plot):
            plot.setVisible(True)

    def _replay(self) -> None:
        """Results read before the plots existed go into the buffers now."""
        for series in self.series.values():
            series.clear()
        self._append(self.results)
        if self.keel is not None and self.project:
            self._decorations(self.keel.project(self.project))

    def _append(self, rows: list[dict]) -> None:
        for row in rows:
            at = epoch(row["at"])
            if row["value"] is not None:
                self.series["actual"].append(at, row["value"])
            if row["estimated_value"] is not None:
                self.series["estimated"].append(at, row["estimated_value"])
            if row["drift_share"] is not None:
                self.series["drift"].append(at, row["drift_share"])

    def clear(self) -> None:
        self._decorated = None
        self._shown_project = None
        self._last_id = 0
        self.results = []
        self.table_model.set_rows([])
        self.traffic.clear()
        for series in self.series.values():
            series.clear()

    def refresh(self) -> None:
        project = self.keel.project(self.project)
        if self._shown_project != self.project:
            self.clear()
            self._shown_project = self.project
        self._load_schedule(project)
        new = self.keel.monitor_results(project["name"], after_id=self._last_id)
        if new:
            self.results.extend(new)
            self._last_id = new[-1]["id"]
            if not self.plots_built:
                self._build_plots()  # only if the idle-time build has not happened yet
            else:
                self._append(new)
            self.table_model.set_rows(list(reversed(self.results)))
            self.table.resizeColumnsToContents()
        if self.plots_built:
            self._show_plots(bool(self.results))
            self._decorations(project)  # the points themselves reach the curves on the next flush tick
        self.traffic.refresh(self.keel, self.project)
        measured = [r for r in self.results if r["value"] is not None]
        self.summary.setText(f"{len(self.results)} cycle(s) recorded" +
                             (f"; last {project['metric']} {fmt_value(measured[-1]['value'])}" if measured else ""))

    def _decorations(self, project: dict) -> None:
        """Threshold line, drift limit, deployment markers and per-feature drift."""
        from app.frontends.gui.plots import bar_chart, pg

        deployments = self.keel.deployments(project["name"])
        settings = project["settings"]
        decisions = self.keel.policy_decisions(project["name"])
        signature = (project["name"], len(self.results), len(deployments), len(decisions), settings.get("threshold"),
                     settings.get("drift_share"), project["metric"])
        if signature == getattr(self, "_decorated", None):
            return  # nothing new to draw
        self._decorated = signature
        lib = pg()
        threshold = settings.get("threshold")
        if threshold is not None:
            if self._threshold_line is None:
                self._threshold_line = lib.InfiniteLine(angle=0, pen={"color": BAD_COLOR, "style": Qt.PenStyle.DashLine},
                                                        label="threshold {value:.3f}", labelOpts={"position": 0.9})
                self.metric_plot.addItem(self._threshold_line)
            self._threshold_line.setPos(threshold)
            self._threshold_line.show()
        elif self._threshold_line is not None:
            self._threshold_line.hide()
        self.drift_limit.setPos(settings.get("drift_share", 0.3))
        self.metric_plot.setLabel("left", project["metric"])
        for line in self._deployment_lines:
            self.metric_plot.removeItem(line)
        self._deployment_lines = []
        for deployment in deployments:
            line = lib.InfiniteLine(pos=epoch(deployment["deployed_at"]), angle=90,
                                    pen={"color": GOOD_COLOR, "style": Qt.PenStyle.DotLine},
                                    label=f"v{deployment['version']}", labelOpts={"position": 0.92})
            self.metric_plot.addItem(line)
            self._deployment_lines.append(line)
        self._decision_marks(decisions)
        kind, scores = feature_drift_scores(self.results[-20:])
        self.feature_plot.setTitle(f"Per-feature drift ({kind})")
        if scores:
            bar_chart(self.feature_plot, list(scores), list(scores.values()), color=DRIFT_COLOR)
        else:
            self.feature_plot.clear()

    def _decision_marks(self, decisions: list[dict]) -> None:
        """Each policy decision on the measured curve, at the batch it followed."""
        measured = [(r["at"], r["value"]) for r in self.results if r["value"] is not None]
        points: dict[str, tuple[list, list]] = {group: ([], []) for group in DECISION_MARKS}
        for event in decisions:
            before = [(at, value) for at, value in measured if at <= event["at"]]
            group = DECISION_GROUPS.get(event["decision"])
            if group and before:
                points[group][0].append(epoch(before[-1][0]))
                points[group][1].append(before[-1][1])
        for group, (xs, ys) in points.items():
            self.decision_marks[group].setData(xs, ys)

    def flush(self) -> None:
        for series in self.series.values():
            series.flush()

    def showEvent(self, event):
        super().showEvent(event)
        self.flush_timer.start()

    def hideEvent(self, event):
        self.flush_timer.stop()
        super().hideEvent(event)

    def stop(self) -> None:
        self.flush_timer.stop()
