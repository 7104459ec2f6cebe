"""The Monitoring page's batch details as the window shows them, against what the registry stored
(read here with plain SQL): the Batches table, each point's tooltip, the summary line, and the PSI
per feature of the latest batch with the drifted features in red and the most drifted chosen first."""

import json
import sqlite3

import pytest
from PySide6.QtCore import Qt
from test_gui_monitoring_plots import shown_monitoring

from app.frontends.gui.common import fmt_value, local_time

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
