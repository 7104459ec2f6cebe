"""A background refresh (a monitoring cycle of any project, a batch arriving) keeps what the
user set up in a table: the selection, the sort order, the scroll position and the column
widths, and touches only the rows that changed."""

from PySide6.QtCore import Qt

from app.demo.simulator import make_batch
from app.frontends.gui.common import RecordsModel, selected_records


def test_data_selection_sort_and_scroll_survive_refreshes(qtbot, backlog_window, tmp_path):
    window = backlog_window
    data = window.panels["data"]
    window.tabs.setCurrentWidget(data)
    view, model = data.versions_view, data.versions
    qtbot.waitUntil(lambda: len(model.rows) == 10, timeout=10000)
    view.setFixedHeight(120)  # a short table: it scrolls
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # oldest first, by version
    view.scrollToBottom()
    qtbot.waitUntil(lambda: view.verticalScrollBar().value() > 0, timeout=2000)
    scrolled = view.verticalScrollBar().value()
    last = view.model().rowCount() - 1
    view.selectRow(last)
    chosen = selected_records(view, model)[0]["version"]
    view.setColumnWidth(1, 77)
    assert data.preview_button.isEnabled()
    resets = []
    model.modelReset.connect(lambda: resets.append(True))

    window.controller.registry_changed.emit()  # e.g. another project's monitoring cycle
    qtbot.waitUntil(lambda: data.up_to_date, timeout=5000)
    batch = tmp_path / "late.csv"
    make_batch(120, seed=77).to_csv(batch, index=False)
    window.controller.keel.ingest("demo-credit", batch)  # a new batch arrives in the background
    window.controller.registry_changed.emit()
    qtbot.waitUntil(lambda: len(model.rows) == 11, timeout=10000)

    assert resets == []
    assert [r["version"] for r in selected_records(view, model)] == [chosen]
    assert data.preview_button.isEnabled()
    header = view.horizontalHeader()
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (0, Qt.SortOrder.AscendingOrder)
    assert view.verticalScrollBar().value() == scrolled
    assert view.columnWidth(1) == 77
    assert f"Dataset v{chosen} " in data.report.toPlainText()  # the report of the selected version stays


def test_records_model_inserts_new_rows_and_repaints_changed_ones(qtbot):
    model = RecordsModel([("Version", "version"), ("Status", "status")])
    model.set_rows([{"id": 2, "version": 2, "status": "open"}, {"id": 1, "version": 1, "status": "open"}])
    events = []
    model.modelReset.connect(lambda: events.append("reset"))
    model.rowsInserted.connect(lambda parent, first, last: events.append(("inserted", first, last)))
    model.dataChanged.connect(lambda top, bottom: events.append(("changed", top.row(), bottom.row())))
    model.set_rows([{"id": 3, "version": 3, "status": "open"}, {"id": 2, "version": 2, "status": "open"},
                    {"id": 1, "version": 1, "status": "recovered"}])
    assert events == [("changed", 1, 1), ("inserted", 0, 0)]
    assert [model.index(r, 1).data() for r in range(3)] == ["open", "open", "recovered"]
    events.clear()
    model.set_rows([{"id": 9, "version": 9, "status": "new"}])  # another project: a different set of rows
    assert events == ["reset"]
