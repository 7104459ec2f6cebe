"""Monitoring: the production metric over time (threshold, deployments), estimated vs
actual, drift; the schedule editor. Plots update live as results land in the registry."""

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.cards import FeatureDistribution
from app.core.domain.entities import Deployment, MonitorResult, PolicyDecision, Project, Schedule
from app.core.domain.measurements import FeatureDrift
from app.core.domain.results import ModelMark
from app.frontends.gui.common import (
    ACCENT_COLOR,
    BAD_COLOR,
    DRIFT_COLOR,
    GOOD_COLOR,
    MUTED_COLOR,
    WARNING_COLOR,
    Record,
    RecordsModel,
    fmt_value,
    heading,
    local_time,
    make_table,
    muted,
)
from app.frontends.gui.panels.base import Panel, action_button
from app.frontends.gui.panels.traffic import TrafficSection, read_traffic

if TYPE_CHECKING:
    from app.frontends.gui.plots import GrowingSeries

FLUSH_MS = 100  # plots redraw at most 10 times a second, only when new points arrived
REVEAL_MS = 1  # on a visit, the plots paint one per event-loop turn, this far apart (a real timer: timers run between)
MARKER_LABEL_GAP = 0.04  # labels of markers closer than this share of the x span are staggered
LABEL_HIGH, LABEL_LOW = 0.97, 0.82  # a marker label's place on its line (1 = the top of the plot)
MARKER_SECONDS = 5.0  # on a date axis, a training and the deployment that followed within seconds share a line
X_AXES = {"batch": "batches in order of arrival", "time": "ingest time (date axis)"}
METRIC_TITLES = {"batch": "Production metric, batch by batch", "time": "Production metric by ingest time"}
PLOT_HEIGHT = 175  # room for a rotated axis title ("share of features") beside the plot's own title and x axis
UNITS = [("seconds", "s", 1), ("minutes", "m", 60), ("hours", "h", 3600), ("days", "d", 86400)]


MEASURED, ESTIMATED, DRIFT = ACCENT_COLOR, WARNING_COLOR, DRIFT_COLOR
LIMIT, DEPLOYED, TRAINED = BAD_COLOR, GOOD_COLOR, MUTED_COLOR
# the retraining policy's decisions, marked on the metric curve: legend text, symbol (plot, legend), colour
DECISION_MARKS = {
    "retrain": ("challenger promoted or waiting", "t1", "▲", GOOD_COLOR),
    "rejected": ("challenger rejected", "x", "✕", BAD_COLOR),
    "restored": ("earlier version restored", "d", "◆", "#8e44ad"),
    "held": ("retrain held (back-off, budget)", "s", "■", MUTED_COLOR),
    "hold_ended": ("hold ended", "+", "+", MUTED_COLOR),
}
DECISION_MARK_SIZES = {"hold_ended": 21}
DECISION_GROUPS = {"retrained_deployed": "retrain", "retrained_waiting": "retrain", "retrained_rejected": "rejected",
                   "restored": "restored", "restore_waiting": "restored", "held": "held", "hold_ended": "hold_ended"}


def batch_position(result: MonitorResult) -> float:
    """Where a monitoring result stands on the x axis: its batch (dataset version), in arrival order."""
    return float(result.dataset_version or 0)


def epoch_seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def ingest_time_position(result: MonitorResult, arrivals: dict[int, str]) -> float:
    """Where a monitoring result stands on a date axis: when its batch was ingested (the
    monitoring time for a result whose batch is unknown)."""
    version = result.dataset_version
    arrived = arrivals.get(version) if version is not None else None
    return epoch_seconds(arrived or result.at)


def lifecycle_markers(arrivals: dict[int, str], models: list[ModelMark], deployments: list[Deployment],
                      by_time: bool = False) -> list[tuple[float, str, bool]]:
    """(x, label, is_deployment) for each training and deployment, placed just after the last batch
    that had arrived when it happened, or (by_time) at the time it happened on a date axis, where a
    version deployed within seconds of its training shares the training's place; events at the
    same place share one line and one label."""
    ordered = sorted(arrivals.items())
    trained_at = {model.version: epoch_seconds(model.created_at) for model in models}

    def place(iso: str, version: int | None = None) -> float:
        if by_time:
            moment = epoch_seconds(iso)
            training = None if version is None else trained_at.get(version)
            return training if training is not None and 0 <= moment - training <= MARKER_SECONDS else moment
        arrived = [number for number, at in ordered if at <= iso]
        return (arrived[-1] if arrived else 0) + 0.5

    places: dict[float, list[str]] = {}
    deployed_at: set[float] = set()
    for model in models:
        places.setdefault(place(model.created_at), []).append(f"v{model.version} trained")
    for deployment in deployments:
        position = place(deployment.deployed_at, deployment.version)
        places.setdefault(position, []).append(f"rolled back to v{deployment.version}" if deployment.is_rollback
                                               else f"v{deployment.version} deployed")
        deployed_at.add(position)
    return [(position, " · ".join(_compact(texts)), position in deployed_at) for position, texts in sorted(places.items())]


def marker_label(text: str) -> str:
    """The short label of a marker: the version it put in production ("v3", "↩v3" for a rollback),
    else the version(s) trained there."""
    deployed = re.findall(r"v(\d+) deployed", text)
    rolled_back = re.findall(r"rolled back to v(\d+)", text)
    if rolled_back:
        return f"↩v{rolled_back[-1]}"
    if deployed:
        return f"v{deployed[-1]}"
    return ",".join(re.findall(r"v\d+", text))


def label_heights(places: list[float], markers: int | None = None) -> list[float]:
    """Where each marker's label stands on its line (1 = the top): the first `markers` of places
    are the markers (sorted), the rest the data's x positions, which give the span. A label close
    to the one before it (within MARKER_LABEL_GAP of the span) goes lower, so they never overlap."""
    count = len(places) if markers is None else markers
    span = (max(places) - min(places)) if places else 0.0
    heights: list[float] = []
    for index in range(count):
        close = index > 0 and span > 0 and places[index] - places[index - 1] < MARKER_LABEL_GAP * span
        heights.append(LABEL_LOW if close and heights[-1] == LABEL_HIGH else LABEL_HIGH)
    return heights


def _compact(texts: list[str]) -> list[str]:
    """["v2 trained", "v3 trained", "v3 deployed"] -> ["v2, v3 trained", "v3 deployed"]."""
    trained = [t.split()[0] for t in texts if t.endswith(" trained")]
    others = [t for t in texts if not t.endswith(" trained")]
    return ([f"{', '.join(trained)} trained"] if trained else []) + others


def point_tip(result: MonitorResult, metric: str, arrivals: dict[int, str]) -> str:
    batch = result.dataset_version
    lines = [f"batch v{batch}, arrived {local_time(arrivals.get(batch))}" if batch else "batch"]
    if result.value is not None:
        lines.append(f"{metric} {fmt_value(result.value)} on {result.labelled_rows} labelled rows")
    if result.estimated_value is not None:
        lines.append(f"estimated {metric} {fmt_value(result.estimated_value)} (label-free)")
    lines.append(f"scored by model v{result.model_version} at {local_time(result.at)}")
    return "\n".join(lines)


def feature_drift(result: MonitorResult | None) -> dict[str, FeatureDrift]:
    """Per-feature drift of one monitoring result (none: no result yet), by feature name."""
    return {} if result is None else result.details.features


def table_row(result: MonitorResult) -> Record:
    """A result as a row of the Batches table: its columns, without the details behind them."""
    return {"id": result.id, "at": result.at, "model_version": result.model_version,
            "dataset_version": result.dataset_version, "rows": result.rows, "labelled_rows": result.labelled_rows,
            "value": result.value, "estimated_value": result.estimated_value, "drift_share": result.drift_share,
            "drifted_features": result.drifted_features}


def plotted_value(result: MonitorResult) -> float | None:
    """Where a result stands on the metric plot: its measured value, else its label-free estimate."""
    return result.value if result.value is not None else result.estimated_value


def legend(entries: list[tuple[str, str, str]]) -> str:
    """Entries wrap between each other, never inside one (a glyph stays with its text)."""
    return "&nbsp;&nbsp; ".join(f"<span style='white-space:nowrap'><span style='color:{color}'><b>{glyph}</b></span>"
                                f"&nbsp;{text}</span>" for color, glyph, text in entries)


def metric_legend(threshold, has_markers: bool) -> str:
    entries = [(MEASURED, "●", "measured (labelled batches)"), (ESTIMATED, "▲", "estimated (label-free)")]
    if threshold is not None:
        entries.append((LIMIT, "- -", f"threshold {threshold:.3f}"))
    if has_markers:
        entries += [(TRAINED, "┆", "trained"), (DEPLOYED, "┆", "deployed")]
    return legend(entries)


def decision_legend(groups: set[str]) -> str:
    entries = [(color, glyph, text) for group, (text, _, glyph, color) in DECISION_MARKS.items() if group in groups]
    return ("&nbsp;&nbsp; " + legend(entries)) if entries else ""


def legend_label() -> QLabel:
    """A legend outside the plot, so it never covers a point."""
    label = QLabel()
    label.setObjectName("plotLegend")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def with_legend(plot, legend_widget: QLabel) -> QWidget:
    return legend_column(plot, legend_widget)[0]


def legend_column(plot, legend_widget: QLabel) -> tuple[QWidget, QVBoxLayout]:
    """The plot over its legend, and the column that holds them (to add more under the plot)."""
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    layout.addWidget(plot, 1)
    layout.addWidget(legend_widget)
    return holder, layout


def scrolling_page(content: QWidget, name: str) -> QScrollArea:
    """content at its full width, scrolled vertically when the window is too short for its plots."""
    page = QScrollArea()
    page.setObjectName(name)
    page.setWidgetResizable(True)
    page.setFrameShape(QFrame.Shape.NoFrame)
    page.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    page.setWidget(content)
    return page


class MonitoringPanel(Panel):
    title = "Monitoring"
    x_axis_changed = Signal(str)  # the user chose the metric plot's x axis (the window remembers it)

    def __init__(self, controller, actions: dict, parent=None):
        super().__init__(controller, parent)
        self.named_actions = actions
        self._last_id = 0
        self.results: list[MonitorResult] = []
        self._read: dict | None = None  # what the last read returned (Panel.read on a worker)
        self._waiting_decorations: list[Callable[[], None]] = []  # plots still to decorate, one per turn
        self.distribution: FeatureDistribution | None = None  # the feature distribution on show
        self.plots_built = False
        self.series: dict[str, GrowingSeries] = {}
        self._deployment_lines: list = []  # pyqtgraph InfiniteLines (pyqtgraph is imported later)
        self._threshold_line: Any = None  # a pyqtgraph InfiniteLine once a threshold is drawn
        self._decorated: tuple | None = None  # what the decorations were last drawn for
        self.x_axis = "batch"  # the metric plot's x axis: "batch" (arrival order) or "time" (ingest time)
        self.arrivals: dict[int, str] = {}  # dataset version -> ingest time, as of the last redraw
        self.flush_timer = QTimer(self)
        self.flush_timer.setInterval(FLUSH_MS)
        self.flush_timer.timeout.connect(self.flush)
        self._unrevealed: list = []  # plots whose painting waits for their turn (see _hold_plot_paints)
        self.reveal_timer = QTimer(self)
        self.reveal_timer.setInterval(REVEAL_MS)
        self.reveal_timer.timeout.connect(self._reveal_next_plot)
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
        # the plots keep the height their axis titles and bar labels need; a short window scrolls them
        self.plot_scroll = scrolling_page(self.plot_area, "monitoringPlots")
        self.splitter.addWidget(self.plot_scroll)

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
        # batches and served traffic share the lower area, one tab each: the page needs no more height
        self.traffic = TrafficSection(controller.plots_ready)
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setObjectName("monitoringLowerTabs")
        self.lower_tabs.addTab(self.table, "Batches")
        self.lower_tabs.addTab(scrolling_page(self.traffic, "trafficPage"), "Served traffic")
        lower_layout.addWidget(self.lower_tabs, 3)
        lower_layout.addWidget(self._schedule_box(), 2)
        self.splitter.addWidget(lower)
        self.splitter.setSizes([460, 220])
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

    def _load_schedule(self, project: Project, schedule: Schedule | None) -> None:
        if schedule is None:
            return
        self.schedule_enabled.setChecked(bool(schedule.enabled))
        if schedule.kind == "cron":
            self.schedule_kind.setCurrentIndex(1)
            self.cron_text.setText(schedule.expression)
        else:
            self.schedule_kind.setCurrentIndex(0)
            seconds = int(float(schedule.expression))
            unit = max(i for i, u in enumerate(UNITS) if seconds % u[2] == 0)
            self.interval_unit.setCurrentIndex(unit)
            self.interval_value.setValue(seconds // UNITS[unit][2])
        parts = []
        if schedule.last_run_at:
            parts.append(f"last run {local_time(schedule.last_run_at)}")
        next_time = self.controller.next_run_times().get(project.name)
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

    def _build_metric_plot(self) -> None:
        from app.frontends.gui.plots import GrowingSeries, pg, plot_widget

        if hasattr(self, "metric_plot"):
            return
        lib = pg()
        self.metric_plot = plot_widget(height=PLOT_HEIGHT)
        self._use_x_axis(self.x_axis)
        actual = self.metric_plot.plot(pen={"color": MEASURED, "width": 2}, symbol="o", symbolSize=6,
                                       symbolBrush=MEASURED)
        estimated = self.metric_plot.plot(pen={"color": ESTIMATED, "width": 2, "style": Qt.PenStyle.DashLine},
                                          symbol="t", symbolSize=6, symbolBrush=ESTIMATED)
        self.decision_marks = {group: self.metric_plot.plot(pen=None, symbol=symbol, symbolSize=DECISION_MARK_SIZES.get(group, 11),
                                                            symbolBrush=color, symbolPen=color)
                               for group, (_, symbol, _, color) in DECISION_MARKS.items()}
        # a hold ends at the cycle of the next decision, on its point: a larger cross behind that decision's mark
        self.decision_marks["hold_ended"].setZValue(-1)
        self.metric_tips = lib.ScatterPlotItem(size=12, pen=None, brush=(0, 0, 0, 0), hoverable=True,
                                               tip=lambda x, y, data: data)
        self.metric_plot.getPlotItem().getViewBox().addItem(self.metric_tips)  # not a curve: no downsampling
        self.metric_plot.getPlotItem().setClipToView(True)
        self.metric_legend = legend_label()
        self.x_axis_choice = QComboBox()
        self.x_axis_choice.setObjectName("metricXAxis")
        for key, text in X_AXES.items():
            self.x_axis_choice.addItem(text, key)
        self.x_axis_choice.setCurrentIndex(self.x_axis_choice.findData(self.x_axis))
        self.x_axis_choice.setToolTip("The production metric against the batches in the order they arrived (each "
                                      "batch its own place, even when many were scored at once), or against the time "
                                      "each batch was ingested, on a date axis")
        self.x_axis_choice.currentIndexChanged.connect(lambda _: self.set_x_axis(self.x_axis_choice.currentData()))
        self.metric_plot.hide()
        self.series.update(actual=GrowingSeries(actual), estimated=GrowingSeries(estimated))

    def _build_drift_plots(self) -> None:
        from app.frontends.gui.plots import GrowingSeries, pg, plot_widget

        if hasattr(self, "drift_plot"):
            return
        lib = pg()
        self.drift_plot = plot_widget(title="Share of features drifted", batch_axis=True, height=PLOT_HEIGHT)
        self.drift_plot.setLabel("bottom", "batch (dataset version)")
        self.drift_plot.setLabel("left", "share of features")
        drift = self.drift_plot.plot(pen={"color": DRIFT, "width": 2}, symbol="o", symbolSize=5, symbolBrush=DRIFT)
        self.drift_limit = lib.InfiniteLine(angle=0, pen={"color": LIMIT, "style": Qt.PenStyle.DashLine})
        self.drift_plot.addItem(self.drift_limit)
        self.drift_plot.setYRange(0, 1)
        self.drift_plot.getPlotItem().setClipToView(True)
        self.drift_legend = legend_label()
        self.feature_plot = plot_widget(title="PSI per feature", height=PLOT_HEIGHT)
        self.feature_plot.setToolTip("Population Stability Index (PSI) of each feature in the latest batch against "
                                     "the training reference: below 0.1 stable, 0.1–0.2 moderate, above 0.2 drifted")
        self.feature_legend = legend_label()
        self.distribution_plot = plot_widget(title="Distribution", height=PLOT_HEIGHT)
        self.distribution_plot.setLabel("left", "share of rows")
        self.feature_choice = QComboBox()
        self.feature_choice.setObjectName("distributionFeature")
        self.feature_choice.setToolTip("The feature whose distribution is shown: the training reference of the "
                                       "production model against the latest batch")
        self.feature_choice.currentTextChanged.connect(self.show_distribution)
        self.distribution_legend = legend_label()
        self.drift_plot.hide()
        self.feature_plot.hide()
        self.distribution_plot.hide()
        self.series["drift"] = GrowingSeries(drift)

    def _place_plots(self) -> None:
        self._build_metric_plot()
        self._build_drift_plots()
        self._hold_plot_paints()
        metric, metric_column = legend_column(self.metric_plot, self.metric_legend)
        legend_row = QHBoxLayout()
        metric_column.removeWidget(self.metric_legend)
        legend_row.addWidget(self.metric_legend, 1)
        legend_row.addWidget(QLabel("x axis:"))
        legend_row.addWidget(self.x_axis_choice, 0, Qt.AlignmentFlag.AlignTop)
        metric_column.addLayout(legend_row)
        self.plot_grid.addWidget(metric, 0, 0, 1, 3)
        self.plot_grid.addWidget(with_legend(self.drift_plot, self.drift_legend), 1, 0)
        self.plot_grid.addWidget(with_legend(self.feature_plot, self.feature_legend), 1, 1)
        distribution, distribution_column = legend_column(self.distribution_plot, self.distribution_legend)
        distribution_column.insertWidget(1, self.feature_choice)  # under the plot, above its legend
        self.plot_grid.addWidget(distribution, 1, 2)
        for column in range(3):
            self.plot_grid.setColumnStretch(column, 1)
        self.plot_grid.setRowStretch(0, 5)
        self.plot_grid.setRowStretch(1, 4)
        self.plots_built = True
        if self.isVisible():
            self.reveal_timer.start()
        self._show_plots(bool(self.results))
        if self.results:
            self._decorated = None
            self._replay()

    def _show_plots(self, has_results: bool) -> None:
        # the plots stay visible once built (empty axes until the first cycle): showing them
        # later would lay out and render three plots in the middle of live updates
        self.empty.setVisible(not has_results)
        for plot in (self.metric_plot, self.drift_plot, self.feature_plot, self.distribution_plot):
            plot.setVisible(True)

    def _replay(self) -> None:
        """Results read before the plots existed go into the buffers now."""
        for series in self.series.values():
            series.clear()
        self._append(self.results)
        if self._read is not None:
            self._decorations(self._read)

    def _append(self, rows: list[MonitorResult]) -> None:
        for row in rows:
            self._append_metric(row)
            if row.drift_share is not None:
                self.series["drift"].append(batch_position(row), row.drift_share)
        self._tips_dirty = True

    def clear(self) -> None:
        self._decorated = None
        self._waiting_decorations = []  # drawn for the project on show before
        self._read = None
        self.arrivals = {}
        self._last_id = 0
        self.results = []
        self.table_model.set_rows([])
        self.traffic.clear()
        for series in self.series.values():
            series.clear()
        if self.plots_built:
            from app.frontends.gui.plots import clear_plot

            clear_plot(self.feature_plot)
            self.feature_legend.setText("")
            self._clear_distribution()
            self.metric_tips.clear()
            self._remove_markers()

    def read(self, keel, name: str) -> dict:
        """On a worker: the results after the last one on show (all of them for a project not on show
        yet), and what the plots mark: trainings, deployments, policy decisions, batch arrivals."""
        after_id = self._last_id if self._shown_project == name else 0
        return {"project": keel.project(name), "schedule": keel.schedule(name), "after_id": after_id,
                "results": keel.monitor_results(name, after_id=after_id),
                "deployments": keel.deployments(name), "models": keel.model_timeline(name),
                "decisions": keel.policy_decisions(name),
                "arrivals": {d.version: d.created_at for d in keel.dataset_versions(name)},
                "traffic": read_traffic(keel, name)}

    def show_data(self, data: dict) -> None:
        project = data["project"]
        self._read = data
        self._load_schedule(project, data["schedule"])
        if data["after_id"] > self._last_id:  # cleared since the read began: the earlier results are missing
            self._stale = True
        new = [r for r in data["results"] if r.id > self._last_id]
        if new and not self._stale:
            self.results.extend(new)
            self._last_id = new[-1].id
            if self.plots_built:  # otherwise the idle-time build puts them in (_replay)
                self._append(new)
            self.table_model.set_rows([table_row(result) for result in reversed(self.results)])
            self.table.resizeColumnsToContents()
        if self.plots_built:
            self._show_plots(bool(self.results))
            self._decorations(data, in_turns=True)  # the points reach the curves on the next flush tick
        self.traffic.show_traffic(data["traffic"])
        measured = [r for r in self.results if r.value is not None]
        self.summary.setText(f"{len(self.results)} cycle(s) recorded" +
                             (f"; last {project.metric} {fmt_value(measured[-1].value)}" if measured else ""))

    def _decorations(self, data: dict, in_turns: bool = False) -> None:
        """Threshold, drift limit, training and deployment markers, point tooltips, per-feature drift.
        in_turns: one plot per event-loop turn (a refresh while the window is in use): each plot's
        queued scene update costs 8-11 ms of this thread, and Qt runs the queued ones together, so
        three plots at once stopped the window for 50 ms. flush() finishes what is still waiting."""
        project, deployments, models = data["project"], data["deployments"], data["models"]
        settings = project.settings
        decisions = data["decisions"]
        signature = (project.name, len(self.results), len(deployments), len(models), len(decisions),
                     settings.threshold, settings.drift_share, project.metric)
        if signature == self._decorated:
            return  # nothing new to draw
        self._decorated = signature
        arrivals = data["arrivals"]
        if self.x_axis == "time" and arrivals != self.arrivals:
            self.arrivals = arrivals
            self._replay_metric()  # points appended before their batch's ingest time was known move to it
        self.arrivals = arrivals

        def metric_plot() -> None:
            self._threshold(settings.threshold)
            self.metric_plot.setLabel("left", project.metric)
            self._markers(lifecycle_markers(arrivals, models, deployments, by_time=self.x_axis == "time"))
            self._tips(project.metric, arrivals)
            shown = self._decision_marks(decisions)
            self.metric_legend.setText(metric_legend(settings.threshold, bool(models or deployments))
                                       + decision_legend(shown))

        def drift_plot() -> None:
            self.drift_limit.setPos(settings.drift_share)
            self.drift_legend.setText(legend([(DRIFT, "●", "share drifted"),
                                              (LIMIT, "- -", f"alert above {settings.drift_share:.2f}")]))

        self._waiting_decorations = [metric_plot, drift_plot, self._feature_drift]
        if in_turns:
            self._next_decoration()
        else:
            self._finish_decorations()

    def _next_decoration(self) -> None:
        if self._waiting_decorations:
            self._waiting_decorations.pop(0)()
        if self._waiting_decorations:
            QTimer.singleShot(0, self, self._next_decoration)

    def _finish_decorations(self) -> None:
        while self._waiting_decorations:
            self._waiting_decorations.pop(0)()

    def metric_x(self, result: MonitorResult) -> float:
        return ingest_time_position(result, self.arrivals) if self.x_axis == "time" else batch_position(result)

    def prefer_x_axis(self, kind: str) -> None:
        """The x axis the user chose last time (an unknown value keeps batch order)."""
        if kind in X_AXES:
            if self.plots_built:
                self.set_x_axis(kind)
            else:
                self.x_axis = kind  # the plot is built with it

    def set_x_axis(self, kind: str) -> None:
        """The metric plot against batches in arrival order ("batch") or ingest time on a date axis ("time")."""
        if kind == self.x_axis or kind not in X_AXES:
            return
        self.x_axis = kind
        if self.x_axis_choice.currentData() != kind:
            self.x_axis_choice.setCurrentIndex(self.x_axis_choice.findData(kind))
        self._use_x_axis(kind)
        self.x_axis_changed.emit(kind)
        self._replay_metric()
        self._decorated = None
        if self._read is not None:
            self._decorations(self._read)
        self.metric_plot.getPlotItem().getViewBox().enableAutoRange()

    def _use_x_axis(self, kind: str) -> None:
        from app.frontends.gui.plot_items import apply_palette
        from app.frontends.gui.plots import cache_static_parts, date_axis, metric_batch_axis

        plot = self.metric_plot
        axis = date_axis() if kind == "time" else metric_batch_axis()
        axis.enableAutoSIPrefix(False)
        plot.getPlotItem().setAxisItems({"bottom": axis})
        plot.setLabel("bottom", "ingest time of the batch" if kind == "time"
                      else "batch (dataset version, in order of arrival)")
        plot.setTitle(METRIC_TITLES[kind])
        apply_palette(plot)
        cache_static_parts(plot)

    def _replay_metric(self) -> None:
        for key in ("actual", "estimated"):
            self.series[key].clear()
        for row in self.results:
            self._append_metric(row)
        self.flush()

    def _append_metric(self, row: MonitorResult) -> None:
        """A result's measured and estimated metric, where the metric plot's axis puts it."""
        x = self.metric_x(row)
        if row.value is not None:
            self.series["actual"].append(x, row.value)
        if row.estimated_value is not None:
            self.series["estimated"].append(x, row.estimated_value)

    def _threshold(self, threshold) -> None:
        from app.frontends.gui.plots import pg

        if threshold is None:
            if self._threshold_line is not None:
                self._threshold_line.hide()
            return
        if self._threshold_line is None:
            self._threshold_line = pg().InfiniteLine(angle=0, pen={"color": LIMIT, "style": Qt.PenStyle.DashLine})
            self.metric_plot.addItem(self._threshold_line)
        self._threshold_line.setPos(threshold)
        self._threshold_line.show()

    def _remove_markers(self) -> None:
        for line in self._deployment_lines:
            self.metric_plot.removeItem(line)
        self._deployment_lines = []

    def _markers(self, markers: list[tuple[float, str, bool]]) -> None:
        """A vertical line between the batch a model was trained or deployed after and the next one,
        labelled with the version it put in production (or trained); the full story in its tooltip."""
        from app.frontends.gui.plots import pg

        self._remove_markers()
        heights = label_heights([position for position, _, _ in markers] + [self.metric_x(r) for r in self.results],
                                len(markers))
        for (position, text, deployed), height in zip(markers, heights):
            colour = DEPLOYED if deployed else TRAINED
            pen = {"color": colour, "style": Qt.PenStyle.DotLine if deployed else Qt.PenStyle.DashDotLine}
            # the label stands right of its line, or left of it when the line is right of the view's middle:
            # a marker near the right edge keeps its label inside the plot, at any zoom
            line = pg().InfiniteLine(pos=position, angle=90, pen=pen, label=marker_label(text),
                                     labelOpts={"position": height, "anchors": [(0, 0), (1, 0)], "color": colour})
            line.setToolTip(text)
            self.metric_plot.addItem(line)
            self._deployment_lines.append(line)

    def _decision_marks(self, decisions: list[PolicyDecision]) -> set[str]:
        """Each policy decision at the batch it followed: on the measured curve, or on the estimated one
        for a batch without labels (on the last measured batch, it hid that batch's own decision);
        -> the groups shown."""
        plotted = [(r.at, self.metric_x(r), y) for r in self.results if (y := plotted_value(r)) is not None]
        points: dict[str, tuple[list, list]] = {group: ([], []) for group in DECISION_MARKS}
        for event in decisions:
            before = [(x, y) for at, x, y in plotted if at <= event.at]
            group = DECISION_GROUPS.get(event.decision or "")
            if group and before:
                points[group][0].append(before[-1][0])
                points[group][1].append(before[-1][1])
        for group, (xs, ys) in points.items():
            self.decision_marks[group].setData(xs, ys)
        return {group for group, (xs, _) in points.items() if xs}

    def _tips(self, metric: str, arrivals: dict[int, str]) -> None:
        points = [(self.metric_x(r), y, r) for r in self.results if (y := plotted_value(r)) is not None]
        self.metric_tips.setData(x=[p[0] for p in points], y=[p[1] for p in points],
                                 data=[point_tip(r, metric, arrivals) for _, _, r in points])

    def _feature_drift(self) -> None:
        from app.frontends.gui.plots import bar_chart, bar_chart_height, clear_plot

        latest = self.results[-1] if self.results else None
        per_feature = feature_drift(latest)
        if latest is None or not per_feature:
            clear_plot(self.feature_plot)
            self.feature_plot.setTitle("PSI per feature")
            self.feature_legend.setText("")
            return
        names = list(per_feature)
        bar_chart(self.feature_plot, names, [per_feature[n].psi for n in names], color=DRIFT, value_label="PSI")
        self.feature_plot.setMinimumHeight(max(PLOT_HEIGHT, bar_chart_height(self.feature_plot, len(names))))
        drifted = [n for n in names if per_feature[n].drifted]
        if drifted:
            from app.frontends.gui.plots import bar_chart_highlight

            bar_chart_highlight(self.feature_plot, names, [per_feature[n].psi for n in names], drifted, LIMIT)
        batch = latest.dataset_version
        self.feature_plot.setTitle("PSI per feature")
        by_drift = sorted(names, key=lambda n: -per_feature[n].psi)
        if [self.feature_choice.itemText(i) for i in range(self.feature_choice.count())] != by_drift:
            chosen = self.feature_choice.currentText()
            self.feature_choice.blockSignals(True)
            self.feature_choice.clear()
            self.feature_choice.addItems(by_drift)  # the most drifted first, shown unless the user chose
            self.feature_choice.setCurrentText(chosen if chosen in by_drift else by_drift[0])
            self.feature_choice.blockSignals(False)
        self.show_distribution(self.feature_choice.currentText())
        self.feature_legend.setText(legend([(DRIFT, "▬", f"v{batch} vs reference" if batch else "latest vs reference"),
                                            (LIMIT, "▬", f"drifted ({len(drifted)})")]))
        self.feature_legend.setToolTip(f"PSI of each feature in {f'batch v{batch}' if batch else 'the latest batch'} "
                                       "against the training reference; in red the features flagged as drifted")

    def _clear_distribution(self) -> None:
        from app.frontends.gui.plots import clear_plot

        clear_plot(self.distribution_plot)
        self.distribution_plot.setTitle("Distribution")
        self.distribution_legend.setText("")
        self.distribution = None
        self.feature_choice.blockSignals(True)
        self.feature_choice.clear()
        self.feature_choice.blockSignals(False)

    def show_distribution(self, feature: str) -> None:
        """Reference vs latest batch for one feature, read off the GUI thread."""
        if not feature or self.keel is None or not self.project:
            return
        name, keel = self.project, self.keel

        def read(job):
            return keel.insights.feature_distribution(name, feature)

        def show(distribution):
            if name == self.project and feature == self.feature_choice.currentText() and self.plots_built:
                self.draw_distribution(distribution)

        self.controller.run(f"{name}/distribution", "read", f"Reading the distribution of {feature}", read,
                            project=name, on_done=show, on_error=lambda message, details: None)

    def draw_distribution(self, distribution: FeatureDistribution) -> None:
        from app.frontends.gui.plots import clear_plot, pg

        self.distribution = distribution
        lib = pg()
        plot = self.distribution_plot
        clear_plot(plot)
        if distribution.kind == "numeric":
            edges = list(distribution.edges)
            plot.addItem(lib.PlotCurveItem(edges, list(distribution.reference), stepMode="center", fillLevel=0,
                                           brush=(45, 108, 223, 70), pen={"color": MEASURED, "width": 1.5}))
            plot.addItem(lib.PlotCurveItem(edges, list(distribution.batch), stepMode="center",
                                           pen={"color": ESTIMATED, "width": 2}))
            plot.setLabel("bottom", distribution.feature)
        else:
            categories = distribution.categories
            positions = list(range(len(categories)))
            plot.addItem(lib.BarGraphItem(x=[p - 0.2 for p in positions], height=list(distribution.reference),
                                          width=0.4, brush=MEASURED))
            plot.addItem(lib.BarGraphItem(x=[p + 0.2 for p in positions], height=list(distribution.batch), width=0.4,
                                          brush=ESTIMATED))
            plot.getAxis("bottom").setTicks([list(zip(positions, categories))])
            plot.setLabel("bottom", f"{distribution.feature} (category)")
        plot.setTitle(distribution.feature)  # reference vs the batch: in the legend
        self.distribution_legend.setText(legend([(MEASURED, "▬", "reference"),
                                                 (ESTIMATED, "▬", f"batch v{distribution.dataset_version}")]))
        self.distribution_legend.setToolTip(
            f"Reference: the training reference rows of v{distribution.model_version} "
            f"({distribution.reference_rows} rows); batch v{distribution.dataset_version}: "
            f"{distribution.batch_rows} rows. Shares of rows per bin (numbers) or per category.")

    def flush(self) -> None:
        for series in self.series.values():
            series.flush()
        self._finish_decorations()

    def _hold_plot_paints(self) -> None:
        """Painting a plot (its axes' ticks, its items' bounds) costs 10-25 ms of this thread; the four at
        once made one event-loop turn of 50-100 ms on a visit. Each plot keeps its place in the layout
        but paints in its own turn (_reveal_next_plot)."""
        plots = [self.metric_plot, self.drift_plot, self.feature_plot, self.distribution_plot]
        for plot in plots:
            plot.setUpdatesEnabled(False)
        self._unrevealed = plots

    def _reveal_next_plot(self) -> None:
        if self._unrevealed:
            self._unrevealed.pop(0).setUpdatesEnabled(True)  # paints it in the next turn
        if not self._unrevealed:
            self.reveal_timer.stop()

    def showEvent(self, event):
        if self.plots_built:
            self._hold_plot_paints()
        super().showEvent(event)
        self.flush_timer.start()
        if self._unrevealed:
            self.reveal_timer.start()

    def hideEvent(self, event):
        self.flush_timer.stop()
        self.reveal_timer.stop()  # the plots still held wait for the next visit
        super().hideEvent(event)

    def stop(self) -> None:
        self.flush_timer.stop()
        self.reveal_timer.stop()
