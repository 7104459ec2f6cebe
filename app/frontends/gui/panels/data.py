"""Data: dataset versions, the schema, the last validation report, a preview, Add data…"""

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.entities import DatasetVersion, Schema
from app.frontends.gui.common import (
    DataFrameModel,
    Record,
    RecordsModel,
    fmt_number,
    make_table,
    muted,
    selected_records,
)
from app.frontends.gui.panels.base import Panel, action_button

if TYPE_CHECKING:
    import pandas as pd

    from app.core.services.lifecycle import Keel
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.jobs import Job

PREVIEW_ROWS = 100_000  # the view reads cells on demand, so a large preview stays cheap


def _column_stats(column: Record) -> str:
    if column.get("kind") == "categorical":
        shown = ", ".join(column.get("categories", [])[:6])
        return f"{column.get('n_unique', '?')} categories: {shown}{'…' if column.get('n_unique', 0) > 6 else ''}"
    if "mean" in column:
        return f"min {fmt_number(column['min'])} · mean {fmt_number(column['mean'])} · max {fmt_number(column['max'])}"
    if "min" in column:
        return f"{column['min']} … {column['max']}"
    return ""


def report_text(version: Record) -> str:
    """A dataset version's document (DatasetVersion.to_json()) and its ingest report, as text."""
    report = version.get("report") or {}
    lines = [f"Dataset v{version['version']} from {version['source']}",
             f"rows read: {report.get('rows_read', '?')}, kept: {report.get('rows', version['rows'])}, "
             f"duplicates dropped: {report.get('duplicates_dropped', 0)}",
             f"labelled rows: {report.get('labelled_rows', version['labelled_rows'])}, "
             f"unlabelled rows: {report.get('unlabelled_rows', 0)}", ""]
    missing = {name: info.get("missing", 0) for name, info in (report.get("columns") or {}).items() if info.get("missing")}
    lines.append("Missing values: " + (", ".join(f"{k} {v}" for k, v in missing.items()) if missing else "none"))
    warnings = report.get("warnings") or []
    lines.append("")
    lines.append(f"Warnings ({len(warnings)}):" if warnings else "No warnings: the file matched the schema.")
    lines.extend(f"  • {w}" for w in warnings)
    return "\n".join(lines)


class DataPanel(Panel[tuple[Schema, list[DatasetVersion]]]):
    title = "Data"

    def __init__(self, controller: "Controller", actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        layout, top = self.page_layout("Dataset versions")
        top.addWidget(muted("Drop a CSV or Parquet file anywhere on the window to add it."))
        self.preview_button = QPushButton("Preview selected")
        self.preview_button.clicked.connect(self.preview_selected)
        top.addWidget(self.preview_button)
        top.addWidget(action_button(actions["add_data"], primary=True))
        top.addWidget(action_button(actions["add_labels"]))

        self.versions = RecordsModel([
            ("Version", "version"), ("Added", lambda r: r["created_local"]), ("Rows", "rows"),
            ("Labelled", "labelled_rows"), ("Parent", lambda r: f"v{r['parent_version']}" if r["parent_version"] else ""),
            ("Content hash", lambda r: r["content_sha256"][:12]), ("Source", "source"),
        ])
        self.versions_view, _ = make_table(self.versions)
        self.versions_view.setObjectName("datasetVersions")
        self.versions_view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.versions_view.doubleClicked.connect(lambda *_: self.preview_selected())

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("dataSplitter")
        self.splitter.addWidget(self.versions_view)
        lower = QTabWidget()
        self.schema = RecordsModel([("Column", "name"), ("Kind", "kind"), ("Missing at creation", "missing"),
                                    ("Summary", _column_stats)])
        self.schema_view, _ = make_table(self.schema)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.preview_model = DataFrameModel()
        self.preview_view = QTableView()
        self.preview_view.setObjectName("preview")
        self.preview_view.setModel(self.preview_model)
        self.preview_view.setAlternatingRowColors(True)
        self.preview_status = muted("Select a version and click Preview.")
        preview = QWidget()
        preview_layout = QVBoxLayout(preview)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview_status)
        preview_layout.addWidget(self.preview_view)
        lower.addTab(self.schema_view, "Schema")
        lower.addTab(self.report, "Validation report")
        lower.addTab(preview, "Preview")
        self.lower_tabs = lower
        self.splitter.addWidget(lower)
        self.splitter.setSizes([220, 380])
        layout.addWidget(self.splitter, 1)

    def clear(self) -> None:
        self.versions.set_rows([])
        self.schema.set_rows([])
        self.report.setPlainText("")
        self.preview_model.set_frame(None)

    def read(self, keel: "Keel", name: str) -> tuple[Schema, list[DatasetVersion]]:
        return keel.project(name).schema, keel.dataset_versions(name)

    def show_data(self, data: tuple[Schema, list[DatasetVersion]]) -> None:
        schema, versions = data
        by_id: dict[int | None, int] = {version.id: version.version for version in versions}
        rows = [{**version.to_json(), "parent_version": by_id.get(version.parent_id),  # a table row
                 "created_local": self._local(version.created_at)} for version in versions]
        was_empty = not self.versions.rows
        self.versions.set_rows(list(reversed(rows)))
        if was_empty:  # later refreshes keep the widths the user may have set
            self.versions_view.resizeColumnsToContents()
        classes = schema.classes or ()
        self.schema.set_rows([{**c.to_json(), "missing": "" if c.missing_rate is None else f"{c.missing_rate:.1%}"}
                              for c in schema.columns]
                             + [{"name": f"{schema.target} (target)", "kind": schema.target_kind,
                                 "missing": "", "n_unique": len(classes), "categories": [str(c) for c in classes]}])
        if was_empty:
            self.schema_view.resizeColumnsToContents()
        chosen = selected_records(self.versions_view, self.versions)
        if chosen or rows:
            self.report.setPlainText(report_text(chosen[0] if chosen else rows[-1]))

    @staticmethod
    def _local(iso: str | None) -> str:
        from app.frontends.gui.common import local_time

        return local_time(iso)

    def _selection_changed(self, *_: object) -> None:
        chosen = selected_records(self.versions_view, self.versions)
        if chosen:
            self.report.setPlainText(report_text(chosen[0]))
        self.update_buttons()

    def update_buttons(self) -> None:
        self.preview_button.setEnabled(bool(selected_records(self.versions_view, self.versions)))

    def preview_selected(self) -> None:
        chosen = selected_records(self.versions_view, self.versions)
        keel = self.keel
        if not chosen or keel is None:
            return
        version, name = chosen[0]["version"], self.project
        self.preview_status.setText(f"Loading dataset v{version}…")
        self.lower_tabs.setCurrentIndex(2)

        def load(job: "Job") -> "pd.DataFrame":
            return keel.dataset_frame(name, version, rows=PREVIEW_ROWS)

        def show(frame: "pd.DataFrame") -> None:
            self.preview_model.set_frame(frame)
            self.preview_view.resizeColumnsToContents()
            self.preview_status.setText(f"Dataset v{version}: {len(frame)} rows × {len(frame.columns)} columns "
                                        "(cleaned, as stored)")

        self.controller.run(f"{name}/view", "preview", f"Loading dataset v{version}", load, project=name, on_done=show)
