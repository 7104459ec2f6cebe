"""New project wizard: pick a file, preview it, choose the target (task guessed), preset,
metric and threshold; the inferred schema is shown before anything is created."""

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.core.domain.data_files import file_dialog_filter
from app.core.domain.project_name import is_valid_project_name, suggest_project_name
from app.core.domain.settings import (
    PRESETS,
    default_metric,
    higher_is_better,
    metrics_for,
)
from app.frontends.gui import file_dialogs
from app.frontends.gui.common import (
    BAD_COLOR,
    DataFrameModel,
    RecordsModel,
    fmt_number,
    make_table,
    muted,
)

if TYPE_CHECKING:
    from app.core.domain.entities import Schema
    from app.core.domain.results import ProjectCreated
    from app.core.ml.datasets import RawTable
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.jobs import Job

PREVIEW_ROWS = 200


class FilePage(QWizardPage):
    def __init__(self, wizard: "NewProjectWizard") -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("Pick a data file")
        self.setSubTitle("A CSV (or TSV, gzip) or Parquet file with one row per example and the target as a column.")
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setObjectName("wizardPath")
        self.path.setPlaceholderText("/path/to/data.csv")
        self.path.editingFinished.connect(self.load)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        self.status = muted("No file yet.")
        layout.addWidget(self.status)
        self.preview = DataFrameModel()
        view = QTableView()
        view.setModel(self.preview)
        view.setAlternatingRowColors(True)
        layout.addWidget(view, 1)
        self.raw: RawTable | None = None  # the file as read, once it is
        self._loaded_path: str | None = None

    def browse(self) -> None:
        path = file_dialogs.open_file(self, "Data file", str(Path.home()),
                                      file_dialog_filter())
        if path:
            self.path.setText(path)
            self.load()

    def load(self) -> None:
        path = self.path.text().strip()
        if not path or path == self._loaded_path:
            return
        self._loaded_path = path
        self.raw = None
        self.completeChanged.emit()
        self.status.setText(f"Reading {Path(path).name}…")

        keel = self.wiz.controller.keel

        def read(job: "Job") -> "tuple[RawTable, set[str]]":
            from app.core.ml import datasets

            # the names taken, for the suggested project name: read here too, never on the GUI thread
            return datasets.read_table(path), set(keel.project_names()) if keel is not None else set()

        def done(result: "tuple[RawTable, set[str]]") -> None:
            raw, taken_names = result
            if self.path.text().strip() != path:
                return
            self.raw = raw
            self.preview.set_frame(raw.frame.head(PREVIEW_ROWS))
            warnings = f" · {len(raw.warnings)} warning(s): {raw.warnings[0]}" if raw.warnings else ""
            self.status.setText(f"{raw.source}: {len(raw.frame)} rows × {len(raw.frame.columns)} columns"
                                f" (first {min(PREVIEW_ROWS, len(raw.frame))} shown){warnings}")
            self.wiz.file_loaded(raw, path, taken_names)
            self.completeChanged.emit()

        def failed(message: str, details: str) -> None:
            if self.path.text().strip() == path:
                self._loaded_path = None
                self.status.setText(f"<span style='color:{BAD_COLOR}'>Cannot use this file: {message}</span>")

        self.wiz.controller.run("wizard", "read", f"Reading {Path(path).name}", read, on_done=done, on_error=failed)

    def isComplete(self) -> bool:
        return self.raw is not None


class TargetPage(QWizardPage):
    def __init__(self, wizard: "NewProjectWizard") -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("Target and model")
        self.setSubTitle("Choose the column to predict. The task is guessed from it; change it if the guess is wrong.")
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.name.setObjectName("wizardName")
        self.target = QComboBox()
        self.target.setObjectName("wizardTarget")
        self.task = QComboBox()
        self.task.addItems(["classification", "regression"])
        self.preset = QComboBox()
        self.metric_box = QComboBox()
        self.use_threshold = QCheckBox("Alert when the metric crosses")
        self.threshold = QDoubleSpinBox()
        self.threshold.setDecimals(4)
        self.threshold.setRange(-1e9, 1e9)
        self.threshold.setValue(0.8)
        self.threshold.setEnabled(False)
        self.use_threshold.toggled.connect(self.threshold.setEnabled)
        self.guess = muted()
        self.id_column = QComboBox()
        self.id_column.setObjectName("wizardIdColumn")
        self.id_hint = muted()
        self.id_hint.setWordWrap(True)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.use_threshold)
        threshold_row.addWidget(self.threshold, 1)
        form.addRow("Project name", self.name)
        form.addRow("Target column", self.target)
        form.addRow("", self.guess)
        form.addRow("ID column", self.id_column)
        form.addRow("", self.id_hint)
        form.addRow("Task", self.task)
        form.addRow("Model preset", self.preset)
        form.addRow("Primary metric", self.metric_box)
        form.addRow("Threshold", threshold_row)
        self.name.textChanged.connect(self.completeChanged)
        self.target.currentTextChanged.connect(self.target_changed)
        self.task.currentTextChanged.connect(self.task_changed)

    def fill(self, raw: "RawTable", path: str, taken_names: set[str]) -> None:
        """The page for a file just read; taken_names: the workspace's project names (read with the file)."""
        self.name.setText(suggest_project_name(path, taken_names))
        columns = [str(c) for c in raw.frame.columns]
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItems(columns)
        likely = next((c for c in reversed(columns) if c.lower() in ("target", "label", "y", "class", "default")),
                      columns[-1] if columns else "")
        self.target.setCurrentText(likely)
        self.target.blockSignals(False)
        self.id_column.clear()
        self.id_column.addItem("(none)", None)
        for column in columns:
            self.id_column.addItem(column, column)
        self.target_changed(likely)

    def target_changed(self, column: str) -> None:
        raw = self.wiz.raw
        if raw is None or column not in raw.frame.columns:
            return
        from app.core.ml.datasets import guess_task

        task = guess_task(raw.frame[column])
        self.guess.setText(f"“{column}” looks like a {task} target.")
        self.suggest_id_column(raw, column)
        self.task.setCurrentText(task)
        self.task_changed(task)

    def suggest_id_column(self, raw: "RawTable", target: str) -> None:
        """Name the ID-like columns of the file read; the choice stays the user's (none by default)."""
        from app.core.ml.datasets import id_column_candidates

        candidates = id_column_candidates(raw.frame, target)
        if candidates:
            self.id_hint.setText(f"“{candidates[0]}” looks like an ID (one value per row, never a feature): "
                                 "choose it to join labels that arrive later to what was scored.")
        else:
            self.id_hint.setText("No column looks like an ID. Without one, Keel assigns an ID to each row it scores.")

    def task_changed(self, task: str) -> None:
        from app.core.domain.settings import PRESET_LABELS

        self.preset.clear()
        for preset in PRESETS[task]:
            self.preset.addItem(PRESET_LABELS.get(preset, preset), preset)
        self.preset.setCurrentIndex(self.preset.findData("hgb"))
        self.metric_box.clear()
        for metric in metrics_for(task):
            self.metric_box.addItem(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)", metric)
        self.metric_box.setCurrentIndex(self.metric_box.findData(default_metric(task)))
        self.threshold.setValue(0.8 if task == "classification" else 0.5)

    def isComplete(self) -> bool:
        return is_valid_project_name(self.name.text().strip()) and bool(self.target.currentText())

    def settings(self) -> dict[str, str | float]:
        settings: dict[str, str | float] = {"preset": self.preset.currentData(), "metric": self.metric_box.currentData()}
        if self.id_column.currentData():
            settings["id_column"] = self.id_column.currentData()
        if self.use_threshold.isChecked():
            settings["threshold"] = self.threshold.value()
        return settings


class SchemaPage(QWizardPage):
    def __init__(self, wizard: "NewProjectWizard") -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("Schema")
        self.setSubTitle("What Keel inferred from the file. Every later batch is checked against it.")
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.schema_rows = RecordsModel([("Column", "name"), ("Kind", "kind"), ("Missing", "missing"),
                                   ("Distinct / range", "summary")])
        self.view, _ = make_table(self.schema_rows, sortable=False)
        layout.addWidget(self.view, 1)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {BAD_COLOR}")
        layout.addWidget(self.error)
        self.train_now = QCheckBox("Train and deploy v1 now")
        self.train_now.setObjectName("wizardTrainNow")
        self.train_now.setChecked(True)
        self.train_now.setToolTip("Right after the project is created, train its first model on this file and put "
                                  "it in production, so monitoring and the scoring server work at once")
        layout.addWidget(self.train_now)
        self.schema: Schema | None = None  # inferred from the file, target and task when the page opens

    def initializePage(self) -> None:
        from app.core.domain.errors import KeelError
        from app.core.ml.datasets import infer_schema

        page = self.wiz.target_page
        target, task = page.target.currentText(), page.task.currentText()
        self.schema, self.error_text = None, ""
        raw = self.wiz.raw
        if raw is None:  # not reached: the file page is complete only once a file is read
            return
        try:
            schema = infer_schema(raw, target, task, id_column=page.id_column.currentData())
        except KeelError as exc:
            self.error.setText(str(exc))
            self.schema_rows.set_rows([])
            return
        self.schema = schema
        self.error.setText("")
        rows = []
        for column in schema.columns:
            if column.mean is not None:
                summary = f"{fmt_number(column.minimum)} … {fmt_number(column.maximum)}"
            elif column.n_unique is not None:
                summary = f"{column.n_unique} distinct"
            else:
                summary = ""
            missing = "" if column.missing_rate is None else f"{column.missing_rate:.1%}"
            rows.append({"name": column.name, "kind": column.kind, "missing": missing, "summary": summary})
        rows.append({"name": target, "kind": f"target ({task}, {schema.target_kind})", "missing": "",
                     "summary": ""})
        if page.id_column.currentData():
            rows.append({"name": page.id_column.currentData(), "kind": "ID (never a feature)", "missing": "",
                         "summary": ""})
        self.schema_rows.set_rows(rows)
        self.view.resizeColumnsToContents()
        self.summary.setText(f"<b>{page.name.text()}</b>: predict <b>{target}</b> ({task}) from "
                             f"{len(schema.features)} feature column(s), {page.preset.currentText()}, "
                             f"metric {page.metric_box.currentData()}.")

    def isComplete(self) -> bool:
        return self.schema is not None


class NewProjectWizard(QWizard):
    def __init__(self, controller: "Controller", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("New project")
        self.setObjectName("newProjectWizard")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setMinimumSize(760, 560)
        self.raw: RawTable | None = None
        self.path = ""
        self.file_page = FilePage(self)
        self.target_page = TargetPage(self)
        self.schema_page = SchemaPage(self)
        for page in (self.file_page, self.target_page, self.schema_page):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Create project")
        self.job: Job | None = None

    def file_loaded(self, raw: "RawTable", path: str, taken_names: set[str]) -> None:
        self.raw, self.path = raw, path
        self.target_page.fill(raw, path, taken_names)

    def accept(self) -> None:
        page = self.target_page
        name = page.name.text().strip()
        train_now = self.schema_page.train_now.isChecked()

        def created(_result: "ProjectCreated") -> None:
            if train_now:
                self.controller.train_and_deploy_first(name)

        self.job = self.controller.create_project(name, self.path, page.target.currentText(),
                                                  page.task.currentText(), page.settings(), on_done=created)
        super().accept()
