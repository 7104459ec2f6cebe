"""What a user would see cut on a page of the window: plot text that does not fit its place."""

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel


def cut_at_the_side(widget) -> int:
    """How many pixels of the widget stand right of the scroll area viewport it is shown in (a page
    scrolls vertically; nothing should need a horizontal scroll)."""
    from PySide6.QtWidgets import QAbstractScrollArea

    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    if parent is None or parent.horizontalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
        return 0
    right = widget.mapTo(parent.viewport(), QPoint(widget.width(), 0)).x()
    return max(0, right - parent.viewport().width())


def cut_plot_text(page) -> list[str]:
    """Text of the visible plots that does not fit: a plot cut at the side by its page, an axis
    title longer than its axis, a plot title wider than its plot, tick labels of named bars closer
    than a line of text, a legend shorter than its wrapped text or outside its plot's view box."""
    from pyqtgraph import AxisItem, LegendItem, PlotWidget
    from PySide6.QtGui import QFontMetricsF

    cut = []
    for plot in page.findChildren(PlotWidget):
        if not plot.isVisible():
            continue
        item = plot.getPlotItem()
        title = item.titleLabel
        right = cut_at_the_side(plot)
        if right:
            cut.append(f"{title.text!r}: {right} px of its right side outside its page")
        if title.isVisible() and title.text and title.item.boundingRect().width() > item.size().width():
            cut.append(f"title {title.text!r}: {title.item.boundingRect().width():.0f} > {item.size().width():.0f}")
        for name in ("left", "bottom"):
            axis: AxisItem = item.getAxis(name)
            if not axis.isVisible():
                continue
            along = axis.size().width() if name == "bottom" else axis.size().height()
            text = axis.label.toPlainText().strip()
            if axis.label.isVisible() and text:
                needed = QFontMetricsF(axis.label.font()).horizontalAdvance(text)
                if needed > along:
                    cut.append(f"{name} axis title {text!r}: {needed:.0f} > {along:.0f} px")
            if axis._tickLevels and name == "left":  # named bars: one tick label per bar
                values = sorted(value for level in axis._tickLevels for value, _ in level)
                low, high = axis.range
                if len(values) > 1 and high > low:
                    gap = min(b - a for a, b in zip(values, values[1:])) * along / (high - low)
                    line = QFontMetricsF(axis.font() if axis.style["tickFont"] is None else axis.style["tickFont"]).height()
                    if gap < line:
                        cut.append(f"{title.text!r}: tick labels {gap:.0f} px apart, a line is {line:.0f}")
        box = item.getViewBox().sceneBoundingRect()
        for legend in [child for child in item.scene().items() if isinstance(child, LegendItem) and child.isVisible()]:
            if not box.contains(legend.sceneBoundingRect()):
                cut.append(f"{title.text!r}: legend outside its view box")
    for label in page.findChildren(QLabel, "plotLegend"):
        if not label.isVisible() or not label.text():
            continue
        needed = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
        if label.height() < needed or (not label.wordWrap() and label.width() < label.sizeHint().width()):
            cut.append(f"legend {label.text()[-60:]!r}: {label.size().toTuple()}, needs height {needed}")
    return cut
