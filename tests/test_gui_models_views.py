"""Models: one selected version shows its full card; two or more are compared, each metric
across versions as a chart and the parameters side by side with the differences marked."""

from dataclasses import replace

from app.core.domain.decisions import SamplingRecord


def models_with_a_logreg_v3(qtbot, window, reason: str):
    """Trains v3 of the backlog's project on the logreg preset with C=0.3 set for the project
    -> the Models panel, shown, listing all three."""
    keel = window.controller.keel
    keel.set_project("demo-credit", {"preset": "logreg", "params": {"C": 0.3}}, replace_params=True)
    keel.train("demo-credit", reason=reason)
    window.controller.registry_changed.emit()
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.table_model.rows) == 3, timeout=10000)
    return models


def test_one_version_shows_its_full_card(qtbot, backlog_window):
    window = backlog_window
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.table_model.rows) == 2, timeout=10000)
    models.select_version(2)
    qtbot.waitUntil(lambda: models.card is not None and models.card.version == 2, timeout=20000)
    card = models.card
    keel = window.controller.keel
    assert card.sha256 == keel.load_version("demo-credit", 2).model_version.sha256
    used = [d.version for d in card.training.dataset_versions]
    assert used and used[-1] == 7 and set(used) <= set(range(1, 8))  # trained after batch v7 (adaptive window)
    assert "scikit-learn" in card.library_versions and card.parameters["preset"]
    assert card.trained_by == "user" and card.deployments and card.metrics["accuracy"] > 0.5
    text = models.compare_widget.findChild(type(models.hint), "versionCard").text()
    for shown in (card.sha256, "scikit-learn", "Deployments", "dataset versions", f"v{used[0]} ("):
        assert shown in text
    assert card.training.sample is None and "sampled" not in text  # every row fitted

    sampled = SamplingRecord(sampled_rows=1_200, of_rows=48_000, memory_budget_mb=64)
    models.show_card(replace(card, training=replace(card.training, sample=sampled)))
    cards = lambda: models.compare_widget.findChildren(type(models.hint), "versionCard")  # noqa: E731
    qtbot.waitUntil(lambda: len(cards()) == 1, timeout=5000)  # the card shown before is deleted
    assert "1,200 of 48,000 rows (training memory budget 64 MB)" in cards()[0].text()


def test_three_versions_are_compared_with_a_metric_chart_and_the_differing_parameters(qtbot, backlog_window):
    from pyqtgraph import BarGraphItem, PlotWidget
    from PySide6.QtWidgets import QTableView

    window = backlog_window
    models = models_with_a_logreg_v3(qtbot, window, "a third version")
    models.select_version(1, 2, 3)
    assert models.compare_button.isEnabled()
    models.compare_button.click()
    qtbot.waitUntil(lambda: models.comparison is not None, timeout=90_000)
    assert [e.version for e in models.comparison.versions] == [1, 2, 3]
    models.compare_widget.grab()  # painted, as the user sees it
    chart = models.compare_widget.findChild(PlotWidget, "metricsByVersion")
    assert chart is not None
    qtbot.waitUntil(chart.isVisible, timeout=10_000)  # shown in a later turn of the event loop
    assert len([i for i in chart.getPlotItem().items if isinstance(i, BarGraphItem)]) == 3
    # log_loss (lower is better, unbounded) has its own chart and value axis, beside the scores in [0, 1]
    errors = models.compare_widget.findChild(PlotWidget, "errorsByVersion")
    assert errors is not None and errors.isVisible()
    assert [name for _, name in errors.getAxis("bottom")._tickLevels[0]] == ["log_loss"]
    assert "log_loss" not in [name for _, name in chart.getAxis("bottom")._tickLevels[0]]
    assert errors.getAxis("left").labelText == "log_loss (lower is better)"
    assert chart.getAxis("left").labelText == "score (higher is better)"
    assert len([i for i in errors.getPlotItem().items if isinstance(i, BarGraphItem)]) == 3
    table = models.compare_widget.findChild(QTableView, "parametersTable")
    model = table.model()
    rows = {model.index(r, 0).data(): [model.index(r, c).data() for c in range(model.columnCount())]
            for r in range(model.rowCount())}
    assert rows["preset"][1] == "≠" and rows["preset"][4] == "logreg"
    assert all(row[1] == "" for key, row in rows.items() if row[2] == row[3] == row[4])
    metrics = models.compare_widget.findChild(QTableView, "metricsTable")
    for shown, versions in ((metrics, range(1, 4)), (table, range(2, 5))):  # v1..v3 share the width evenly
        widths = [shown.columnWidth(column) for column in versions]
        assert max(widths) - min(widths) <= 1 and min(widths) > shown.columnWidth(0) / 2, widths
    assert window.errors == []


def shown_card(qtbot, models, version: int) -> str:
    models.select_version(version)
    qtbot.waitUntil(lambda: models.card is not None and models.card.version == version, timeout=20000)
    cards = lambda: models.compare_widget.findChildren(type(models.hint), "versionCard")  # noqa: E731
    qtbot.waitUntil(lambda: len(cards()) == 1, timeout=5000)  # the card shown before is deleted
    return cards()[0].text()


def test_the_card_marks_the_parameters_set_for_the_project_over_the_preset(qtbot, backlog_window, store):
    window = backlog_window
    keel = window.controller.keel
    models = models_with_a_logreg_v3(qtbot, window, "a version with an override")

    text = shown_card(qtbot, models, 3)
    assert models.card.parameter_overrides == {"C": 0.3}
    assert "Model: preset " in text and " + 1 override<" in text
    assert "<b><i>C</i></b>" in text and "<b>0.3000</b> (override)" in text
    assert text.count("(override)") == 1  # max_iter and the rest: the preset's defaults, not highlighted
    assert "max_iter" in text

    text = shown_card(qtbot, models, 2)
    assert models.card.parameter_overrides == {} and "no overrides" in text and "(override)" not in text

    run_id = store(keel).model_version(keel.project("demo-credit").id, 1).run_id
    store(keel).conn.execute("DELETE FROM params WHERE run_id = ? AND key = 'overrides'", (run_id,))  # as if never logged
    text = shown_card(qtbot, models, 1)
    assert models.card.parameter_overrides is None and "was not recorded for this version" in text
