"""Small shared pieces: item models, formatting, the error dialog, the job bar, the banner."""

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QHideEvent, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    import pandas as pd

    from app.frontends.gui.jobs import Job

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
# One row of a table: a JSON document (a typed result's to_json(), or a few named values) whose
# values are of mixed kinds (text, numbers, flags, lists): Any, as in every JSON document.
Record = dict[str, Any]
# A column: (header, the record's key or a function of the record).
ColumnSpec = str | Callable[[Record], Any]
Column = tuple[str, ColumnSpec]
AnyIndex = QModelIndex | QPersistentModelIndex
# The palette: every colour the window uses, by what it means.
GOOD_COLOR = "#2e9d4f"
WARNING_COLOR = "#d08a00"
BAD_COLOR = "#d0342c"
MUTED_COLOR = "#8a8a8a"
ACCENT_COLOR = "#2d6cdf"
DRIFT_COLOR = "#9b59b6"
HEALTH_COLORS = {"ok": GOOD_COLOR, "warning": WARNING_COLOR, "alert": BAD_COLOR, "none": MUTED_COLOR}


def setting_text(settings: QSettings, key: str, default: str = "") -> str:
    """A text setting (PySide6's stubs type QSettings.value as `object`, whatever `type=` asks for)."""
    return str(settings.value(key, default, type=str))


def setting_int(settings: QSettings, key: str, default: int = 0) -> int:
    value = settings.value(key, default, type=int)
    return value if isinstance(value, int) else default


def local_time(iso: str | None) -> str:
    from app.core.domain.clock import to_local_display

    return to_local_display(iso) if iso else ""


def fmt_value(value: object, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def fmt_number(value: float | str | None) -> str:
    """Readable summary numbers: 156,700 and 0.006, not 1.567e+05 (a bound stored as text, a date, as it is)."""
    if value is None or isinstance(value, str):
        return value or ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def show_error(parent: QWidget | None, message: str, details: str = "") -> None:
    """A one-line message and a Details section (tests patch this function)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Keel")
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


def confirm(parent: QWidget | None, title: str, text: str, informative: str = "", ok: str = "OK") -> bool:
    """A confirmation that says what will change (tests patch this function)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(text)
    if informative:
        box.setInformativeText(informative)
    ok_button = box.addButton(ok, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is ok_button


class RecordsModel(QAbstractTableModel):
    """Rows of dicts shown through column specs: (header, key or function(row))."""

    def __init__(self, columns: Sequence[Column], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns: list[Column] = list(columns)
        self.rows: list[Record] = []
        self._raw: list[list[object]] = []
        self._text: list[list[str]] = []
        self._colors: list[str | None] = []
        self._shown_columns: list[Column] | None = None  # the columns the rows were shown with
        self.row_colors: Callable[[Record], str | None] | None = None

    def set_rows(self, rows: list[Record]) -> None:
        """Show `rows`. When rows keep their identity (an "id" or "version" key) only what changed is
        touched: new rows are inserted, changed rows repainted, so the views keep their selection,
        sort order and scroll position through background refreshes."""
        rows = list(rows)
        if self.columns is self._shown_columns and (rows == self.rows or self._update_in_place(rows)):
            return
        self.beginResetModel()
        self._shown_columns = self.columns
        self.rows = rows
        # raw values and display text computed once here, not on every paint
        self._raw = [self._row_values(record) for record in self.rows]
        self._text = [[fmt_value(value) for value in row] for row in self._raw]
        self._colors = [self.row_colors(record) if self.row_colors else None for record in self.rows]
        self.endResetModel()

    @staticmethod
    def row_key(record: Record) -> object:
        return record.get("id", record.get("version"))

    def _row_values(self, record: Record) -> list[object]:
        return [self._compute(record, spec) for _, spec in self.columns]

    def _update_in_place(self, rows: list[Record]) -> bool:
        old = [self.row_key(r) for r in self.rows]
        new = [self.row_key(r) for r in rows]
        if not old or None in old or None in new or len(set(new)) != len(new):
            return False
        added = len(new) - len(old)
        if new == old:
            first = 0
        elif added > 0 and new[added:] == old:  # newest first: new rows on top
            first = added
        elif added > 0 and new[:len(old)] == old:  # oldest first: new rows at the end
            first = 0
        else:
            return False
        kept = rows[first:first + len(old)]
        for row, record in enumerate(kept):  # the rows already shown, in the same order
            values = self._row_values(record)
            color = self.row_colors(record) if self.row_colors else None
            if values != self._raw[row] or color != self._colors[row]:
                self.rows[row], self._raw[row] = record, values
                self._text[row] = [fmt_value(v) for v in values]
                self._colors[row] = color
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
            else:
                self.rows[row] = record
        if added > 0:
            at = 0 if first == added else len(old)
            fresh = rows[:added] if first == added else rows[len(old):]
            self.beginInsertRows(QModelIndex(), at, at + added - 1)
            fresh_values = [self._row_values(record) for record in fresh]
            self.rows[at:at] = fresh
            self._raw[at:at] = fresh_values
            self._text[at:at] = [[fmt_value(v) for v in row] for row in fresh_values]
            self._colors[at:at] = [self.row_colors(r) if self.row_colors else None for r in fresh]
            self.endInsertRows()
        return True

    @staticmethod
    def _compute(record: Record, spec: ColumnSpec) -> object:
        return spec(record) if callable(spec) else record.get(spec)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def raw(self, row: int, column: int) -> object:
        return self._raw[row][column]

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text[index.row()][index.column()]
        if role == SORT_ROLE:
            value = self.raw(index.row(), index.column())
            return "" if value is None else value if isinstance(value, (int, float)) else str(value)
        if role == Qt.ItemDataRole.ForegroundRole:
            color = self._colors[index.row()]
            return QColor(color) if color else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            value = self.raw(index.row(), index.column())
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section][0]
        return None


class DataFrameModel(QAbstractTableModel):
    """A read-only view of a DataFrame: cells are read on demand, nothing is copied."""

    def __init__(self, frame: "pd.DataFrame | None" = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.frame = frame

    def set_frame(self, frame: "pd.DataFrame | None") -> None:
        self.beginResetModel()
        self.frame = frame
        self.endResetModel()

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() or self.frame is None else len(self.frame)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() or self.frame is None else len(self.frame.columns)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole or self.frame is None:
            return None
        value = self.frame.iat[index.row(), index.column()]
        try:
            if value is None or (not isinstance(value, str) and bool(value != value)):
                return ""
        except (TypeError, ValueError):
            pass
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if role != Qt.ItemDataRole.DisplayRole or self.frame is None:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)


def make_table(model: QAbstractTableModel, sortable: bool = True, stretch_last: bool = True) -> tuple[QTableView, QSortFilterProxyModel]:
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    proxy.setFilterKeyColumn(-1)
    view = QTableView()
    view.setModel(proxy)
    proxy.setParent(view)
    view.setSortingEnabled(sortable)
    view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    proxy.sort(-1)  # the rows' own order (newest first) until the user clicks a header
    view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setStretchLastSection(stretch_last)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.horizontalHeader().setResizeContentsPrecision(60)  # size columns from the first rows, not all of them
    view.setWordWrap(False)
    return view, proxy


def selected_records(view: QTableView, model: RecordsModel) -> list[Record]:
    shown = view.model()  # the sorting proxy over `model` (make_table), or the model itself
    selected = view.selectionModel().selectedRows()
    if isinstance(shown, QSortFilterProxyModel):
        selected = [shown.mapToSource(i) for i in selected]
    rows = sorted({i.row() for i in selected})
    return [model.rows[r] for r in rows if r < len(model.rows)]


def heading(text: str, size: float = 1.25) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * size)
    font.setBold(True)
    label.setFont(font)
    return label


def muted(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    palette = label.palette()
    color = palette.color(QPalette.ColorRole.WindowText)
    color.setAlpha(170)  # secondary text, readable on light and dark palettes alike
    palette.setColor(QPalette.ColorRole.WindowText, color)
    label.setPalette(palette)
    return label


class JobBar(QFrame):
    """The running job of the current project: title, progress bar, Cancel."""

    cancel_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.job: Job | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMinimumWidth(240)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelJob")
        self.cancel_button.clicked.connect(lambda: self.job is not None and self.cancel_requested.emit(self.job))
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._clock = QTimer(self)  # the elapsed time ticks while a job runs (a fit reports little progress)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(lambda: self.job is not None and self._label(self.job))
        self.hide()

    def _label(self, job: "Job") -> None:
        import time

        message = f" — {job.message}" if job.message else ""
        queued = "" if job.state == "running" else " (waiting)"
        elapsed = f" · {time.monotonic() - job.started_at:.0f} s" if job.started_at and job.state == "running" else ""
        self.label.setText(f"{job.title}{queued}{message}{elapsed}")

    def hideEvent(self, event: QHideEvent) -> None:
        self._clock.stop()
        super().hideEvent(event)

    def stop(self) -> None:
        self._clock.stop()

    def show_job(self, job: "Job | None") -> None:
        if job is None:
            self.job = None
            self.hide()
            return
        self.job = job
        self._label(job)
        if not self._clock.isActive():
            self._clock.start()
        if job.fraction <= 0 and job.state == "running":
            self.bar.setRange(0, 0)  # busy indicator until the first progress report
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(job.fraction * 1000))
        cancelling = job.cancel_event.is_set()
        self.cancel_button.setEnabled(job.cancellable and not cancelling)
        self.cancel_button.setText("Cancelling…" if cancelling else "Cancel")
        self.cancel_button.setToolTip("" if job.cancellable else "This step is short and cannot be stopped halfway")
        self.show()


class Banner(QFrame):
    """An in-window notification (always shown, tray or not). Given a tab widget as parent, it
    floats over the top of the page, below the tab bar, and takes no room in any layout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        if parent is not None:
            parent.installEventFilter(self)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.history: list[tuple[str, str]] = []
        self.hide()

    def show_message(self, level: str, message: str, seconds: float = 10.0) -> None:
        self.history.append((level, message))
        color = {"info": ACCENT_COLOR, "warning": WARNING_COLOR, "error": BAD_COLOR}.get(level, ACCENT_COLOR)
        self.setStyleSheet(f"QFrame#banner {{ background: palette(window); border: 1px solid {color}; "
                           f"border-left: 5px solid {color}; border-radius: 3px; }}")
        self.label.setText(message)
        self.place()
        self.show()
        self.raise_()
        self._timer.start(int(seconds * 1000))

    def place(self) -> None:
        """Across the page, just below the tab bar when the parent is a tab widget."""
        parent = self.parentWidget()
        if parent is None:
            return
        bar = parent.tabBar() if hasattr(parent, "tabBar") else None
        top = bar.geometry().bottom() + 4 if bar is not None else 4
        width = max(100, parent.width() - 16)
        self.setGeometry(8, top, width, self.heightForWidth(width) if self.hasHeightForWidth()
                         else self.sizeHint().height())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self.place()
        return False

    def stop(self) -> None:
        self._timer.stop()


class Card(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(14, 12, 14, 12)


class Sparkline(QWidget):
    """A small line of recent values with an optional threshold, drawn with QPainter
    (the Overview paints at start-up without importing pyqtgraph)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float] = []
        self.threshold: float | None = None
        self.setMinimumHeight(64)
        self.setMaximumHeight(130)

    def set_values(self, values: list[float], threshold: float | None = None) -> None:
        self.values, self.threshold = [float(v) for v in values], threshold
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        from PySide6.QtCore import QPointF
        from PySide6.QtGui import QPainter, QPen

        if not self.values:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        margin_left, margin = 44, 8
        width, height = self.width() - margin_left - margin, self.height() - 2 * margin
        points = self.values + ([self.threshold] if self.threshold is not None else [])
        low, high = min(points), max(points)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        pad = (high - low) * 0.1
        low, high = low - pad, high + pad

        def y(value: float) -> float:
            return margin + (high - value) / (high - low) * height

        def x(index: int) -> float:
            return margin_left + (index / max(1, len(self.values) - 1)) * width

        text = self.palette().color(QPalette.ColorRole.WindowText)
        painter.setPen(text)
        for value in (high - pad, low + pad):
            painter.drawText(2, int(y(value)) + 4, f"{value:.3f}")
        if self.threshold is not None:
            pen = QPen(QColor(HEALTH_COLORS["alert"]))
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(margin_left, y(self.threshold)), QPointF(margin_left + width, y(self.threshold)))
        pen = QPen(QColor(ACCENT_COLOR))
        pen.setWidthF(2.0)
        painter.setPen(pen)
        line = [QPointF(x(i), y(v)) for i, v in enumerate(self.values)]
        if len(line) == 1:
            painter.drawEllipse(line[0], 3, 3)
        else:
            painter.drawPolyline(line)
            painter.setBrush(QColor(ACCENT_COLOR))
            painter.drawEllipse(line[-1], 3, 3)
        painter.end()
