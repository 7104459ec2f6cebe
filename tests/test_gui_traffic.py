"""The Monitoring tab shows served traffic and label coverage; File > Add labels… joins late labels
(pytest-qt, offscreen, over the real service layer)."""

import pandas as pd
import pytest
from gui_fixtures import open_window, run_job
from layout_checks import cut_plot_text
from PySide6.QtWidgets import QApplication

from app.core.services.lifecycle import Keel
from app.demo.simulator import make_batch


@pytest.fixture
def traffic_workspace(demo_workspace, tmp_path):
    """The demo project with an ID column, 200 rows scored by `predict` and monitored as one traffic window."""
    keel = Keel.open(demo_workspace)
    try:
        keel.set_project("demo-credit", {"id_column": "applicant_id"})
        scored = make_batch(200, seed=77).assign(applicant_id=[f"a{i}" for i in range(200)])
        scored.drop(columns="default").to_csv(tmp_path / "to-score.csv", index=False)
        keel.predict("demo-credit", tmp_path / "to-score.csv", tmp_path / "scored.csv")
        assert keel.policy.monitor("demo-credit").traffic[0].rows == 200
    finally:
        keel.close()
    truth = scored[["applicant_id", "default"]].iloc[:100].set_axis(["id", "label"], axis=1)
    truth.to_csv(tmp_path / "labels.csv", index=False)
    return demo_workspace


def test_the_monitoring_tab_shows_traffic_and_label_coverage(qtbot, traffic_workspace, gui_settings, leak_guard,
                                                             tmp_path, monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs

    win = open_window(qtbot, traffic_workspace)
    try:
        panel = win.panels["monitoring"]
        win.tabs.setCurrentWidget(panel)
        section = panel.traffic
        panel.lower_tabs.setCurrentIndex(1)  # Served traffic
        qtbot.waitUntil(lambda: len(section.table_model.rows) == 1, timeout=10000)
        assert section.isVisible() and section.table.isVisible()
        row = section.table_model.rows[0]
        assert row["rows"] == 200 and row["label_coverage"] == 0.0 and row["value"] is None
        qtbot.waitUntil(lambda: section.volume_plot is not None and section.volume_plot.isVisible(), timeout=5000)
        assert "200 row(s) in the prediction log" in section.summary.text()
        win.resize(1024, 640)
        qtbot.waitUntil(lambda: win.size().toTuple() == (1024, 640), timeout=2000)
        QApplication.processEvents()
        assert not cut_plot_text(section), cut_plot_text(section)

        # File > Add labels…: the dialog answers with the labels file, the job joins them by ID
        action = win.named_actions["add_labels"]
        assert action.isEnabled() and action in win.menuBar().actions()[0].menu().actions()
        monkeypatch.setattr(file_dialogs, "open_file", lambda *args, **kwargs: str(tmp_path / "labels.csv"))
        job = run_job(qtbot, win, action.trigger, kind="labels")
        assert job.state == "done", job.error
        qtbot.waitUntil(lambda: section.table_model.rows and section.table_model.rows[0]["labelled_rows"] == 100,
                        timeout=10000)
        measured = section.table_model.rows[0]
        assert measured["label_coverage"] == 0.5 and measured["value"] is not None
        scored = pd.read_csv(tmp_path / "scored.csv").iloc[:100]
        truth = pd.read_csv(tmp_path / "labels.csv")
        assert measured["value"] == pytest.approx((scored["prediction"] == truth["label"]).mean(), abs=1e-12)
        coverage_column = [header for header, _ in section.table_model.columns].index("Coverage")
        shown = section.table_model.data(section.table_model.index(0, coverage_column))
        assert shown == "50%"
    finally:
        monkeypatch.setattr("app.frontends.gui.common.confirm", lambda *a, **k: True)
        win.close()


def test_the_wizard_suggests_an_id_column_but_never_picks_one(qtbot, window, tmp_path):
    from app.frontends.gui.wizard import NewProjectWizard

    data = make_batch(120, seed=3).assign(customer_id=[f"c{i}" for i in range(120)])
    data.to_csv(tmp_path / "with-ids.csv", index=False)
    wizard = NewProjectWizard(window.controller, window)
    wizard.show()
    try:
        wizard.file_page.path.setText(str(tmp_path / "with-ids.csv"))
        wizard.file_page.load()
        qtbot.waitUntil(lambda: wizard.raw is not None, timeout=20000)
        wizard.next()
        page = wizard.target_page
        assert "customer_id" in page.id_hint.text() and page.id_column.currentData() is None
        assert "id_column" not in page.settings()
        page.id_column.setCurrentIndex(page.id_column.findData("customer_id"))
        assert page.settings()["id_column"] == "customer_id"
        wizard.next()
        assert "customer_id" not in wizard.schema_page.schema.features
    finally:
        wizard.reject()
