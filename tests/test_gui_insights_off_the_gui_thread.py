"""Every view the window builds on the insights service (the project list's health, the Overview's
production card, the Models page's version card and comparison, the Monitoring page's feature
distribution) asks the service on a worker, through the job runner, never on the GUI thread: each
of them queries the registry or scores a model."""

import threading

INSIGHTS_THE_WINDOW_READS = {"health", "production_card", "version_card", "compare_versions", "feature_distribution"}


class RecordingInsights:
    """Stands in for Keel.insights: records which of its methods is called on which thread."""

    def __init__(self, insights):
        self._insights = insights
        self.calls: list[tuple[str, bool]] = []  # (method, on the GUI thread)

    def __getattr__(self, name):
        method = getattr(self._insights, name)

        def call(*args, **kwargs):
            self.calls.append((name, threading.current_thread() is threading.main_thread()))
            return method(*args, **kwargs)

        return call


class KeelWithRecordedInsights:
    def __init__(self, keel, insights: RecordingInsights):
        self._keel = keel
        self.insights = insights

    def __getattr__(self, name):
        return getattr(self._keel, name)


def test_every_insights_view_of_the_window_is_read_on_a_worker(qtbot, backlog_window, monkeypatch):
    from app.core.services import insights

    monkeypatch.setattr(insights, "importances", lambda *args: (None, {}))  # not what this checks, and slow
    window = backlog_window
    controller = window.controller
    keel = controller.keel
    recorder = RecordingInsights(keel.insights)
    controller.keel = KeelWithRecordedInsights(keel, recorder)
    try:
        overview = window.panels["overview"]
        window.tabs.setCurrentWidget(overview)
        controller.registry_changed.emit()  # the project list and the tab on show are read again
        qtbot.waitUntil(lambda: overview.up_to_date and not window._reading_projects, timeout=10000)

        models = window.panels["models"]
        window.tabs.setCurrentWidget(models)
        qtbot.waitUntil(lambda: len(models.table_model.rows) == 2, timeout=10000)
        models.select_version(2)
        qtbot.waitUntil(lambda: models.card is not None and models.card.version == 2, timeout=20000)
        models.select_version(1, 2)
        models.compare_button.click()
        qtbot.waitUntil(lambda: models.comparison is not None, timeout=60000)

        monitoring = window.panels["monitoring"]
        window.tabs.setCurrentWidget(monitoring)
        qtbot.waitUntil(lambda: monitoring.plots_built and monitoring.distribution is not None, timeout=20000)
        monitoring.feature_choice.setCurrentText("region")
        qtbot.waitUntil(lambda: monitoring.distribution.feature == "region", timeout=20000)
        qtbot.waitUntil(lambda: not controller.runner.active_jobs(), timeout=30000)
    finally:
        controller.keel = keel
    assert {name for name, _ in recorder.calls} == INSIGHTS_THE_WINDOW_READS  # every view was read
    assert [name for name, on_gui_thread in recorder.calls if on_gui_thread] == []
    assert window.errors == []
