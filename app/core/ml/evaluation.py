"""Metrics, confusion matrices and the champion-vs-challenger statistical tests."""

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from app.core.domain.decisions import BootstrapTest, McNemarTest
from app.core.domain.measurements import ClassMetrics
from app.core.domain.settings import higher_is_better

# An array-like column (a numpy array, a pandas Series, a list): numpy's ArrayLike also admits
# scalars, which these functions index and measure.
Values = Any
MetricFunction = Callable[..., float]  # (true values, predictions) -> the metric


def compute_metrics(task: str, y_true: Values, y_pred: Values, proba: Values | None = None,
                    classes: Values | None = None) -> dict[str, float]:
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task == "regression":
        return {
            "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        }
    result = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    if proba is not None and classes is not None:
        result.update(_probability_metrics(y_true, np.asarray(proba), list(classes)))
    return result


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean recall over the classes present. A batch whose labels are all of a class the model never
    saw makes scikit-learn warn that the predictions hold classes the labels lack: the value is still the
    one wanted, and ingest has already told the user about the new class, so the warning is not passed on."""
    from sklearn import metrics as skm

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(skm.balanced_accuracy_score(y_true, y_pred))


def _probability_metrics(y_true: Values, proba: np.ndarray, classes: list) -> dict[str, float]:
    from sklearn import metrics as skm

    out = {}
    present = set(np.unique(y_true))
    try:
        out["log_loss"] = float(skm.log_loss(y_true, proba, labels=classes))
    except ValueError:
        out["log_loss"] = float("nan")
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true == classes[1], proba[:, 1])) if len(present) == 2 else float("nan")
        elif len(present) == len(classes):
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
        else:
            out["roc_auc"] = float("nan")
    except ValueError:
        out["roc_auc"] = float("nan")
    return out


def confusion(y_true: Values, y_pred: Values, classes: Values) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix

    classes = list(classes)
    if len(y_true) and not np.isin(np.asarray(y_true), np.asarray(classes, dtype=object)).any():
        # every label is a class the model never saw: sklearn raises ("At least one label
        # specified must be in y_true"), which failed the monitoring cycle on that batch forever
        return [[0] * len(classes) for _ in classes]
    return confusion_matrix(y_true, y_pred, labels=classes).tolist()


def per_class_metrics(y_true: Values, y_pred: Values, classes: Values) -> dict[str, ClassMetrics]:
    """Each class's precision, recall, F1 and support, by the class's name."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0
    )
    return {
        str(c): ClassMetrics(precision=float(p), recall=float(r), f1=float(f), support=int(s))
        for c, p, r, f, s in zip(classes, precision, recall, f1, support)
    }


def is_better(metric: str, candidate: float, reference: float, margin: float = 0.0) -> bool:
    """candidate beats reference by at least margin, in the metric's own direction."""
    if candidate is None or reference is None or np.isnan(candidate) or np.isnan(reference):
        return False
    if higher_is_better(metric):
        return candidate >= reference + margin
    return candidate <= reference - margin


def mcnemar_test(champion_correct: Values, challenger_correct: Values) -> McNemarTest:
    """Exact McNemar test on paired correctness (one-sided: challenger better)."""
    champion_correct = np.asarray(champion_correct, dtype=bool)
    challenger_correct = np.asarray(challenger_correct, dtype=bool)
    only_challenger = int(np.sum(challenger_correct & ~champion_correct))
    only_champion = int(np.sum(champion_correct & ~challenger_correct))
    discordant = only_challenger + only_champion
    if discordant == 0:
        p_value = 1.0
    else:
        p_value = float(stats.binomtest(only_challenger, discordant, 0.5, alternative="greater").pvalue)
    return McNemarTest(only_challenger_right=only_challenger, only_champion_right=only_champion, p_value=p_value)


def paired_bootstrap_test(metric_fn: MetricFunction, y_true: Values, champion_pred: Values,
                          challenger_pred: Values, higher_better: bool, n_boot: int = 1000, seed: int = 0,
                          challenger_metric_fn: MetricFunction | None = None) -> BootstrapTest:
    """One-sided paired bootstrap: share of resamples where the challenger is not better.
    challenger_metric_fn: for the challenger's outputs when they need other reading than the
    champion's (probability columns of a different class set); default metric_fn."""
    challenger_fn = challenger_metric_fn or metric_fn
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    n = len(y_true)
    observed = challenger_fn(y_true, challenger_pred) - metric_fn(y_true, champion_pred)
    not_better = 0
    for _ in range(n_boot):
        index = rng.integers(0, n, n)
        diff = challenger_fn(y_true[index], _take(challenger_pred, index)) - metric_fn(y_true[index], _take(champion_pred, index))
        if (diff <= 0) if higher_better else (diff >= 0):
            not_better += 1
    return BootstrapTest(observed_difference=float(observed), p_value=(not_better + 1) / (n_boot + 1))


def _take(values: Values, index: np.ndarray) -> np.ndarray:
    return np.asarray(values)[index]
