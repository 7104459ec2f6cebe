"""pyqtgraph, imported once the workspace is shown (Controller._import_plotting), in slices; the
classes Keel derives from its own are in plot_items, imported with it."""

import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from app.frontends.gui.common import ACCENT_COLOR

if TYPE_CHECKING:  # pyqtgraph ships no type information: its classes name what is passed, mypy sees Any
    import pyqtgraph

    from app.frontends.gui.plot_items import BatchAxis, PageFriendlyPlotWidget

QT_MODULES = ("PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets")


def qt_binding_names() -> list[tuple[object, str]]:
    """Every name of the Qt modules pyqtgraph mirrors at import (pyqtgraph.Qt copies them all)."""
    import importlib

    modules = [importlib.import_module(name) for name in QT_MODULES]
    return [(module, name) for module in modules for name in dir(module)]


def warm_qt_bindings(pending: list[tuple[object, str]], budget_seconds: float) -> bool:
    """Touch names of `pending` (taking them off it) for about budget_seconds; True once none remain.

    PySide6 creates a class the first time it is asked for; pyqtgraph's import asks for all of them
    at once (~0.1-0.3 s, most of its import time). Asked for beforehand, a few milliseconds per
    event-loop turn, they cost the import nothing. On the GUI thread only: that creation is not
    thread-safe."""
    end = time.perf_counter() + budget_seconds
    while pending and time.perf_counter() < end:
        module, name = pending.pop()
        getattr(module, name)
    return not pending


def pg() -> ModuleType:
    """pyqtgraph, with the window's options set (plot_items sets them once, when it is first imported)."""
    from app.frontends.gui import plot_items

    return plot_items.pyqtgraph


def metric_batch_axis() -> "BatchAxis":
    from app.frontends.gui.plot_items import BatchAxis

    return BatchAxis(orientation="bottom")


def date_axis() -> "pyqtgraph.DateAxisItem":
    """A bottom axis of dates and times (local time), ticks chosen for the zoom level."""
    return pg().DateAxisItem(orientation="bottom")


def plot_widget(title: str = "", left: str = "", bottom: str = "", batch_axis: bool = False,
                height: int = 0) -> "PageFriendlyPlotWidget":
    from app.frontends.gui.plot_items import PageFriendlyPlotWidget, apply_palette

    axis = {"bottom": metric_batch_axis()} if batch_axis else {}
    widget = PageFriendlyPlotWidget(axisItems=axis)
    if title:
        widget.setTitle(title)
    for side in ("left", "bottom"):
        widget.getAxis(side).enableAutoSIPrefix(False)  # 0.91, not 910 (x0.001)
    if left:
        widget.setLabel("left", left)
    if bottom:
        widget.setLabel("bottom", bottom)
    widget.showGrid(x=True, y=True, alpha=0.2)
    apply_palette(widget)
    cache_static_parts(widget)
    if height:
        widget.setMinimumHeight(height)
    return widget


def cache_static_parts(widget: "pyqtgraph.PlotWidget") -> None:
    """Axes and title are repainted from a cached pixmap: switching back to a tab with
    three plots then costs a blit, not a full re-render of every tick label."""
    from PySide6.QtWidgets import QGraphicsItem

    item = widget.getPlotItem()
    for name in ("left", "bottom"):
        item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.titleLabel.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class GrowingSeries:
    """A growing NumPy buffer (amortised doubling) for one curve; the GUI timer calls flush()."""

    def __init__(self, curve: "pyqtgraph.PlotDataItem") -> None:
        self.curve = curve
        self.xs = np.empty(64)
        self.ys = np.empty(64)
        self.count = 0
        self.dirty = False

    def clear(self) -> None:
        self.count = 0
        self.dirty = True

    def append(self, x: float, y: float) -> None:
        if self.count == len(self.xs):
            self.xs = np.resize(self.xs, 2 * len(self.xs))
            self.ys = np.resize(self.ys, 2 * len(self.ys))
        self.xs[self.count], self.ys[self.count] = x, y
        self.count += 1
        self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            self.curve.setData(self.xs[:self.count], self.ys[:self.count])
            self.dirty = False

    def values(self) -> np.ndarray:
        return self.ys[:self.count].copy()


def clear_plot(widget: "pyqtgraph.PlotWidget") -> None:
    """Items and the custom tick labels (feature names) both go: nothing of the last data stays."""
    widget.clear()
    for name in ("left", "bottom"):
        widget.getAxis(name).setTicks(None)


def bar_chart(widget: "pyqtgraph.PlotWidget", labels: list[str], values: list[float], color: str = ACCENT_COLOR, value_label: str = "") -> None:
    """Horizontal bars, largest on top; the left axis is as wide as the longest label."""
    lib = pg()
    clear_plot(widget)
    order = np.argsort(values)
    ys = np.arange(len(values))
    widget.addItem(lib.BarGraphItem(x0=0, y=ys, height=0.7, width=np.asarray(values, dtype=float)[order], brush=color))
    axis = widget.getAxis("left")
    axis.setTicks([[(i, labels[j]) for i, j in enumerate(order)]])
    metrics = widget.fontMetrics()
    axis.setWidth(min(220, max([metrics.horizontalAdvance(str(label)) for label in labels] + [20]) + 16))
    widget.setYRange(-0.6, len(values) - 0.4, padding=0)
    if value_label:
        widget.setLabel("bottom", value_label)


def bar_chart_height(widget: "pyqtgraph.PlotWidget", bars: int) -> int:
    """The height a horizontal bar chart needs for each bar's label to stand on its own line:
    a line of text per bar, plus the title and the value axis."""
    line = widget.fontMetrics().height() + 4
    return bars * line + 4 * line


def bar_chart_highlight(widget: "pyqtgraph.PlotWidget", labels: list[str], values: list[float], highlighted: list[str], color: str) -> None:
    """Draws the bars of `highlighted` labels again, in `color`, over a bar_chart of the same data."""
    lib = pg()
    order = list(np.argsort(values))
    rows = [(position, values[index]) for position, index in enumerate(order) if labels[index] in highlighted]
    widget.addItem(lib.BarGraphItem(x0=0, y=[r[0] for r in rows], height=0.7, width=[r[1] for r in rows], brush=color))


def heatmap(widget: "pyqtgraph.PlotWidget", matrix: list[list[int]], labels: list[str]) -> None:
    """A confusion matrix: rows are the true class, columns the predicted class, counts written in."""
    lib = pg()
    clear_plot(widget)
    data = np.asarray(matrix, dtype=float)
    image = lib.ImageItem(data.T)  # ImageItem takes [x, y]
    image.setColorMap(lib.colormap.get("viridis"))
    widget.addItem(image)
    peak = data.max() if data.size else 1
    for row in range(data.shape[0]):
        for column in range(data.shape[1]):
            text = lib.TextItem(str(int(data[row, column])), anchor=(0.5, 0.5),
                                color="k" if data[row, column] > peak * 0.6 else "w")
            text.setPos(column + 0.5, row + 0.5)
            widget.addItem(text)
    ticks = [(i + 0.5, str(label)) for i, label in enumerate(labels)]
    widget.getAxis("bottom").setTicks([ticks])
    widget.getAxis("left").setTicks([ticks])
    widget.setLabel("bottom", "predicted")
    widget.setLabel("left", "actual")
    widget.invertY(True)
    widget.setAspectLocked(True)
    widget.showGrid(x=False, y=False)
