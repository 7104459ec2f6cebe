"""The plot classes Keel derives from pyqtgraph's, and the options pyqtgraph draws with in this window.

Imported through plots (plots.pg(), plots.plot_widget()) once pyqtgraph is wanted, never at start-up:
importing this module imports pyqtgraph, and Python imports a module once, so the options are set
once per process (the colours follow the palette again in apply_palette).
"""

import math

import pyqtgraph
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QMouseEvent, QPalette, QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication

MIN_HINT_HEIGHT = 100  # a plot's preferred height when it was given no minimum
ANTIALIAS = True  # smooth lines; measured: no cost difference on these small plots


def _set_options() -> None:
    palette = QApplication.palette()
    pyqtgraph.setConfigOptions(antialias=ANTIALIAS, background=palette.color(QPalette.ColorRole.Base),
                               foreground=palette.color(QPalette.ColorRole.Text))


_set_options()


def apply_palette(widget: pyqtgraph.PlotWidget) -> None:
    """Background, axes, tick labels and title in the window's palette (light or dark)."""
    palette = QApplication.palette()
    base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
    pyqtgraph.setConfigOptions(background=base, foreground=text)  # plots built later match too
    widget.setBackground(base)
    item = widget.getPlotItem()
    for name in ("left", "bottom", "top", "right"):
        axis = item.getAxis(name)
        axis.setPen(text)
        axis.setTextPen(text)
        if axis.labelText:
            axis.setLabel(axis.labelText, units=axis.labelUnits, color=text.name())
    if item.titleLabel.text:
        item.setTitle(item.titleLabel.text, color=text.name())


class BatchAxis(pyqtgraph.AxisItem):
    """An x axis of dataset versions: whole numbers only, written v1, v2, …"""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        levels: list[tuple[float, list[float]]] = []
        for spacing, values in super().tickValues(minVal, maxVal, size):
            whole = [v for v in values if float(v).is_integer()]
            if spacing >= 1 and whole:
                levels.append((spacing, whole))
        if not levels and math.floor(maxVal) >= math.ceil(minVal):
            levels = [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]
        return levels

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [f"v{int(round(v))}" for v in values]


class PageFriendlyPlotWidget(pyqtgraph.PlotWidget):
    """A PlotWidget whose mouse wheel scrolls the page it sits in (a scroll area) unless Ctrl is
    held or the plot was clicked first: a wheel turned to scroll must not zoom what passes under it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.zoom_armed = False  # set by a click on the plot, cleared when the pointer leaves

    def scroll_area(self) -> QAbstractScrollArea | None:
        parent = self.parentWidget()
        while parent is not None:
            if isinstance(parent, QAbstractScrollArea):
                return parent
            parent = parent.parentWidget()
        return None

    def wheelEvent(self, event: QWheelEvent) -> None:
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        area = None if ctrl or self.zoom_armed else self.scroll_area()
        if area is None:
            super().wheelEvent(event)
            return
        horizontal = abs(event.angleDelta().x()) > abs(event.angleDelta().y())
        QApplication.sendEvent(area.horizontalScrollBar() if horizontal else area.verticalScrollBar(), event)
        event.accept()  # the page scrolled; the plot keeps its range

    def sizeHint(self) -> QSize:
        # as tall as its minimum: in a scrolling page the layout's preferred height is the
        # sum of the hints, and QGraphicsView's own hint would make every plot a screen high
        hint = super().sizeHint()
        return QSize(hint.width(), max(self.minimumHeight(), MIN_HINT_HEIGHT))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.zoom_armed = True
        super().mousePressEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        changed = event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange)
        if changed and self.getPlotItem() is not None:  # not while the widget is being built
            apply_palette(self)  # light to dark (or back) at once, without a restart

    def leaveEvent(self, event: QEvent) -> None:
        self.zoom_armed = False
        super().leaveEvent(event)
