"""Project settings (the same set the CLI's `project set` edits). The core validates them."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.settings import POLICIES, PRESETS, ProjectSettings, higher_is_better, metrics_for
from app.frontends.gui.common import muted

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
                       "(all rows until a change is detected, then only the rows since it).",
    "Promotion margin": "How much better than the champion a challenger must score on unseen rows to be "
                        "deployed (CLI: --margin).",
    "Test level (alpha)": "The significance level of the paired test a challenger must pass (McNemar for accuracy, "
                          "a paired bootstrap otherwise) (CLI: --alpha).",
    "Cross-validation folds": "Folds of the cross-validation reported at training (CLI: --cv); off reports the "
                              "hold-out only.",
    "Random seed": "Seeds the split and the model so that a training can be repeated (CLI: --seed).",
}


def _explain(form: QFormLayout) -> None:
    """What's this? (Shift+F1, or the dialog's ? button) and a tooltip on every setting and its label."""
    for row in range(form.rowCount()):
        label_item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        field_item = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        if label_item is None or field_item is None or field_item.widget() is None:
            continue
        text = SETTING_HELP[label_item.widget().text()]
        field = field_item.widget()
        for widget in [label_item.widget(), field] + field.findChildren(QWidget):
            widget.setWhatsThis(text)
            widget.setToolTip(text)


def _optional_number(spin, checkbox: QCheckBox) -> QWidget:
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(checkbox)
    row.addWidget(spin, 1)
    checkbox.toggled.connect(spin.setEnabled)
    return holder


class SettingsDialog(QDialog):
    def __init__(self, project: dict, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Settings of {project['name']}")
        self.setObjectName("settingsDialog")
        self.setMinimumWidth(560)
        self.task = project["task"]
        self.original = dict(project["settings"])
        current = ProjectSettings.from_dict(project["settings"])  # its defaults fill any setting not stored
        from app.core.ml.training import PRESET_LABELS

        form = QFormLayout()
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
        self.window_edit.setToolTip("adaptive: the policy fits all rows, the rows since the latest change and the "
                                    "newest 2,000 rows, and keeps the one that scores best on newer rows")
        self.margin = QDoubleSpinBox(decimals=4, minimum=0, maximum=1e9, singleStep=0.005)
        self.margin.setValue(current.margin)
        self.alpha = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=0.999, singleStep=0.01)
        self.alpha.setValue(current.alpha)
        self.cv_folds = QSpinBox(minimum=0, maximum=20)
        self.cv_folds.setValue(current.cv_folds)
        self.cv_folds.setSpecialValueText("off")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setValue(current.seed)

        form.addRow("Model preset", self.preset)
        form.addRow("Preset parameters", self.params)
        form.addRow("Primary metric", self.metric_box)
        form.addRow("Threshold", _optional_number(self.threshold, self.use_threshold))
        form.addRow("Largest allowed drop", self.max_drop)
        form.addRow("Drift alert share", self.drift_share)
        form.addRow("Policy", self.policy)
        form.addRow("Retrain on new rows", _optional_number(self.retrain_rows, self.use_retrain_rows))
        form.addRow("Training window", self.window_edit)
        form.addRow("Promotion margin", self.margin)
        form.addRow("Test level (alpha)", self.alpha)
        form.addRow("Cross-validation folds", self.cv_folds)
        form.addRow("Random seed", self.seed)
        _explain(form)
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(muted("The schedule is edited in the Monitoring tab. Keel checks these values when you save."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

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
        }

    def changes(self) -> dict:
        """Only what the user changed (parameters, when changed, replace the old ones as a whole)."""
        values = self.values()
        return {k: v for k, v in values.items() if self.original.get(k) != v}
