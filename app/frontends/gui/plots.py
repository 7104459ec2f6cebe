"""pyqtgraph, imported only when the first plot is built (it costs ~0.5 s at start-up)."""

import numpy as np
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.frontends.gui.common import ACCENT_COLOR

_configured = False
ANTIALIAS = True  # smooth lines; measured: no cost difference on these small plots


def pg():
    global _configured
    import pyqtgraph

    if not _configured:
        palette = QApplication.palette()
        pyqtgraph.setConfigOptions(antialias=ANTIALIAS, background=palette.color(QPalette.ColorRole.Base),
                                   foreground=palette.color(QPalette.ColorRole.Text))
        _configured = True
    return pyqtgraph


def plot_widget(title: str = "", left: str = "", bottom: str = "", time_axis: bool = False, height: int = 0):
    lib = pg()
    axis = {"bottom": lib.DateAxisItem(orientation="bottom")} if time_axis else {}
    widget = lib.PlotWidget(axisItems=axis)
    if title:
        widget.setTitle(title)
    widget.getAxis("left").enableAutoSIPrefix(False)  # 0.91, not 910 (x0.001)
    if left:
        widget.setLabel("left", left)
    if bottom:
        widget.setLabel("bottom", bottom)
    widget.showGrid(x=True, y=True, alpha=0.2)
    cache_static_parts(widget)
    if height:
        widget.setMinimumHeight(height)
    return widget


def cache_static_parts(widget) -> None:
    """Axes and title are repainted from a cached pixmap: switching back to a tab with
    three plots then costs a blit, not a full re-render of every tick label."""
    from PySide6.QtWidgets import QGraphicsItem

    item = widget.getPlotItem()
    for name in ("left", "bottom"):
        item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.titleLabel.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class GrowingSeries:
    """A growing NumPy buffer (amortised doubling) for one curve; the GUI timer calls flush()."""

    def __init__(self, curve):
        self.curve = curve
        self.x = np.empty(64)
        self.y = np.empty(64)
        self.size = 0
        self.dirty = False

    def clear(self) -> None:
        self.size = 0
        self.dirty = True

    def append(self, x: float, y: float) -> None:
        if self.size == len(self.x):
            self.x = np.resize(self.x, 2 * len(self.x))
            self.y = np.resize(self.y, 2 * len(self.y))
        self.x[self.size], self.y[self.size] = x, y
        self.size += 1
        self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            self.curve.setData(self.x[:self.size], self.y[:self.size])
            self.dirty = False

    def values(self) -> np.ndarray:
        return self.y[:self.size].copy()


def bar_chart(widget, labels: list[str], values: list[float], color: str = ACCENT_COLOR) -> None:
    """Horizontal bars, largest on top."""
    lib = pg()
    widget.clear()
    order = np.argsort(values)
    ys = np.arange(len(values))
    widget.addItem(lib.BarGraphItem(x0=0, y=ys, height=0.7, width=np.asarray(values, dtype=float)[order], brush=color))
    axis = widget.getAxis("left")
    axis.setTicks([[(i, labels[j]) for i, j in enumerate(order)]])
    widget.setYRange(-0.6, len(values) - 0.4, padding=0)


def heatmap(widget, matrix: list[list[int]], labels: list[str]) -> None:
    """A confusion matrix: rows are the true class, columns the predicted class, counts written in."""
    lib = pg()
    widget.clear()
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
