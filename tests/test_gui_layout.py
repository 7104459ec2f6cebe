"""The window's layout as a user meets it: nothing moves when a notification or a job bar
appears, the mouse wheel over a plot in a scrolling page scrolls the page, and every tab
is usable at 1024×640."""

import pytest
from layout_checks import cut_plot_text
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel, QPushButton


def page_origin(window) -> tuple:
    page = window.tabs.currentWidget()
    return window.tabs.geometry().getRect(), tuple(page.mapTo(window, QPoint(0, 0)).toTuple()), page.size().toTuple()


def test_banner_and_job_bar_do_not_move_the_tabs(qtbot, window):
    before = page_origin(window)
    window.notify("info", "A notification long enough to wrap onto a second line when the window is narrow. " * 2)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=2000)
    QApplication.processEvents()
    assert page_origin(window) == before
    banner = window.banner.geometry()
    assert banner.height() > 10 and banner.top() >= window.tabs.tabBar().geometry().bottom()
    job = window.controller.retrain()
    qtbot.waitUntil(lambda: window.job_bar.isVisible(), timeout=5000)
    QApplication.processEvents()
    assert page_origin(window) == before
    qtbot.waitUntil(lambda: job.state in ("done", "failed"), timeout=90_000)
    qtbot.waitUntil(lambda: not window.job_bar.isVisible(), timeout=5000)
    window.banner.hide()
    QApplication.processEvents()
    assert page_origin(window) == before


def wheel(widget, delta: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, delta),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget.viewport(), event)


def test_plot_pages_scroll_under_the_wheel_and_cut_no_axis_title_legend_or_bar_label(qtbot, backlog_window):
    """One comparison (the slow part) serves both checks: the wheel over a plot of the Models page,
    then every tab's plot text at 1024×640 and 1600×1000."""
    window = backlog_window
    models = window.panels["models"]
    window.tabs.setCurrentWidget(models)
    qtbot.waitUntil(lambda: len(models.table_model.rows) == 2, timeout=10000)
    models.select_version(1, 2)
    models.compare_selected()
    qtbot.waitUntil(lambda: models.comparison is not None, timeout=90_000)
    from pyqtgraph import PlotWidget

    def shown_plots():  # a widget added to a shown layout is shown on the next event-loop turn
        return [p for p in models.compare_widget.findChildren(PlotWidget) if p.isVisible()]

    qtbot.waitUntil(lambda: bool(shown_plots()), timeout=5000)
    plots = shown_plots()
    models.splitter.setSizes([100, 200])  # a short page: it scrolls
    QApplication.processEvents()
    scrollbar = models.compare_area.verticalScrollBar()
    assert scrollbar.maximum() > 0
    plot = plots[0]
    scrollbar.setValue(0)
    start = scrollbar.value()
    view_range = plot.getPlotItem().getViewBox().viewRange()
    wheel(plot, -120)
    assert scrollbar.value() != start, "the page did not scroll"
    assert plot.getPlotItem().getViewBox().viewRange() == view_range, "the plot zoomed"
    wheel(plot, -120, Qt.KeyboardModifier.ControlModifier)  # with Ctrl the plot zooms
    assert plot.getPlotItem().getViewBox().viewRange() != view_range
    plot.getPlotItem().getViewBox().autoRange()

    monitoring = window.panels["monitoring"]
    window.tabs.setCurrentWidget(monitoring)
    qtbot.waitUntil(lambda: monitoring.plots_built and monitoring.distribution is not None, timeout=20000)
    problems = []
    for size in ((1024, 640), (1600, 1000)):
        window.resize(*size)
        qtbot.waitUntil(lambda size=size: window.size().toTuple() == size, timeout=2000)
        for index in range(window.tabs.count()):
            window.tabs.setCurrentIndex(index)
            page = window.tabs.currentWidget()
            for _ in range(3):  # a shown page lays out, then its plots lay out their axes
                QApplication.processEvents()
            problems += [f"{page.title} at {size}: {problem}" for problem in cut_plot_text(page)]
    assert not problems, "\n".join(problems)


def cut_widgets(page) -> list[str]:
    """Buttons narrower than their text, and single-line labels narrower than theirs."""
    cut = []
    for button in page.findChildren(QPushButton):
        if button.isVisible() and button.width() < button.minimumSizeHint().width():
            cut.append(f"button {button.text()!r}: {button.width()} < {button.minimumSizeHint().width()}")
    for label in page.findChildren(QLabel):
        if label.isVisible() and not label.wordWrap() and label.text() and label.width() < label.minimumSizeHint().width():
            cut.append(f"label {label.text()[:40]!r}: {label.width()} < {label.minimumSizeHint().width()}")
    return cut


def test_every_tab_is_usable_at_1024_by_640(qtbot, backlog_window):
    window = backlog_window
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1024, 640), timeout=2000)
    assert window.minimumSizeHint().height() <= 640 and window.minimumSizeHint().width() <= 1024
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        page = window.tabs.currentWidget()
        qtbot.waitUntil(lambda page=page: page.up_to_date, timeout=10000)
        QApplication.processEvents()
        assert window.size().toTuple() == (1024, 640), f"{page.title} grew the window"
        assert not cut_widgets(page), f"{page.title}: {cut_widgets(page)}"
    monitoring = window.panels["monitoring"]
    window.tabs.setCurrentWidget(monitoring)
    qtbot.waitUntil(lambda: monitoring.plots_built, timeout=10000)
    QApplication.processEvents()
    qtbot.waitUntil(lambda: monitoring.distribution is not None, timeout=20000)
    QApplication.processEvents()
    for plot in (monitoring.metric_plot, monitoring.drift_plot, monitoring.feature_plot, monitoring.distribution_plot):
        title = plot.getPlotItem().titleLabel
        assert title.item.boundingRect().width() <= plot.width(), f"title cut: {title.text}"
        assert plot.height() >= 120, f"{title.text}: {plot.height()} px high"
    axis = monitoring.feature_plot.getAxis("left")
    widest = max(monitoring.feature_plot.fontMetrics().horizontalAdvance(name) for name in ("income", "debt_ratio"))
    assert axis.width() >= widest, "feature names are cut"


@pytest.mark.parametrize("size", [(1024, 640), (1600, 1000)])
def test_the_settings_dialog_fits(qtbot, window, size):
    from app.frontends.gui.settings_dialog import SettingsDialog

    window.resize(*size)
    dialog = SettingsDialog(window.controller.keel.project("demo-credit"), window)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.height() <= 640 - 40 and dialog.width() <= 1024
    assert not cut_widgets(dialog)
    dialog.reject()
