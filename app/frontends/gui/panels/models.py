"""Models: the registry, sortable, and a side-by-side comparison of two versions."""

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.cards import ComparedVersion, VersionCard, VersionComparison
from app.core.domain.results import ProjectStatus
from app.core.domain.settings import metrics_for
from app.frontends.gui import file_dialogs
from app.frontends.gui.common import (
    ACCENT_COLOR,
    BAD_COLOR,
    DRIFT_COLOR,
    GOOD_COLOR,
    MUTED_COLOR,
    WARNING_COLOR,
    Column,
    RecordsModel,
    confirm,
    fmt_value,
    heading,
    local_time,
    make_table,
    muted,
    selected_records,
)
from app.frontends.gui.panels.base import Panel, action_button

if TYPE_CHECKING:
    import pyqtgraph

    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.jobs import Job

VERSION_COLOURS = [ACCENT_COLOR, WARNING_COLOR, GOOD_COLOR, DRIFT_COLOR, BAD_COLOR, MUTED_COLOR]
ERRORS_CHART_MIN_WIDTH = 250  # its title and axis titles whole when one error metric shares a 1024-px window


class ModelsPanel(Panel[ProjectStatus]):
    title = "Models"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        self.metric_names: list[str] = []
        layout, top = self.page_layout("Model registry")
        self.deploy_button = QPushButton("Deploy selected")
        self.deploy_button.setObjectName("deploySelected")
        self.deploy_button.clicked.connect(self.deploy_selected)
        self.compare_button = QPushButton("Compare selected")
        self.compare_button.clicked.connect(self.compare_selected)
        self.archive_button = QPushButton("Archive")
        self.archive_button.clicked.connect(self.archive_selected)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_selected)
        for button in (self.deploy_button, self.compare_button, self.archive_button, self.export_button):
            top.addWidget(button)
        top.addWidget(action_button(actions["import_model"]))
        top.addWidget(action_button(actions["retrain"], primary=True))

        self.table_model = RecordsModel([])
        self.view, self.proxy = make_table(self.table_model)
        self.view.setObjectName("modelsTable")
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.hint = muted("Select one version to see its card and deploy, archive or export it; select two or more "
                          "(Ctrl+click) to compare them.")

        self.compare_area = QScrollArea()
        self.compare_area.setWidgetResizable(True)
        self.compare_widget = QWidget()
        self.compare_layout = QVBoxLayout(self.compare_widget)
        self.compare_status = muted("No comparison yet.")
        self.compare_layout.addWidget(self.compare_status)
        self.compare_layout.addStretch(1)
        self.compare_area.setWidget(self.compare_widget)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("modelsSplitter")
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(self.view)
        upper_layout.addWidget(self.hint)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(self.compare_area)
        self.splitter.setSizes([260, 420])
        layout.addWidget(self.splitter, 1)
        self.comparison: VersionComparison | None = None  # the versions compared on show
        self.card: VersionCard | None = None  # the version card on show

    # ------------------------------------------------------------------ table
    def clear(self) -> None:
        self.table_model.set_rows([])
        self.comparison = None
        self.card = None
        self._empty_comparison_area()
        self.compare_status = muted("No comparison yet.")
        self.compare_layout.addWidget(self.compare_status)
        self.compare_layout.addStretch(1)

    def _empty_comparison_area(self) -> None:
        while self.compare_layout.count():
            item = self.compare_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            layout = item.layout() if item is not None else None
            if widget is not None:
                widget.deleteLater()
            elif layout is not None:
                _delete_layout(layout)

    def read(self, keel: "Keel", project: str) -> ProjectStatus:
        return keel.status(project)

    def show_data(self, status: ProjectStatus) -> None:
        primary = status.metric
        names = [primary] + [m for m in metrics_for(status.task) if m != primary]
        extra = sorted({k for v in status.versions for k in v.metrics} - set(names))
        names += extra
        if names != self.metric_names:
            self.metric_names = names
            columns: list[Column] = [("Version", "version"), ("Created", lambda r: local_time(r["created_at"])),
                       ("In production", lambda r: "● production" if r["in_production"] else ""),
                       ("Aliases", lambda r: ", ".join(r["aliases"]))]
            columns += [metric_column(m) for m in names]
            columns += [("Archived", lambda r: "archived" if r["archived"] else ""), ("Notes", "notes")]
            self.table_model.columns = columns
        self.table_model.row_colors = lambda r: GOOD_COLOR if r["in_production"] else (MUTED_COLOR if r["archived"] else None)
        self.table_model.set_rows([version.to_json() for version in status.versions])  # a table shows named values
        if self.proxy.sortColumn() < 0:
            self.view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        shape = (tuple(names), len(status.versions))
        if shape != getattr(self, "_sized_for", None):  # sizing scans cells: only when columns or rows changed
            self._sized_for = shape
            self.view.resizeColumnsToContents()
        self.update_buttons()

    def selected(self) -> list[dict]:
        return selected_records(self.view, self.table_model)

    def select_version(self, *versions: int) -> None:
        """Select rows by version number (used by tests and by double-click flows)."""
        from PySide6.QtCore import QItemSelectionModel

        selection = self.view.selectionModel()
        selection.clearSelection()
        for row, record in enumerate(self.table_model.rows):
            if record["version"] in versions:
                index = self.proxy.mapFromSource(self.table_model.index(row, 0))
                selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)

    def update_buttons(self) -> None:
        chosen = self.selected()
        one = len(chosen) == 1
        writable = self.writable()
        self.deploy_button.setEnabled(one and writable and not chosen[0]["in_production"])
        self.compare_button.setEnabled(len(chosen) >= 2 and self.keel is not None)
        self.archive_button.setEnabled(one and writable and not chosen[0]["in_production"])
        self.archive_button.setText("Restore" if one and chosen[0]["archived"] else "Archive")
        self.export_button.setEnabled(one and self.keel is not None)

    # ------------------------------------------------------------------ actions
    def deploy_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        version = chosen[0]["version"]
        current = next((r for r in self.table_model.rows if r["in_production"]), None)
        metric = self.metric_names[0] if self.metric_names else ""
        change = (f"Production changes from v{current['version']} ({metric} {fmt_value(current['metrics'].get(metric))}) "
                  f"to v{version} ({metric} {fmt_value(chosen[0]['metrics'].get(metric))})." if current else
                  f"v{version} becomes the first production model of {self.project}.")
        if confirm(self, "Deploy", f"Deploy v{version} of {self.project}?",
                   change + " The scoring server answers with it from its next request; "
                            "you can roll back from the Deployments tab.", ok="Deploy"):
            self.controller.deploy(version)

    def archive_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.controller.archive(chosen[0]["version"], not chosen[0]["archived"])

    def export_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        version = chosen[0]["version"]
        path = file_dialogs.save_file(self, f"Export v{version}", str(Path.home() / f"{self.project}-v{version}.skops"),
                                              "skops model (*.skops)")
        if path:
            self.controller.export(version, path)

    # ------------------------------------------------------------------ one version's card
    def _selection_changed(self, *_: object) -> None:
        self.update_buttons()
        chosen = self.selected()
        if len(chosen) == 1 and self.keel is not None:
            self.read_card(chosen[0]["version"])

    def read_card(self, version: int) -> None:
        name, keel = self.project, self.keel
        if keel is None:  # the workspace is still opening
            return

        def read(job: "Job") -> VersionCard:
            return keel.insights.version_card(name, version)

        def show(card: VersionCard) -> None:
            chosen = self.selected()
            if name == self.project and len(chosen) == 1 and chosen[0]["version"] == version:
                self.show_card(card)

        self.controller.run(f"{name}/view", "read", f"Reading v{version}", read, project=name, on_done=show,
                            on_error=lambda message, details: None)

    def show_card(self, card: VersionCard) -> None:
        from app.core.domain.settings import PRESET_LABELS

        self.card = card
        self.comparison = None
        self._empty_comparison_area()
        self.compare_status = muted("")
        self.compare_layout.addWidget(self.compare_status)
        title = f"v{card.version}" + (" (imported)" if card.imported else "") + \
            (" · archived" if card.archived else "")
        self.compare_layout.addWidget(heading(title))
        params = dict(card.parameters)
        preset = params.pop("preset", None)
        training = card.training
        data = ", ".join(f"v{d.version} ({d.labelled_rows} labelled rows, {d.source})"
                         for d in training.dataset_versions) or "—"
        deployments = "<br>".join(f"{local_time(d.at)} — {'rolled back to' if d.rollback else 'deployed'} "
                                  f"by {d.by}: {d.reason or ''}" for d in card.deployments) or "never deployed"

        sample = training.sample
        sampled = ([("sampled", f"{sample.sampled_rows:,} of {sample.of_rows:,} rows (training memory budget "
                                f"{sample.memory_budget_mb:,} MB)")] if sample else [])

        def rows(pairs: Iterable[tuple[str, object]]) -> str:
            return "".join(f"<tr><td style='padding-right:12px'><i>{k}</i></td><td>{v}</td></tr>" for k, v in pairs)

        model_title, model_note, model_rows = model_section(card, PRESET_LABELS.get(preset, preset) or "—", params)
        html = (f"<p>Trained {local_time(card.created_at)} by {card.trained_by or '?'}: {card.why}</p>"
                f"<h4>Metrics (own hold-out rows)</h4><table>{rows((k, fmt_value(v)) for k, v in card.metrics.items())}</table>"
                f"<h4>{model_title}</h4><p><i>{model_note}</i></p><table>{model_rows}{rows(params.items())}</table>"
                f"<h4>Training data</h4><table>{rows([('dataset versions', data), *sampled, ('rows for training', training.train_rows), ('hold-out rows', training.test_rows), ('seed', training.seed), ('seconds', fmt_value(training.seconds, 2))])}</table>"
                f"<h4>Libraries</h4><table>{rows(card.library_versions.items())}</table>"
                f"<h4>File</h4><table>{rows([('sha256', card.sha256), ('aliases', ', '.join(card.aliases) or '—')])}</table>"
                f"<h4>Deployments</h4><p>{deployments}</p>")
        body = QLabel(html)
        body.setObjectName("versionCard")
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.compare_layout.addWidget(body)
        self.compare_layout.addStretch(1)

    # ------------------------------------------------------------------ comparison
    def compare_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) < 2:
            return
        versions = sorted(r["version"] for r in chosen)
        name, keel = self.project, self.keel
        if keel is None:  # the workspace is still opening
            return
        shown = ", ".join(f"v{v}" for v in versions)
        self.compare_status.setText(f"Comparing {shown}…")

        def work(job: "Job") -> VersionComparison:
            return keel.insights.compare_versions(name, versions, progress=job.report, cancel_event=job.cancel_event)

        self.controller.run(f"{name}/view", "compare", f"Comparing {shown}", work,
                            project=name, cancellable=True, on_done=self.show_comparison)

    def show_comparison(self, comparison: VersionComparison) -> None:
        from app.frontends.gui.plots import bar_chart, heatmap, plot_widget

        self.comparison = comparison
        self._empty_comparison_area()
        self.compare_status = muted("")
        self.compare_layout.addWidget(self.compare_status)
        entries = comparison.versions
        metric = comparison.metric
        self.compare_layout.addWidget(heading(" vs ".join(f"v{e.version}" for e in entries)))
        self.compare_layout.addWidget(muted("Metrics recorded at training, each on its own hold-out rows"))
        if len(entries) == 2:
            self.compare_layout.addWidget(self._metrics_table(entries, metric))
        else:
            self.compare_layout.addWidget(self._metrics_chart(entries))
            self.compare_layout.addWidget(self._wide_metrics_table(entries))
        self.compare_layout.addWidget(muted("Parameters (those that differ in colour)"))
        self.compare_layout.addWidget(self._parameters_table(entries))
        common = comparison.common
        if common:
            shown = ", ".join(f"v{v}" for v in common.dataset_versions)
            self.compare_layout.addWidget(muted(f"On the same {common.rows} labelled rows, which arrived after both "
                                                f"were trained (dataset {shown})"))
            if len(entries) == 2:
                self.compare_layout.addWidget(self._metrics_table(entries, metric, on_common_rows=True))
            else:
                self.compare_layout.addWidget(self._wide_metrics_table(entries, on_common_rows=True))
        else:
            self.compare_layout.addWidget(muted("No labelled data has arrived since both were trained: "
                                                "nothing to score them on side by side yet"))

        grid = QGridLayout()
        for column, entry in enumerate(entries):
            if entry.confusion is not None:
                plot = plot_widget(title=f"v{entry.version} confusion matrix", height=230)
                plot.setToolTip(f"Counts on v{entry.version}'s {entry.rows} hold-out rows")
                heatmap(plot, [list(row) for row in entry.confusion], list(entry.classes))
                grid.addWidget(plot, 0, column)
            if entry.importances:
                permutation = entry.importance_kind == "permutation"
                plot = plot_widget(title=f"v{entry.version} feature importance", height=230)
                plot.setToolTip(f"Permutation importance: how much {metric} drops when a feature's values are shuffled"
                                if permutation else "Impurity importance: each feature's share of the trees' splits")
                unit = f"drop in {metric}" if permutation else "share of splits"
                labels = list(entry.importances)
                bar_chart(plot, labels, [entry.importances[k] for k in labels], value_label=unit)
                grid.addWidget(plot, 1, column)
        holder = QWidget()
        holder.setLayout(grid)
        self.compare_layout.addWidget(holder)
        self.compare_layout.addStretch(1)


    def _metrics_chart(self, entries: tuple[ComparedVersion, ...]) -> QWidget:
        """Each metric across the versions: one group of bars per metric, one colour per version. Scores
        (higher is better, mostly within [0, 1]) and errors (lower is better, unbounded: log_loss, rmse,
        mae) are on two charts side by side, each with its own labelled value axis."""
        from app.core.domain.settings import higher_is_better

        names = sorted({m for e in entries for m, v in e.metrics.items() if _number(v) is not None})
        scores = [n for n in names if higher_is_better(n)]
        errors = [n for n in names if not higher_is_better(n)]
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        charts = QHBoxLayout()
        if scores:
            charts.addWidget(self._metric_bars(entries, scores, "Scores by version", "metricsByVersion",
                                               "score (higher is better)"), 3)
        if errors:
            unit = f"{errors[0]} (lower is better)" if len(errors) == 1 else "error (lower is better)"
            bars = self._metric_bars(entries, errors, "Errors by version", "errorsByVersion", unit)
            bars.setMinimumWidth(ERRORS_CHART_MIN_WIDTH)
            charts.addWidget(bars, max(1, len(errors)))
        layout.addLayout(charts)
        legend = QLabel("&nbsp;&nbsp;&nbsp;".join(
            f"<span style='color:{VERSION_COLOURS[index % len(VERSION_COLOURS)]}'><b>▬</b></span>&nbsp;v{entry.version}"
            for index, entry in enumerate(entries)))
        legend.setObjectName("plotLegend")
        layout.addWidget(legend)
        return holder

    def _metric_bars(self, entries: tuple[ComparedVersion, ...], names: list[str], title: str, name: str,
                     value_label: str) -> "pyqtgraph.PlotWidget":
        from app.frontends.gui.plots import pg, plot_widget

        lib = pg()
        plot = plot_widget(title=title, height=200)
        plot.setObjectName(name)
        width = 0.8 / len(entries)
        for index, entry in enumerate(entries):
            colour = VERSION_COLOURS[index % len(VERSION_COLOURS)]
            xs = [m + (index - (len(entries) - 1) / 2) * width for m in range(len(names))]
            heights = [_number(entry.metrics.get(n)) or 0.0 for n in names]
            plot.addItem(lib.BarGraphItem(x=xs, height=heights, width=width * 0.9, brush=colour))
        plot.getAxis("bottom").setTicks([list(enumerate(names))])
        plot.setLabel("bottom", "metric (own hold-out rows)")
        plot.setLabel("left", value_label)
        return plot

    def _wide_metrics_table(self, entries: tuple[ComparedVersion, ...], on_common_rows: bool = False) -> QTableView:
        def scores(entry: ComparedVersion) -> dict[str, float]:
            return (entry.common_metrics or {}) if on_common_rows else entry.metrics

        names = sorted({m for e in entries for m in scores(e)})
        table_model = RecordsModel([("Metric", "metric")] + [(f"v{e.version}", f"v{e.version}") for e in entries],
                                   self)
        table_model.set_rows([{"metric": n, **{f"v{e.version}": scores(e).get(n) for e in entries}}
                              for n in names])
        table, _ = make_table(table_model, sortable=False)
        table.setObjectName("commonMetricsTable" if on_common_rows else "metricsTable")
        table.setFixedHeight(min(200, 34 + 30 * len(names)))
        share_width_among_versions(table, range(1, 1 + len(entries)))
        return table

    def _parameters_table(self, entries: tuple[ComparedVersion, ...]) -> QTableView:
        from app.core.services.insights import differing_parameters

        differing = set(differing_parameters(entries))
        keys = sorted({k for e in entries for k in e.params}, key=lambda k: (k not in differing, k))
        table_model = RecordsModel([("Parameter", "parameter"), ("", "differs")] +
                                   [(f"v{e.version}", f"v{e.version}") for e in entries], self)
        table_model.row_colors = lambda r: BAD_COLOR if r["differs"] else None
        table_model.set_rows([{"parameter": k, "differs": "≠" if k in differing else "",
                               **{f"v{e.version}": fmt_value(e.params.get(k)) for e in entries}}
                              for k in keys])
        table, _ = make_table(table_model, sortable=False)
        table.setObjectName("parametersTable")
        table.setFixedHeight(min(260, 34 + 30 * len(keys)))
        share_width_among_versions(table, range(2, 2 + len(entries)))
        return table

    def _metrics_table(self, entries: tuple[ComparedVersion, ...], metric: str,
                       on_common_rows: bool = False) -> QTableView:
        from app.core.services.insights import metric_comparison

        rows = metric_comparison(entries, metric, on_common_rows=on_common_rows)
        table_model = RecordsModel([("Metric", "metric"), (f"v{entries[0].version}", "a"),
                                    (f"v{entries[1].version}", "b"), ("Change", "delta"), ("", "verdict")], self)
        table_model.set_rows([row.to_json() for row in rows])  # a table shows named values
        table, _ = make_table(table_model, sortable=False)
        table.setFixedHeight(min(200, 34 + 30 * len(rows)))
        share_width_among_versions(table, range(1, 3))
        return table


def metric_column(metric: str) -> Column:
    """A column of one metric of a version's document."""
    return metric, lambda record: record["metrics"].get(metric)


def share_width_among_versions(table: QTableView, version_columns: range) -> None:
    """The version columns share the table's width evenly; the others (metric or parameter name,
    change, verdict) are as wide as their text. Stretching only the last column left one version
    wide and the others narrow."""
    header = table.horizontalHeader()
    header.setStretchLastSection(False)
    for column in range(header.count()):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if column in version_columns
                                    else QHeaderView.ResizeMode.ResizeToContents)


def _number(value: object) -> float | None:
    return value if isinstance(value, (int, float)) and value == value else None  # NaN and None: no bar


def model_section(card: VersionCard, preset_label: str, params: dict[str, Any]) -> tuple[str, str, str]:
    """The card's model heading, a note on where its parameters came from, and the rows of the
    parameters set for the project (highlighted); those rows are taken out of params."""
    overrides = card.parameter_overrides
    if card.imported:
        return "Model: imported", "Trained outside Keel: the parameters are as read from the model file.", ""
    if overrides is None:
        return (f"Model: preset {preset_label}", "Which parameters were set for the project and which are the "
                "preset's defaults was not recorded for this version.", "")
    if not overrides:
        return f"Model: preset {preset_label}, no overrides", "Every parameter is the preset's default.", ""
    highlighted = "".join(
        f"<tr><td style='padding-right:12px; color:{ACCENT_COLOR}'><b><i>{key}</i></b></td>"
        f"<td style='color:{ACCENT_COLOR}'><b>{fmt_value(value)}</b> (override)</td></tr>"
        for key, value in sorted(overrides.items()))
    for key in overrides:
        params.pop(key, None)
    count = len(overrides)
    return (f"Model: preset {preset_label} + {count} override{'s' if count > 1 else ''}",
            "In colour: set for the project (Project settings > Preset parameters); the rest are the preset's "
            "defaults.", highlighted)


def _delete_layout(layout: QLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item is None:  # not reached while count() > 0
            break
        widget, inner = item.widget(), item.layout()
        if widget is not None:
            widget.deleteLater()
        elif inner is not None:
            _delete_layout(inner)
