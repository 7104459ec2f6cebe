"""Project settings (the same set the CLI's `project set` edits). The core validates them."""

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.core.domain.entities import Project, Schema
from app.core.domain.settings import POLICIES, PRESETS, ProjectSettings, higher_is_better, metrics_for
from app.frontends.gui.common import BAD_COLOR, muted

RETRAIN_ROWS_OFFERED = 1000  # the value shown when "retrain after N new labelled rows" is switched on
POLICY_TEXT = {
    "off": "off — monitor only",
    "alert": "alert — open alerts, never retrain by itself",
    "approve": "approve — retrain on alerts, wait for my approval to deploy",
    "auto": "auto — retrain on alerts and deploy when the challenger is better",
}


SETTING_HELP = {
    "Model preset": "The scikit-learn model every training of this project uses (CLI: --model). Logistic "
                    "regression and ridge are fast and simple; random forest and histogram gradient boosting "
                    "fit non-linear effects.",
    "Preset parameters": "Parameters passed to the preset's estimator, one KEY=VALUE per line, e.g. "
                         "max_depth=6 (CLI: --param, repeatable). They replace the earlier ones as a whole.",
    "Primary metric": "The metric monitoring tracks, alerts compare and the challenger gate decides on (CLI: --metric).",
    "Threshold": "When checked, an alert opens as soon as the primary metric of a monitored batch is past this value "
                 "(CLI: --threshold).",
    "Largest allowed drop": "An alert opens when the metric is worse than at training by more than this "
                            "(CLI: --max-drop), e.g. 0.05 = five points of accuracy.",
    "Drift alert share": "An alert opens when more than this share of the features drifted in a batch "
                         "(CLI: --drift-share).",
    "Policy": "What Keel does on an alert (CLI: --policy): only record it, alert you, retrain and wait for your "
              "approval, or retrain and deploy a better challenger by itself.",
    "Retrain on new rows": "When checked, retrain once this many new labelled rows have arrived, alert or not "
                           "(CLI: --retrain-after-rows).",
    "Training window": "Which labelled rows a training uses (CLI: --window): all, the newest N, or adaptive "
                       "(of all rows, the rows since the latest change and the newest 2,000 and 1,000 rows: the "
                       "newest 2,000 unless another scores clearly better (a paired test, p < 0.05) on newer rows none "
                       "of them saw; the first model trains on all rows).",
    "Promotion margin": "How much better than the champion a challenger must score on unseen rows to be "
                        "deployed (CLI: --margin). During a drift (a detected change or a metric drop, until two "
                        "challengers in a row are not better) the fresher challenger is deployed unless it scores "
                        "significantly worse.",
    "Test level (alpha)": "The significance level of the paired test a challenger must pass (McNemar for accuracy, "
                          "a paired bootstrap otherwise) (CLI: --alpha). During a drift the same test must not "
                          "show the challenger worse.",
    "Cross-validation folds": "Folds of the cross-validation reported at training (CLI: --cv); off reports the "
                              "hold-out only.",
    "Random seed": "Seeds the split and the model so that a training can be repeated (CLI: --seed).",
    "ID column": "The column that names each row (a customer, a loan) (CLI: --id-column). It is never a feature: "
                 "it cannot be the target or a column the models were trained on. Labels that arrive later are "
                 "joined by it to what was scored; rows scored without one get an ID from Keel.",
    "Prediction log": "Which scored rows the server and predict record, with their prediction and model version "
                      "(CLI: --prediction-log off|full|FRACTION). Automatic: full with an ID column, off without. "
                      "A share records that fraction of the rows.",
    "Prediction log rows": "The most records the prediction log keeps; the oldest go first "
                           "(CLI: --prediction-log-rows).",
    "Prediction log days": "How long a prediction log record is kept, in days (CLI: --prediction-log-days).",
    "Label coverage": "\"Labels are late\" opens when less than this share of a window's rows has its label "
                      "once the label delay has passed (CLI: --label-coverage).",
    "Label delay": "How long after a window labels may take before the coverage is checked, e.g. 7d, 12h, 30m "
                   "(CLI: --label-delay).",
}
PREDICTION_LOG_CHOICES = (("automatic (full with an ID column, off without)", None), ("off", 0.0), ("full", 1.0),
                          ("a share of the rows", "share"))
NO_ID_COLUMN = "(none)"
SHARE_OFFERED = 0.1  # the share shown when "a share of the rows" is chosen


def _explain(form: QFormLayout) -> None:
    """What's this? (Shift+F1, or the dialog's ? button) and a tooltip on every setting and its label."""
    for row in range(form.rowCount()):
        label_item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        field_item = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        label = label_item.widget() if label_item is not None else None
        field = field_item.widget() if field_item is not None else None
        if not isinstance(label, QLabel) or field is None:
            continue
        text = SETTING_HELP[label.text()]
        for widget in [label, field, *field.findChildren(QWidget)]:
            widget.setWhatsThis(text)
            widget.setToolTip(text)


def _optional_number(spin: QAbstractSpinBox, checkbox: QCheckBox) -> QWidget:
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(checkbox)
    row.addWidget(spin, 1)
    checkbox.toggled.connect(spin.setEnabled)
    return holder


Check = Callable[[dict, Callable[[str], None]], object]  # check(changes, answer): answer("") or answer(why not)


class SettingsDialog(QDialog):
    """check(changes, answer) starts the core's check of a set of changes (on a worker) and later calls
    answer("") when they pass or answer(what is wrong); meanwhile Save waits, and while the check
    fails the dialog stays open with the message under the fields. `saved` carries the checked changes."""

    saved = Signal(dict)

    def __init__(self, project: Project, parent: QWidget | None = None, check: Check | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Settings of {project.name}")
        self.setObjectName("settingsDialog")
        self.setMinimumWidth(560)
        self.task = project.task
        self.check = check
        current = project.settings  # its defaults fill any setting not stored
        self.original = current
        tabs = QTabWidget()
        tabs.setObjectName("settingsTabs")
        for title, form in (("Model", self._model_form(current)), ("Alerts and retraining", self._alerts_form(current)),
                            ("Traffic and labels", self._traffic_form(current, project.schema))):
            _explain(form)
            page = QWidget()
            page.setLayout(form)
            tabs.addTab(page, title)
        self.tabs = tabs
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, True)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(muted("The schedule is edited in the Monitoring tab. Keel checks these values when you save."))
        self.error = QLabel()
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {BAD_COLOR}")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons = buttons
        self._checking: dict | None = None  # the changes the core is checking
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _model_form(self, current: ProjectSettings) -> QFormLayout:
        from app.core.domain.settings import PRESET_LABELS

        self.preset = QComboBox()
        for preset in PRESETS[self.task]:
            self.preset.addItem(PRESET_LABELS.get(preset, preset), preset)
        self.preset.setCurrentIndex(self.preset.findData(current.preset))
        self.params = QPlainTextEdit("\n".join(f"{k}={v}" for k, v in current.params.items()))
        self.params.setPlaceholderText("one KEY=VALUE per line, e.g. max_depth=6")
        self.params.setMaximumHeight(70)
        self.metric_box = QComboBox()
        for metric in metrics_for(self.task):
            self.metric_box.addItem(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)", metric)
        self.metric_box.setCurrentIndex(self.metric_box.findData(current.metric))
        self.cv_folds = QSpinBox(minimum=0, maximum=20)
        self.cv_folds.setValue(current.cv_folds)
        self.cv_folds.setSpecialValueText("off")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setValue(current.seed)
        form = QFormLayout()
        form.addRow("Model preset", self.preset)
        form.addRow("Preset parameters", self.params)
        form.addRow("Primary metric", self.metric_box)
        form.addRow("Cross-validation folds", self.cv_folds)
        form.addRow("Random seed", self.seed)
        return form

    def _alerts_form(self, current: ProjectSettings) -> QFormLayout:
        self.threshold = QDoubleSpinBox(decimals=4, minimum=-1e9, maximum=1e9)
        self.use_threshold = QCheckBox("alert when crossed")
        self.use_threshold.setChecked(current.threshold is not None)
        self.threshold.setValue(current.threshold or 0.0)
        self.threshold.setEnabled(self.use_threshold.isChecked())
        self.max_drop = QDoubleSpinBox(decimals=4, minimum=0, maximum=1e9, singleStep=0.01)
        self.max_drop.setValue(current.max_drop)
        self.drift_share = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1.0, singleStep=0.05)
        self.drift_share.setValue(current.drift_share)
        self.policy = QComboBox()
        for policy in POLICIES:
            self.policy.addItem(POLICY_TEXT.get(policy, policy), policy)
        self.policy.setCurrentIndex(self.policy.findData(current.policy))
        self.retrain_rows = QSpinBox(minimum=1, maximum=10**9)
        self.use_retrain_rows = QCheckBox("retrain after")
        self.use_retrain_rows.setChecked(current.retrain_after_rows is not None)
        self.retrain_rows.setValue(current.retrain_after_rows or RETRAIN_ROWS_OFFERED)
        self.retrain_rows.setEnabled(self.use_retrain_rows.isChecked())
        self.retrain_rows.setSuffix(" new labelled rows")
        window = current.window
        self.window_edit = QLineEdit("all" if window is None else str(window))
        self.window_edit.setPlaceholderText("all | N (the newest N rows) | adaptive (chosen on held-out rows)")
        self.margin = QDoubleSpinBox(decimals=4, minimum=0, maximum=1e9, singleStep=0.005)
        self.margin.setValue(current.margin)
        self.alpha = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=0.999, singleStep=0.01)
        self.alpha.setValue(current.alpha)
        form = QFormLayout()
        form.addRow("Threshold", _optional_number(self.threshold, self.use_threshold))
        form.addRow("Largest allowed drop", self.max_drop)
        form.addRow("Drift alert share", self.drift_share)
        form.addRow("Policy", self.policy)
        form.addRow("Retrain on new rows", _optional_number(self.retrain_rows, self.use_retrain_rows))
        form.addRow("Training window", self.window_edit)
        form.addRow("Promotion margin", self.margin)
        form.addRow("Test level (alpha)", self.alpha)
        return form

    def _traffic_form(self, current: ProjectSettings, schema: Schema) -> QFormLayout:
        self.id_column = QComboBox()
        self.id_column.setObjectName("settingsIdColumn")
        self.id_column.setEditable(True)  # any column of the data that is neither the target nor a feature
        self.id_column.addItem(NO_ID_COLUMN)
        if current.id_column:
            self.id_column.addItem(current.id_column)
        self.id_column.setCurrentText(current.id_column or NO_ID_COLUMN)
        editor = self.id_column.lineEdit()  # there is one: the box is editable
        if editor is not None:
            editor.setPlaceholderText("a column that is neither the target nor a feature")
        self.prediction_log = QComboBox()
        self.prediction_log.setObjectName("settingsPredictionLog")
        for text, value in PREDICTION_LOG_CHOICES:
            self.prediction_log.addItem(text, value)
        self.log_share = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=0.999, singleStep=0.05)
        stored = current.prediction_log
        share = stored if stored is not None and stored not in (0.0, 1.0) else None
        shared = share is not None
        self.prediction_log.setCurrentIndex(self.prediction_log.findData("share" if shared else stored))
        self.log_share.setValue(share if share is not None else SHARE_OFFERED)
        self.log_share.setEnabled(shared)
        self.prediction_log.currentIndexChanged.connect(
            lambda _: self.log_share.setEnabled(self.prediction_log.currentData() == "share"))
        log_row = QWidget()
        log_layout = QHBoxLayout(log_row)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.prediction_log, 2)
        log_layout.addWidget(self.log_share, 1)
        self.log_rows = QSpinBox(minimum=1, maximum=2**31 - 1)
        self.log_rows.setGroupSeparatorShown(True)
        self.log_rows.setValue(int(current.prediction_log_rows))
        self.log_rows.setSuffix(" records")
        self.log_days = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=36500, singleStep=1)
        self.log_days.setValue(float(current.prediction_log_days))
        self.log_days.setSuffix(" days")
        self.label_coverage = QDoubleSpinBox(decimals=2, minimum=0, maximum=1, singleStep=0.05)
        self.label_coverage.setValue(current.label_coverage)
        self.label_delay = QLineEdit(str(current.label_delay))
        self.label_delay.setPlaceholderText("7d, 12h, 30m or 45s")
        form = QFormLayout()
        form.addRow("ID column", self.id_column)
        form.addRow("Prediction log", log_row)
        form.addRow("Prediction log rows", self.log_rows)
        form.addRow("Prediction log days", self.log_days)
        form.addRow("Label coverage", self.label_coverage)
        form.addRow("Label delay", self.label_delay)
        return form

    def _id_column_value(self) -> str | None:
        text = self.id_column.currentText().strip()
        return None if text in ("", NO_ID_COLUMN) else text

    def _prediction_log_value(self) -> float | None:
        choice = self.prediction_log.currentData()
        return self.log_share.value() if choice == "share" else choice

    def values(self) -> dict:
        from app.core.domain.settings import parse_param, parse_window

        params = dict(parse_param(line.strip()) for line in self.params.toPlainText().splitlines() if line.strip())
        return {
            "preset": self.preset.currentData(), "params": params, "metric": self.metric_box.currentData(),
            "threshold": self.threshold.value() if self.use_threshold.isChecked() else None,
            "max_drop": self.max_drop.value(), "drift_share": self.drift_share.value(),
            "policy": self.policy.currentData(),
            "retrain_after_rows": self.retrain_rows.value() if self.use_retrain_rows.isChecked() else None,
            "window": parse_window(self.window_edit.text()), "margin": self.margin.value(), "alpha": self.alpha.value(),
            "cv_folds": self.cv_folds.value(), "seed": self.seed.value(),
            "id_column": self._id_column_value(), "prediction_log": self._prediction_log_value(),
            "prediction_log_rows": self.log_rows.value(), "prediction_log_days": self.log_days.value(),
            "label_coverage": self.label_coverage.value(), "label_delay": self.label_delay.text().strip(),
        }

    def changes(self) -> dict:
        """Only what the user changed (parameters, when changed, replace the old ones as a whole)."""
        values = self.values()
        return {k: v for k, v in values.items() if getattr(self.original, k) != v}

    def accept(self) -> None:
        """Save only what the core accepts: on a bad value the dialog stays open and says what and where."""
        from app.core.domain.errors import KeelError

        if self._checking is not None:
            return  # Save pressed again while the core checks
        try:
            changes = self.changes()
        except KeelError as exc:
            self._answered(str(exc))
            return
        if not changes or self.check is None:
            self._close_saved(changes)
            return
        self._checking = changes
        self.buttons.setEnabled(False)
        self.check(changes, self._answered)

    def _answered(self, problem: str) -> None:
        if not isValid(self) or not self.isVisible():
            return  # cancelled while the core checked
        changes, self._checking = self._checking, None
        self.buttons.setEnabled(True)
        if problem:
            self.error.setText(problem)
            self.error.show()
        elif changes is not None:
            self._close_saved(changes)

    def _close_saved(self, changes: dict) -> None:
        self.error.hide()
        super().accept()
        self.saved.emit(changes)
