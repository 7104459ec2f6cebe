"""What the pages built on the insights service show stays as it was: the project list's line and
tip (health), the Overview's production card (labels, the project facts, the sparkline), the Models
page's version card and two- and three-version comparisons (tables), and the Monitoring page's
feature distribution (legend, tip, the plotted shares), on the backlog workspace. Times, hashes and
fit seconds are replaced by placeholders; the rest is pinned in
tests/fixtures/insights_pages.json (to regenerate it, only when a page deliberately changes:
KEEL_PIN_DOCUMENTS=write pytest tests/test_insights_pages_pinned.py, and review the diff)."""

import json
import os
import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTableView

GOLDEN = Path(__file__).parent / "fixtures" / "insights_pages.json"
PLACEHOLDERS = [
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?"), "<time>"),
    (re.compile(r"(<i>seconds</i></td><td>)[0-9.]+"), r"\1<seconds>"),
]


def normalised(value):
    if isinstance(value, str):
        for pattern, placeholder in PLACEHOLDERS:
            value = pattern.sub(placeholder, value)
        return value
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, (list, tuple)):
        return [normalised(item) for item in value]
    if isinstance(value, dict):
        return {key: normalised(item) for key, item in value.items()}
    return value


def table_cells(table: QTableView) -> list[list]:
    model = table.model()
    header = [model.headerData(c, Qt.Orientation.Horizontal)
              for c in range(model.columnCount())]
    return [header] + [[model.index(r, c).data() for c in range(model.columnCount())] for r in range(model.rowCount())]


def project_list(window) -> list:
    items = [window.project_list.item(i) for i in range(window.project_list.count())]
    return [{"text": item.text(), "tip": item.toolTip()} for item in items]


def overview(qtbot, window) -> dict:
    panel = window.panels["overview"]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.up_to_date, timeout=10000)
    labels = {name: getattr(panel, name).text() for name in
              ("title_label", "subtitle", "state_label", "version_label", "deployed_label", "metric_label",
               "reasons_label")}
    facts = [panel.facts.itemAt(i).widget().text() for i in range(panel.facts.count())]
    return {"labels": labels, "facts": facts, "sparkline": list(panel.sparkline.values),
            "sparkline_shown": not panel.sparkline.isHidden()}


def version_card(qtbot, models, version: int) -> str:
    models.select_version(version)
    cards = lambda: models.compare_widget.findChildren(QLabel, "versionCard")  # noqa: E731
    qtbot.waitUntil(lambda: models.card is not None and models.card.version == version and len(cards()) == 1,
                    timeout=20000)
    return cards()[0].text()


def comparison(qtbot, models, *versions: int) -> dict:
    models.select_version(*versions)
    models.comparison = None
    models.compare_button.click()
    qtbot.waitUntil(lambda: models.comparison is not None, timeout=90_000)
    shown = [models.compare_layout.itemAt(i).widget() for i in range(models.compare_layout.count())]
    # what the layout holds now (the card shown before is deleted later, in the event loop)
    tables = [table_cells(w) for w in shown if isinstance(w, QTableView)]
    texts = [label.text() for w in shown if w is not None
             for label in ([w] if isinstance(w, QLabel) else w.findChildren(QLabel))]
    return {"tables": tables, "labels": texts}


def models_page(qtbot, window) -> dict:
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.table_model.rows) == 3, timeout=10000)
    return {"card_v1": version_card(qtbot, models, 1), "card_v3": version_card(qtbot, models, 3),
            "compare_v2_v3": comparison(qtbot, models, 2, 3), "compare_v1_v2_v3": comparison(qtbot, models, 1, 2, 3)}


def distribution(qtbot, window) -> dict:
    monitoring = window.panels["monitoring"]
    window.tabs.setCurrentWidget(monitoring)
    qtbot.waitUntil(lambda: monitoring.plots_built and monitoring.feature_choice.count() > 0, timeout=20000)
    shown = {}
    for feature in ("income", "region"):
        monitoring.distribution = None
        monitoring.feature_choice.setCurrentText(feature)
        monitoring.show_distribution(feature)
        qtbot.waitUntil(lambda feature=feature: monitoring.distribution is not None
                        and monitoring.distribution_plot.plotItem.titleLabel.text == feature, timeout=20000)
        items = monitoring.distribution_plot.getPlotItem().items
        plotted = []
        for item in items:
            if hasattr(item, "opts") and "height" in item.opts:
                plotted.append({"x": list(map(float, item.opts["x"])), "height": list(map(float, item.opts["height"]))})
            elif hasattr(item, "getData"):
                xs, ys = item.getData()
                plotted.append({"x": list(map(float, xs)), "y": list(map(float, ys))})
        axis = monitoring.distribution_plot.getAxis("bottom")
        shown[feature] = {"legend": monitoring.distribution_legend.text(),
                          "tip": monitoring.distribution_legend.toolTip(), "axis": axis.labelText,
                          "ticks": [list(t) for t in (axis._tickLevels or [[]])[0]] if axis._tickLevels else [],
                          "plotted": plotted}
    return shown


def test_the_insights_pages_show_what_they_showed(qtbot, backlog_window, tmp_path):
    from app.demo.simulator import make_batch

    window = backlog_window
    keel = window.controller.keel
    keel.set_project("demo-credit", {"preset": "logreg", "params": {"C": 0.3}}, replace_params=True)
    keel.train("demo-credit", reason="a third version")
    make_batch(200, seed=7, concept=1.0).to_csv(tmp_path / "later.csv", index=False)
    keel.ingest("demo-credit", tmp_path / "later.csv")  # labelled rows no version has seen: compared side by side
    window.controller.registry_changed.emit()
    qtbot.waitUntil(lambda: not window._reading_projects and "v2" in window.project_list.item(0).text(), timeout=10000)
    pages = normalised({"project_list": project_list(window), "overview": overview(qtbot, window),
                        "models": models_page(qtbot, window), "monitoring": distribution(qtbot, window)})
    if os.environ.get("KEEL_PIN_DOCUMENTS") == "write":
        GOLDEN.write_text(json.dumps(pages, indent=1, ensure_ascii=False) + "\n")
    assert pages == json.loads(GOLDEN.read_text())
    assert window.errors == []


DOCUMENTS = Path(__file__).parent / "fixtures" / "insights_documents.json"


def document(value):
    """A card as the plain document it was before the cards were typed (keys in order)."""
    return value.to_json() if hasattr(value, "to_json") else value


def test_the_insights_documents_keep_their_keys_and_values(demo_workspace):
    from app.core.services.lifecycle import Keel

    keel = Keel.open(demo_workspace)
    try:
        insights = keel.insights
        documents = normalised({
            "health": document(insights.health("demo-credit")),
            "health_since": document(insights.health("demo-credit", since="2000-01-01T00:00:00+00:00")),
            "alerts_since": document(insights.alerts_since("demo-credit", "2000-01-01T00:00:00+00:00")),
            "production_card": document(insights.production_card("demo-credit")),
            "version_card": document(insights.version_card("demo-credit", 1)),
            "compare_versions": document(insights.compare_versions("demo-credit", [1])),
            "numeric_distribution": document(insights.feature_distribution("demo-credit", "income")),
            "categorical_distribution": document(insights.feature_distribution("demo-credit", "region", 1)),
        })
    finally:
        keel.close()
    documents["version_card"]["training"]["seconds"] = "<seconds>"
    if os.environ.get("KEEL_PIN_DOCUMENTS") == "write":
        DOCUMENTS.write_text(json.dumps(documents, indent=1, ensure_ascii=False) + "\n")
    assert documents == json.loads(DOCUMENTS.read_text())


def test_the_insights_cards_are_frozen_and_cross_a_process_as_they_are(demo_workspace):
    import dataclasses
    import pickle

    import pytest

    from app.core.domain import cards
    from app.core.services.lifecycle import Keel

    keel = Keel.open(demo_workspace)
    try:
        insights = keel.insights
        shown = [insights.health("demo-credit", since="2000-01-01T00:00:00+00:00"),
                 insights.alerts_since("demo-credit", "2000-01-01T00:00:00+00:00"),
                 insights.production_card("demo-credit"), insights.version_card("demo-credit", 1),
                 insights.compare_versions("demo-credit", [1]),
                 insights.feature_distribution("demo-credit", "region")]
    finally:
        keel.close()
    expected = [cards.ProjectHealth, cards.AlertsSince, cards.ProductionCard, cards.VersionCard,
                cards.VersionComparison, cards.FeatureDistribution]
    assert [type(card) for card in shown] == expected
    for card in shown:
        assert pickle.loads(pickle.dumps(card)) == card
        assert pickle.loads(pickle.dumps(card)).to_json() == card.to_json()
        with pytest.raises(dataclasses.FrozenInstanceError):
            card.project = "changed"  # type: ignore[misc]
    comparison = shown[4]
    assert isinstance(comparison.versions, tuple) and isinstance(comparison.versions[0].confusion[0], tuple)
