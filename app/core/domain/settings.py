"""Project settings: one set, edited by the CLI and the GUI alike (docs/cli.md, "Settings")."""

import math
from dataclasses import asdict, dataclass, field, fields

from app.core.domain.errors import KeelError

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("r2", "rmse", "mae")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
PRESETS = {
    "classification": ("logreg", "random_forest", "hgb"),
    "regression": ("ridge", "random_forest", "hgb"),
}
PRESET_LABELS = {
    "logreg": "Logistic regression",
    "ridge": "Ridge regression",
    "random_forest": "Random forest",
    "hgb": "Histogram gradient boosting",
}
POLICIES = ("off", "alert", "approve", "auto")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def past_threshold(metric: str, value: float, threshold: float) -> bool:
    """value is past the floor (or, for an error metric, the ceiling)."""
    return value < threshold if higher_is_better(metric) else value > threshold


def drop_from(metric: str, training_value: float, value: float) -> float:
    """How much worse value is than training_value, in the metric's units (positive: worse)."""
    return training_value - value if higher_is_better(metric) else value - training_value


def metrics_for(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def default_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"


@dataclass(frozen=True)
class ProjectSettings:
    """A project's settings (a change is a new value: dataclasses.replace, then validate)."""

    preset: str = "hgb"
    params: dict = field(default_factory=dict)
    metric: str = "accuracy"
    threshold: float | None = None
    max_drop: float = 0.05
    drift_share: float = 0.3
    policy: str = "alert"
    retrain_after_rows: int | None = None
    # "adaptive": of all rows, the rows since the latest change and the newest 2,000 and 1,000 rows, the
    # window that scores best on newer rows none of them saw (app/core/services/policy.py).
    # None: all rows; int: the newest N rows.
    window: int | str | None = "adaptive"
    margin: float = 0.01
    alpha: float = 0.05
    schedule: str = "every 10m"  # "every <N><s|m|h|d>" or "cron <5-field expression>"
    schedule_enabled: bool = True
    cv_folds: int = 0
    seed: int = 42
    # A column that names each row (a customer, a loan): never a feature; it joins late labels to
    # what was scored. None: the project has none (the CLI never infers one).
    id_column: str | None = None
    # Share of scored rows recorded in the prediction log: 0 off, 1 full, or a sampled share.
    # None: full with an ID column, off without (effective_prediction_log gives the number).
    prediction_log: float | None = None
    prediction_log_rows: int = 1_000_000
    prediction_log_days: float = 90.0
    label_coverage: float = 0.5  # "labels are late" below this share of a window's rows...
    label_delay: str = "7d"  # ...once this long has passed since the window ended

    def effective_prediction_log(self) -> float:
        if self.prediction_log is None:
            return 1.0 if self.id_column else 0.0
        return float(self.prediction_log)

    def label_delay_seconds(self) -> int:
        return parse_duration(self.label_delay, "--label-delay")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ProjectSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self, task: str) -> "ProjectSettings":
        if self.preset not in PRESETS[task]:
            raise KeelError(f"unknown preset {self.preset!r} for {task}: choose one of {', '.join(PRESETS[task])}")
        if self.metric not in metrics_for(task):
            raise KeelError(f"unknown metric {self.metric!r} for {task}: choose one of {', '.join(metrics_for(task))}")
        if self.policy not in POLICIES:
            raise KeelError(f"unknown policy {self.policy!r}: choose one of {', '.join(POLICIES)}")
        for flag, value in (("--threshold", self.threshold), ("--max-drop", self.max_drop), ("--margin", self.margin)):
            # NaN passes every range check below and then silently turns its rule off
            # (no comparison with NaN is true): no alert would ever fire, no challenger ever win
            if value is not None and not math.isfinite(value):
                raise KeelError(f"{flag} must be a finite number, got {value}")
        if not 0 < self.drift_share <= 1:
            raise KeelError(f"--drift-share must be in (0, 1], got {self.drift_share}")
        if not 0 < self.alpha < 1:
            raise KeelError(f"--alpha must be in (0, 1), got {self.alpha}")
        if self.max_drop < 0 or self.margin < 0:
            raise KeelError("--max-drop and --margin must not be negative")
        if self.retrain_after_rows is not None and self.retrain_after_rows < 1:
            raise KeelError("--retrain-after-rows must be at least 1")
        if isinstance(self.window, int) and self.window < 1:
            raise KeelError("--window must be a positive number of rows, 'all' or 'adaptive'")
        if isinstance(self.window, str) and self.window != "adaptive":
            raise KeelError(f"--window must be a number of rows, 'all' or 'adaptive', got {self.window!r}")
        parse_schedule(self.schedule)
        self._validate_traffic()
        return self

    def _validate_traffic(self) -> None:
        if self.id_column is not None and not str(self.id_column).strip():
            raise KeelError("--id-column must name a column")
        if self.prediction_log is not None and not 0.0 <= self.prediction_log <= 1.0:
            raise KeelError(f"--prediction-log must be off, full or a fraction in [0, 1], got {self.prediction_log}")
        if int(self.prediction_log_rows) < 1:
            raise KeelError("--prediction-log-rows must be at least 1")
        if not math.isfinite(self.prediction_log_days) or self.prediction_log_days <= 0:
            raise KeelError("--prediction-log-days must be a positive number of days")
        if not 0.0 <= self.label_coverage <= 1.0:
            raise KeelError(f"--label-coverage must be in [0, 1], got {self.label_coverage}")
        parse_duration(self.label_delay, "--label-delay")


def parse_window(text: str) -> int | str | None:
    text = text.strip().lower()
    if text in ("all", ""):
        return None
    if text == "adaptive":
        return "adaptive"
    try:
        return int(text)
    except ValueError:
        raise KeelError(f"--window must be a number of rows, 'all' or 'adaptive', got {text!r}") from None


INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_schedule(text: str) -> tuple[str, str | int]:
    """'every 10m' -> ('interval', 600); 'cron */5 * * * *' -> ('cron', '*/5 * * * *')."""
    text = (text or "").strip()
    if text.startswith("cron "):
        expression = text[5:].strip()
        if len(expression.split()) != 5:
            raise KeelError(f"cron expression must have 5 fields (minute hour day month weekday), got {expression!r}")
        return "cron", expression
    parts = text.split()
    if len(parts) == 2 and parts[0] == "every" and parts[1][-1:] in INTERVAL_UNITS and parts[1][:-1].isdigit():
        seconds = int(parts[1][:-1]) * INTERVAL_UNITS[parts[1][-1]]
        if seconds < 1:
            raise KeelError("schedule interval must be at least 1 second")
        return "interval", seconds
    raise KeelError(f"schedule must look like 'every 10m' (s, m, h, d) or a cron expression, got {text!r}")


def parse_prediction_log(text: str) -> float:
    """'off' -> 0.0, 'full' -> 1.0, '0.25' -> 0.25 (the share of scored rows recorded)."""
    word = text.strip().lower()
    if word in ("off", "full"):
        return 0.0 if word == "off" else 1.0
    try:
        share = float(word)
    except ValueError:
        raise KeelError(f"--prediction-log must be off, full or a fraction in [0, 1], got {text!r}") from None
    if not 0.0 <= share <= 1.0:
        raise KeelError(f"--prediction-log must be off, full or a fraction in [0, 1], got {text!r}")
    return share


def parse_duration(text: str, flag: str) -> int:
    """'7d', '12h', '30m', '45s' -> seconds."""
    word = str(text).strip().lower()
    if word[-1:] in INTERVAL_UNITS and word[:-1].isdigit():
        return int(word[:-1]) * INTERVAL_UNITS[word[-1]]
    raise KeelError(f"{flag} must look like 7d, 12h, 30m or 45s, got {text!r}")


def parse_param(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as int, float, bool, None or string."""
    if "=" not in text:
        raise KeelError(f"--param must be KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise KeelError(f"--param must be KEY=VALUE, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered in ("none", "null"):
        return key, None
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, raw
