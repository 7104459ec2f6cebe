"""What the Monitoring tab draws, on a project whose backlog of batches was scored in one
monitoring run: points at their batch (arrival order), trainings and deployments marked at
the batch where they happened, every axis titled, the drift statistic named, legends
outside the plots, and nothing of another project left on screen after a switch; the batch
details (the Batches table, each point's tooltip, the PSI per feature) as the registry stored them."""

import json
import sqlite3

import pytest
from PySide6.QtCore import Qt

from app.frontends.gui.common import fmt_value, local_time

DEMO_FEATURES = ("income", "debt_ratio", "tenure_months", "has_mortgage")


def shown_monitoring(qtbot, window):
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.plots_built and len(panel.results) > 0, timeout=20000)
    panel.flush()
    return panel


def curve_points(series) -> list[tuple[float, float]]:
    x, y = series.curve.getData()
    return [] if x is None else list(zip(x.tolist(), y.tolist()))


def test_each_batch_of_a_backlog_stands_at_its_own_place(qtbot, backlog_window):
    panel = shown_monitoring(qtbot, backlog_window)
    results = [r for r in panel.results if r.value is not None]
    assert len(results) == 9
    points = curve_points(panel.series["actual"])
    assert [x for x, _ in points] == [float(r.dataset_version) for r in results] == [float(v) for v in range(2, 11)]
    assert [y for _, y in points] == pytest.approx([r.value for r in results])
    axis = panel.metric_plot.getAxis("bottom")
    assert "dataset version" in axis.labelText
    ticks = [value for _, values in axis.tickValues(1.5, 10.5, 600) for value in values]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert axis.tickStrings([2.0, 3.0], 1, 1) == ["v2", "v3"]
    tips = panel.metric_tips.data["data"]
    assert len(tips) == 9 and "batch v2, arrived" in tips[0] and "model v1" in tips[0]


def test_training_and_deployment_are_marked_at_the_batch_where_they_happened(qtbot, backlog_window):
    panel = shown_monitoring(qtbot, backlog_window)
    markers = {round(line.value(), 1): line.toolTip() for line in panel._deployment_lines}
    assert markers[1.5] == "v1 trained · v1 deployed"  # before the first batch of the stream
    assert markers[7.5] == "v2 trained · v2 deployed"  # after batch v7, the last of the first run
    labels = {round(line.value(), 1): line.label.textItem.toPlainText() for line in panel._deployment_lines}
    assert labels[7.5] == "v2"  # short on the plot: the version put in production
    assert all(x < 10.6 for x in markers)


def test_every_axis_is_titled_and_the_drift_statistic_named(qtbot, backlog_window):
    panel = shown_monitoring(qtbot, backlog_window)
    for plot in (panel.metric_plot, panel.drift_plot, panel.feature_plot):
        for side in ("left", "bottom"):
            axis = plot.getAxis(side)
            if side == "left" and plot is panel.feature_plot:
                assert axis._tickLevels, "the feature names label the bars"
            else:
                assert axis.labelText, f"{plot.getPlotItem().titleLabel.text}: {side} axis has no title"
    assert panel.metric_plot.getAxis("left").labelText == "accuracy"
    assert "PSI" in panel.feature_plot.getAxis("bottom").labelText
    assert "PSI" in panel.feature_plot.getPlotItem().titleLabel.text and "drifted (" in panel.feature_legend.text()
    assert "threshold" in panel.metric_legend.text() and "deployed" in panel.metric_legend.text()


def test_legends_and_labels_stay_off_the_data(qtbot, backlog_window):
    from pyqtgraph import LegendItem

    panel = shown_monitoring(qtbot, backlog_window)
    for plot in (panel.metric_plot, panel.drift_plot, panel.feature_plot):
        assert not [item for item in plot.scene().items() if isinstance(item, LegendItem)]
    for line in (panel._threshold_line, panel.drift_limit):  # named in the legend: no marker can cut a label
        assert getattr(line, "label", None) is None


def test_a_new_project_shows_nothing_of_the_previous_one(qtbot, backlog_window, tmp_path):
    from PySide6.QtWidgets import QAbstractItemView, QLabel

    window = backlog_window
    panel = shown_monitoring(qtbot, window)
    assert "income" in str(panel.feature_plot.getAxis("left")._tickLevels)
    data = tmp_path / "sensors.csv"
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame({"temperature": rng.normal(20, 5, 300), "pressure": rng.normal(1000, 20, 300),
                  "failure": rng.integers(0, 2, 300)}).to_csv(data, index=False)
    window.controller.keel.create_project("sensors", data, "failure", "classification", {})
    window.controller.registry_changed.emit()
    window.controller.set_project("sensors")
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        tab = window.tabs.widget(index)
        qtbot.waitUntil(lambda tab=tab: tab.up_to_date, timeout=5000)
        shown = [label.text() for label in tab.findChildren(QLabel)]
        for view in tab.findChildren(QAbstractItemView):
            model = view.model()
            shown += [str(model.index(r, c).data()) for r in range(model.rowCount()) for c in range(model.columnCount())]
        leftovers = [text for text in shown if any(name in text for name in DEMO_FEATURES)]
        assert not leftovers, f"{tab.title} still shows the demo project: {leftovers[:3]}"
    panel.flush()
    assert panel.results == [] and curve_points(panel.series["actual"]) == []
    assert panel.feature_plot.getAxis("left")._tickLevels is None
    assert not panel.feature_plot.getPlotItem().listDataItems()
    assert panel._deployment_lines == []
    assert window.errors == []


def test_a_feature_distribution_shows_how_it_drifted(qtbot, backlog_window):
    panel = shown_monitoring(qtbot, backlog_window)
    qtbot.waitUntil(lambda: panel.distribution is not None, timeout=20000)
    shown = panel.distribution
    latest = panel.results[-1]
    psi = {name: stats.psi for name, stats in latest.details.features.items()}
    assert shown.feature == max(psi, key=psi.get) == panel.feature_choice.currentText()  # the most drifted first
    assert shown.dataset_version == latest.dataset_version == 10
    assert shown.kind == "numeric" and len(shown.edges) == len(shown.reference) + 1
    assert sum(shown.reference) == pytest.approx(1 - shown.missing.reference, abs=1e-9)
    assert shown.feature in panel.distribution_plot.getPlotItem().titleLabel.text
    assert "training reference rows of v2" in panel.distribution_legend.toolTip()
    panel.feature_choice.setCurrentText("region")  # a category: bars per category
    qtbot.waitUntil(lambda: panel.distribution.feature == "region", timeout=20000)
    assert panel.distribution.kind == "categorical"
    ticks = [label for level in panel.distribution_plot.getAxis("bottom")._tickLevels for _, label in level]
    assert set(ticks) == {"north", "south", "east", "west"}
    assert panel.distribution_plot.getAxis("bottom").labelText == "region (category)"


def test_the_metric_plot_switches_to_ingest_time_on_a_date_axis_and_back(qtbot, backlog_window):
    from datetime import datetime

    from pyqtgraph import DateAxisItem

    panel = shown_monitoring(qtbot, backlog_window)
    qtbot.waitUntil(lambda: panel.metric_plot.isVisible() and panel.x_axis_choice.isVisible(), timeout=5000)
    keel = backlog_window.controller.keel
    ingested = {d.version: datetime.fromisoformat(d.created_at).timestamp()
                for d in keel.dataset_versions("demo-credit")}
    results = [r for r in panel.results if r.value is not None]

    panel.x_axis_choice.setCurrentIndex(panel.x_axis_choice.findData("time"))
    panel.flush()
    axis = panel.metric_plot.getAxis("bottom")
    assert isinstance(axis, DateAxisItem) and "ingest time" in axis.labelText
    assert [x for x, _ in curve_points(panel.series["actual"])] == pytest.approx(
        [ingested[r.dataset_version] for r in results])
    panel.metric_plot.grab()  # paints the date axis (it measures its labels while painting)
    spacing, values = axis.tickValues(min(ingested.values()) - 60, max(ingested.values()) + 60, 600)[-1]
    assert all(":" in text for text in axis.tickStrings(values, 1, spacing))  # times of day, not batches
    markers = {line.toolTip(): line.value() for line in panel._deployment_lines}

    def at(event: str) -> float:
        return next(x for text, x in markers.items() if event in text.split(" · "))

    assert ingested[7] < at("v2 trained") <= at("v2 deployed") < ingested[8]  # between the two runs, on the clock
    assert at("v1 deployed") < ingested[2]
    tips = panel.metric_tips.data
    assert list(tips["x"]) == pytest.approx([ingested[r.dataset_version] for r in results])

    panel.x_axis_choice.setCurrentIndex(panel.x_axis_choice.findData("batch"))
    panel.flush()
    axis = panel.metric_plot.getAxis("bottom")
    assert not isinstance(axis, DateAxisItem) and axis.tickStrings([2.0], 1, 1) == ["v2"]
    assert [x for x, _ in curve_points(panel.series["actual"])] == [float(r.dataset_version) for r in results]
    assert {round(line.value(), 1) for line in panel._deployment_lines} >= {1.5, 7.5}


def test_labels_of_markers_close_together_are_staggered_so_they_never_overlap():
    from app.frontends.gui.panels.monitoring import LABEL_HIGH, LABEL_LOW, label_heights

    data = [float(x) for x in range(2, 101)]  # a span of ~100 batches
    assert label_heights([1.5, 1.6, 2.5, 50.5] + data, 4) == [LABEL_HIGH, LABEL_LOW, LABEL_HIGH, LABEL_HIGH]
    assert label_heights([1.5, 50.5] + data, 2) == [LABEL_HIGH, LABEL_HIGH]  # far apart: both at the top


def test_the_x_axis_choice_is_remembered_across_project_switches_and_restarts(qtbot, backlog_window):
    from pyqtgraph import DateAxisItem

    from app.frontends.gui.application import settings_store
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.main_window import MainWindow

    window, controller = backlog_window, backlog_window.controller
    panel = shown_monitoring(qtbot, window)
    panel.x_axis_choice.setCurrentIndex(panel.x_axis_choice.findData("time"))
    controller.set_project("")
    controller.set_project("demo-credit")
    qtbot.waitUntil(lambda: panel.shows("demo-credit") and panel.up_to_date and len(panel.results) == 9, timeout=20000)
    panel.flush()
    assert panel.x_axis == "time" and panel.x_axis_choice.currentData() == "time"
    assert isinstance(panel.metric_plot.getAxis("bottom"), DateAxisItem)

    restarted = MainWindow(Controller(None, start_scheduler=False), settings_store())  # a new window, as after a restart
    qtbot.addWidget(restarted)
    restarted.show()
    again = restarted.panels["monitoring"]
    again.prepare_plots()
    try:
        qtbot.waitUntil(lambda: again.plots_built, timeout=10000)
        assert again.x_axis == "time" and again.x_axis_choice.currentData() == "time"
        assert isinstance(again.metric_plot.getAxis("bottom"), DateAxisItem)
        assert "ingest time" in again.metric_plot.getAxis("bottom").labelText
    finally:
        restarted.close()


def test_a_marker_at_the_right_edge_keeps_its_label_inside_the_plot(qtbot, backlog_window):
    window = backlog_window
    window.controller.keel.rollback("demo-credit")  # after the latest batch: its marker is the rightmost x
    window.controller.registry_changed.emit()
    panel = shown_monitoring(qtbot, window)
    qtbot.waitUntil(lambda: any("↩v1" in line.label.toPlainText() for line in panel._deployment_lines)
                    and panel.up_to_date, timeout=20000)
    panel.metric_plot.grab()  # laid out and painted as on screen
    view = panel.metric_plot.getPlotItem().getViewBox().sceneBoundingRect()
    rightmost = max(panel._deployment_lines, key=lambda line: line.value())
    assert "↩v1" in rightmost.label.toPlainText()
    for line in panel._deployment_lines:
        label = line.label.sceneBoundingRect()
        assert view.left() <= label.left() and label.right() <= view.right(), (line.label.toPlainText(), label, view)


# --------------------------------------------------------------------------- the batch details, against what was stored
STORED = ("SELECT r.at, r.rows, r.labelled_rows, r.value, r.estimated_value, r.drift_share, r.drifted_features_json, "
          "r.details_json, m.version AS model_version, d.version AS dataset_version, d.created_at AS arrived "
          "FROM monitor_results r JOIN model_versions m ON m.id = r.model_version_id "
          "LEFT JOIN dataset_versions d ON d.id = r.dataset_version_id ORDER BY r.id")


def stored_results(window) -> list[sqlite3.Row]:
    connection = sqlite3.connect(f"file:{window.controller.keel.root / 'registry.db'}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(STORED).fetchall()
    finally:
        connection.close()


def shown_table(panel) -> list[list[str]]:
    model = panel.table_model
    return [[model.data(model.index(row, column)) for column in range(model.columnCount())]
            for row in range(model.rowCount())]


def test_the_batches_table_the_point_tips_and_the_drift_per_feature_show_what_each_cycle_stored(qtbot,
                                                                                                 backlog_window):
    panel = shown_monitoring(qtbot, backlog_window)
    stored = stored_results(backlog_window)
    assert len(stored) == 9
    headers = [panel.table_model.headerData(c, Qt.Orientation.Horizontal) for c in range(panel.table_model.columnCount())]
    assert headers == ["When", "Model", "Data", "Rows", "Labelled", "Value", "Estimated", "Drift share",
                       "Drifted features"]
    assert shown_table(panel) == [
        [local_time(r["at"]), f"v{r['model_version']}", f"v{r['dataset_version']}", str(r["rows"]),
         str(r["labelled_rows"]), fmt_value(r["value"]), fmt_value(r["estimated_value"]), fmt_value(r["drift_share"]),
         ", ".join(json.loads(r["drifted_features_json"]))] for r in reversed(stored)]  # newest first
    assert any(json.loads(r["drifted_features_json"]) for r in stored)
    assert panel.metric_tips.data["data"].tolist() == [
        f"batch v{r['dataset_version']}, arrived {local_time(r['arrived'])}\n"
        f"accuracy {fmt_value(r['value'])} on {r['labelled_rows']} labelled rows\n"
        f"estimated accuracy {fmt_value(r['estimated_value'])} (label-free)\n"
        f"scored by model v{r['model_version']} at {local_time(r['at'])}" for r in stored]
    assert panel.summary.text() == f"9 cycle(s) recorded; last accuracy {fmt_value(stored[-1]['value'])}"

    # the latest batch's drift per feature
    features = json.loads(stored[-1]["details_json"])["features"]
    psi = {name: stats["psi"] for name, stats in features.items()}
    drifted = [name for name, stats in features.items() if stats["drifted"]]
    assert drifted and len(drifted) < len(psi)
    ascending = sorted(psi, key=psi.get)
    [ticks] = panel.feature_plot.getAxis("left")._tickLevels
    assert [label for _, label in ticks] == ascending  # the largest bar on top
    bars, highlighted = bar_items(panel.feature_plot)  # every bar, then the drifted ones again in red
    assert bars.opts["width"].tolist() == pytest.approx([psi[name] for name in ascending])
    assert list(highlighted.opts["width"]) == pytest.approx([psi[name] for name in ascending if name in drifted])
    assert [panel.feature_choice.itemText(i) for i in range(panel.feature_choice.count())] == sorted(
        psi, key=lambda name: -psi[name])
    assert panel.feature_choice.currentText() == max(psi, key=psi.get)
    assert f"drifted ({len(drifted)})" in panel.feature_legend.text() and "v10 vs reference" in panel.feature_legend.text()
    assert backlog_window.errors == []


def bar_items(plot) -> list:
    from pyqtgraph import BarGraphItem

    return [item for item in plot.getPlotItem().items if isinstance(item, BarGraphItem)]
