"""The Monitoring tab's served-traffic section: request volume over time, and the traffic
windows (and unlabelled batches with IDs) with their label coverage and measured metric,
which fills in when labels arrive (Keel.traffic; labels are added from File > Add labels…)."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QVBoxLayout, QWidget

from app.core.domain.traffic import BatchCoverage, MonitoredWindow, TrafficOverview, coverage
from app.frontends.gui.common import ACCENT_COLOR, Record, RecordsModel, fmt_value, local_time, make_table, muted

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.plot_items import PageFriendlyPlotWidget

MINUTE_BARS_FOR_SECONDS = 3 * 3600  # traffic spanning longer than this is shown per hour
HOUR_BARS_FOR_SECONDS = 10 * 86400  # ...and longer than this, per day
MINIMUM_HEIGHT = 60
VOLUME_PLOT_HEIGHT = 130  # its title, a date axis and a readable "rows": the tab scrolls when shorter
BUCKET_SUFFIX = {"minute": ":00", "hour": ":00:00", "day": "T00:00:00"}


def bucket_start(at: str, bucket: str) -> float:
    """'2026-11-30T07:12' (a minute bucket of ISO UTC times) -> seconds since 1970."""
    return datetime.fromisoformat(at + BUCKET_SUFFIX[bucket]).replace(tzinfo=UTC).timestamp()


def table_row(row: MonitoredWindow | BatchCoverage) -> Record:
    """A traffic window (or a batch awaiting labels) as a row of the table: its columns' values."""
    window = row if isinstance(row, MonitoredWindow) else None
    return {"window": f"traffic {row.id}" if isinstance(row, MonitoredWindow) else f"data v{row.dataset_version}",
            "label_coverage": row.label_coverage, "value": row.value, "rows": row.rows,
            "labelled_rows": row.labelled_rows, "estimated_value": window.estimated_value if window else None,
            "prediction_drift": window.prediction_drift if window else None, "ended_at": row.ended_at,
            "drifted_features": ", ".join(window.drifted_features) if window else ""}


def read_traffic(keel: "Keel", project: str) -> TrafficOverview:
    """Keel.traffic.overview with request volume in bars of a minute, or of an hour or a day when the traffic
    spans longer. Runs on a worker (the Monitoring tab's read)."""
    overview = keel.traffic.overview(project, "minute")
    if overview.volume:
        span = bucket_start(overview.volume[-1].at, "minute") - bucket_start(overview.volume[0].at, "minute")
        if span > MINUTE_BARS_FOR_SECONDS:
            overview = keel.traffic.overview(project, "hour" if span <= HOUR_BARS_FOR_SECONDS else "day")
    return overview


class TrafficSection(QGroupBox):
    """plots_ready: the controller's signal that pyqtgraph is imported (on a worker); the volume
    plot is drawn only after it, never by importing pyqtgraph here while the worker does."""

    def __init__(self, plots_ready: SignalInstance, parent: QWidget | None = None) -> None:
        super().__init__("Served traffic and late labels", parent)
        self.setObjectName("trafficSection")
        self.overview: TrafficOverview | None = None
        self.volume_plot: PageFriendlyPlotWidget | None = None
        self.plots_allowed = False
        plots_ready.connect(self.allow_plots)
        # a tab of the Monitoring page's lower area, which scrolls it when the window is short
        self.setMinimumHeight(MINIMUM_HEIGHT)
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        self.summary = muted("No traffic recorded yet: the scoring server and `keel predict` record what they "
                             "score when the project's prediction log is on (the default with an ID column).")
        self.summary.setObjectName("trafficSummary")
        left.addWidget(self.summary)
        self.plot_holder = QWidget()
        self.plot_layout = QVBoxLayout(self.plot_holder)
        self.plot_layout.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.plot_holder, 1)
        layout.addLayout(left, 2)
        self.table_model = RecordsModel([
            ("Window", "window"),
            ("Coverage", lambda r: f"{r['label_coverage']:.0%}"),
            ("Measured", "value"), ("Rows", "rows"), ("Labelled", "labelled_rows"),
            ("Estimated", "estimated_value"), ("Prediction PSI", "prediction_drift"),
            ("Until", lambda r: local_time(r["ended_at"])),
            ("Drifted features", "drifted_features"),
        ])
        self.table, _ = make_table(self.table_model)
        self.table.setObjectName("trafficTable")
        layout.addWidget(self.table, 3)

    def show_traffic(self, overview: TrafficOverview) -> None:
        """What read_traffic returned (on a worker), shown."""
        self.overview = overview
        newest_first: list[MonitoredWindow | BatchCoverage] = [*reversed(overview.windows), *reversed(overview.batches)]
        self.table_model.set_rows([table_row(row) for row in newest_first])
        self.table.resizeColumnsToContents()
        scored = sum(bar.rows for bar in overview.volume)
        labelled = sum(w.labelled_rows for w in overview.windows)
        windowed = sum(w.rows for w in overview.windows)
        if overview.windows or scored:
            self.summary.setText(
                f"{scored:,} row(s) in the prediction log; {len(overview.windows)} traffic window(s), "
                f"{labelled:,} of their {windowed:,} rows labelled ({coverage(labelled, windowed):.0%}). "
                f"Last measured: {self._last_measured(overview)}")
        self._draw_volume(overview)

    @staticmethod
    def _last_measured(overview: TrafficOverview) -> str:
        measured = [w for w in overview.windows if w.value is not None]
        if not measured:
            return "none yet (waiting for labels)"
        last = measured[-1]
        return f"{last.metric} {fmt_value(last.value)} on traffic window {last.id}"

    def allow_plots(self) -> None:
        self.plots_allowed = True
        if self.overview is not None:
            self._draw_volume(self.overview)

    def _draw_volume(self, overview: TrafficOverview) -> None:
        if not overview.volume or not self.plots_allowed:
            return
        from app.frontends.gui.plots import pg, plot_widget

        if self.volume_plot is None:
            self.volume_plot = plot_widget("Rows scored", left="rows", height=VOLUME_PLOT_HEIGHT)
            self.volume_plot.setAxisItems({"bottom": pg().DateAxisItem(orientation="bottom")})
            self.volume_plot.setObjectName("trafficVolumePlot")
            self.plot_layout.addWidget(self.volume_plot)
        bucket = overview.volume_bucket
        xs = [bucket_start(bar.at, bucket) for bar in overview.volume]
        width = {"minute": 60, "hour": 3600, "day": 86400}[bucket] * 0.8
        self.volume_plot.clear()
        self.volume_plot.addItem(pg().BarGraphItem(x=xs, height=[bar.rows for bar in overview.volume],
                                                   width=width, brush=ACCENT_COLOR))

    def clear(self) -> None:
        self.overview = None
        self.table_model.set_rows([])
        if self.volume_plot is not None:
            self.volume_plot.clear()
