"""Features a data scientist expects in the window: the scoring-server line, health since
the user last looked, Help, What's this? on every setting, dark mode."""

import json
import urllib.request

from gui_fixtures import run_job


def test_the_server_line_names_project_and_version_and_counts_every_answer(qtbot, window):
    # enabled once the window has read the production model (a read job): a trigger before does nothing
    qtbot.waitUntil(lambda: window.named_actions["serve"].isEnabled(), timeout=20000)
    job = run_job(qtbot, window, window.named_actions["serve"].trigger, kind="serve")
    assert job.state == "done", job.error
    server = window.controller.server
    line = window.panels["overview"].server_label
    qtbot.waitUntil(lambda: "demo-credit v1" in line.text(), timeout=5000)
    assert server.url in line.text()
    urllib.request.urlopen(f"{server.url}/ping", timeout=10).read()
    urllib.request.urlopen(f"{server.url}/version", timeout=10).read()
    frame = window.controller.keel.dataset_frame("demo-credit", 1).head(2)
    features = [c for c in frame.columns if c != "default"]
    body = json.dumps({"dataframe_split": {"columns": features,
                                           "data": json.loads(frame[features].to_json(orient="values"))}}).encode()
    request = urllib.request.Request(f"{server.url}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    qtbot.waitUntil(lambda: "3 request(s) answered, 1 scoring" in line.text(), timeout=5000)
    window.named_actions["serve"].trigger()
    assert line.text() == ""


def test_alerts_opened_and_recovered_since_the_user_looked_are_counted(qtbot, window, store):
    keel = window.controller.keel
    window.tabs.setCurrentWidget(window.panels["overview"])
    window.looked_at("demo-credit")  # the user has looked before
    project = keel.project("demo-credit")
    with store(keel).transaction():
        first = store(keel).insert_alert(project_id=project.id, rule="metric_below_threshold", severity="warning",
                                           message="accuracy 0.71 below the threshold 0.8")
        store(keel).insert_alert(project_id=project.id, rule="drift_share", severity="warning",
                                   message="60% of the features drifted")
    store(keel).close_alert(first, "recovered")
    item = window.project_list.item(0)
    qtbot.waitUntil(lambda: "since you looked: 2 opened, 1 recovered" in window.project_list.item(0).text(),
                    timeout=5000)
    item = window.project_list.item(0)
    assert "2 alert(s) opened and 1 recovered since you last looked" in item.toolTip()
    window.tabs.setCurrentWidget(window.panels["alerts"])  # the user looks
    qtbot.waitUntil(lambda: "since you looked" not in window.project_list.item(0).text(), timeout=5000)
    assert "1 alert" in window.project_list.item(0).text()  # the one still open stays counted


def test_health_is_not_green_after_alerts_that_all_recovered(qtbot, window, store):
    from app.core.domain.clock import utc_now

    keel = window.controller.keel
    since = utc_now()
    project = keel.project("demo-credit")
    for _ in range(10):
        alert = store(keel).insert_alert(project_id=project.id, rule="metric_below_threshold",
                                           severity="warning", message="accuracy below the threshold")
        store(keel).close_alert(alert, "recovered")
    assert keel.insights.health("demo-credit").state == "ok"  # nothing open: green without `since`
    health = keel.insights.health("demo-credit", since=since)
    assert (health.since.opened, health.since.recovered, health.state) == (10, 10, "warning")
    assert health.reasons[-1] == "10 alert(s) opened and 10 recovered since you last looked"


def test_help_lists_every_shortcut_and_shows_the_readme(qtbot, window):
    from PySide6.QtGui import QAction

    from app.frontends.gui.help import ShortcutsDialog, UserGuideDialog

    dialog = ShortcutsDialog(window)
    qtbot.addWidget(dialog)
    dialog.show()
    listed = {dialog.table.item(row, 1).text() for row in range(dialog.table.rowCount())}
    every = {a.shortcut().toString() for a in window.findChildren(QAction) if not a.shortcut().isEmpty()}
    assert every <= listed and {"Ctrl+R", "Ctrl+1", "Ctrl+I", "Ctrl+Shift+I", "Esc"} <= listed
    guide = UserGuideDialog(window)
    qtbot.addWidget(guide)
    guide.show()
    titles = [guide.index.item(row).text() for row in range(guide.index.count())]
    assert "The window" in titles and "Monitoring, alerts and retraining" in titles
    guide.index.setCurrentRow(titles.index("The window"))
    assert "Ctrl+1" in guide.page.toPlainText()


def test_every_setting_explains_itself(qtbot, window):
    from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QLineEdit, QPlainTextEdit, QWidget

    from app.frontends.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.controller.keel.project("demo-credit"), window)
    qtbot.addWidget(dialog)
    dialog.show()
    inputs = []
    for tab in range(dialog.tabs.count()):  # each tab of settings shown in turn
        dialog.tabs.setCurrentIndex(tab)
        inputs += [w for w in dialog.findChildren(QWidget) if w.isVisible()
                   and isinstance(w, (QComboBox, QAbstractSpinBox, QPlainTextEdit, QCheckBox, QLineEdit))
                   and not isinstance(w.parentWidget(), (QAbstractSpinBox, QComboBox))]  # their own line edits
    assert len(inputs) >= 20
    silent = [type(w).__name__ for w in inputs if not w.whatsThis() or not w.toolTip()]
    assert not silent, silent
    assert "--threshold" in dialog.threshold.whatsThis() and "--policy" in dialog.policy.whatsThis()


def test_plots_follow_a_live_switch_to_dark_and_back(qtbot, window):
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.plots_built, timeout=10000)
    light = QApplication.palette()
    dark = QPalette(light)
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.Base, "#17181a"),
                         (QPalette.ColorRole.Text, "#e8eaed"), (QPalette.ColorRole.WindowText, "#e8eaed")):
        dark.setColor(role, QColor(colour))
    plots = (panel.metric_plot, panel.drift_plot, panel.feature_plot)
    try:
        QApplication.setPalette(dark)
        QApplication.processEvents()
        for plot in plots:
            assert plot.backgroundBrush().color().name() == "#17181a"
            assert plot.getAxis("left").textPen().color().name() == "#e8eaed"
            assert "#e8eaed" in plot.getPlotItem().titleLabel.opts.get("color", "")
    finally:
        QApplication.setPalette(light)
    QApplication.processEvents()
    for plot in plots:
        assert plot.backgroundBrush().color() == light.color(QPalette.ColorRole.Base)
