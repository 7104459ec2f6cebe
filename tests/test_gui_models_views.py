"""Models: one selected version shows its full card; two or more are compared, each metric
across versions as a chart and the parameters side by side with the differences marked."""

from gui_fixtures import backlog_template, backlog_window, demo_template, gui_settings, leak_guard  # noqa: F401


def test_one_version_shows_its_full_card(qtbot, backlog_window):
    window = backlog_window
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.model.rows) == 2, timeout=10000)
    models.select_version(2)
    qtbot.waitUntil(lambda: models.card is not None and models.card["version"] == 2, timeout=20000)
    card = models.card
    keel = window.controller.keel
    assert card["sha256"] == keel.status("demo-credit")["versions"][1].get("sha256", card["sha256"])
    used = [d["version"] for d in card["training"]["dataset_versions"]]
    assert used and used[-1] == 7 and set(used) <= set(range(1, 8))  # trained after batch v7 (adaptive window)
    assert "scikit-learn" in card["library_versions"] and card["parameters"]["preset"]
    assert card["trained_by"] == "user" and card["deployments"] and card["metrics"]["accuracy"] > 0.5
    text = models.compare_widget.findChild(type(models.hint), "versionCard").text()
    for shown in (card["sha256"], "scikit-learn", "Deployments", "dataset versions", f"v{used[0]} ("):
        assert shown in text


def test_three_versions_are_compared_with_a_metric_chart_and_the_differing_parameters(qtbot, backlog_window):
    from pyqtgraph import BarGraphItem, PlotWidget
    from PySide6.QtWidgets import QTableView

    window = backlog_window
    keel = window.controller.keel
    keel.set_project("demo-credit", {"preset": "logreg", "params": {"C": 0.3}}, replace_params=True)
    keel.train("demo-credit", reason="a third version")
    window.controller.registry_changed.emit()
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.model.rows) == 3, timeout=10000)
    models.select_version(1, 2, 3)
    assert models.compare_button.isEnabled()
    models.compare_button.click()
    qtbot.waitUntil(lambda: models.comparison is not None, timeout=90_000)
    assert [e["version"] for e in models.comparison["versions"]] == [1, 2, 3]
    chart = models.compare_widget.findChild(PlotWidget, "metricsByVersion")
    assert chart is not None
    assert len([i for i in chart.getPlotItem().items if isinstance(i, BarGraphItem)]) == 3
    table = models.compare_widget.findChild(QTableView, "parametersTable")
    model = table.model()
    rows = {model.index(r, 0).data(): [model.index(r, c).data() for c in range(model.columnCount())]
            for r in range(model.rowCount())}
    assert rows["preset"][1] == "≠" and rows["preset"][4] == "logreg"
    assert all(row[1] == "" for key, row in rows.items() if row[2] == row[3] == row[4])
    assert window.errors == []
