"""Per-feature drift statistics, prediction drift and the label-free performance estimate.

The reference (a model's training rows) is summarised once per model: sorted numeric
values, quantile bin edges and proportions, category counts. Comparing a batch then
costs one sort per numeric column and one value count per categorical column.

Decisions rest on effect sizes (docs/cli.md, "Settings"): a numeric feature drifts when
PSI > 0.2 or the Wasserstein distance normalised by the reference's standard
deviation > 0.1; a categorical (or boolean) one when PSI > 0.2 or the Jensen-Shannon
distance > 0.1. On large samples every p-value is tiny, so a p-value alone never
flags drift; but on a small batch (a few hundred rows) these effect sizes exceed
their limits by sampling noise alone, so the effect must also be beyond noise:
KS or binned chi-square p < 0.001 (numeric), chi-square p < 0.001 (categorical).
"""

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from app.core.domain.measurements import CategoricalDrift, ChiSquare, FeatureDrift, NumericDrift
from app.core.ml.evaluation import Values

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite
PSI_LIMIT = 0.2
WASSERSTEIN_LIMIT = 0.1
JS_LIMIT = 0.1
NOISE_P_VALUE = 0.001  # the effect must also be unlikely under sampling noise alone
MISSING = "(missing)"


# --------------------------------------------------------------------------- statistics
def probability_summary(proba: np.ndarray | list) -> np.ndarray:
    """One number per row: the second class's probability (binary), else the top probability."""
    proba = np.asarray(proba, dtype=float)
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)


def psi(reference_shares: np.ndarray, current_shares: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index: sum((cur - ref) * ln(cur / ref)) over matching bins."""
    ref = np.maximum(np.asarray(reference_shares, dtype=float), floor)
    cur = np.maximum(np.asarray(current_shares, dtype=float), floor)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def cdf_distances(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float]:
    """Exact Wasserstein-1 distance and KS statistic of two sorted samples (the same
    values as scipy.stats.wasserstein_distance and ks_2samp), in one merge."""
    n, m = len(reference_sorted), len(current_sorted)
    merged = np.concatenate([reference_sorted, current_sorted])
    # both halves are sorted runs, so a stable (tim)sort is a cheap merge
    order = np.argsort(merged, kind="stable")
    merged = merged[order]  # each temporary is dropped as soon as the next exists: ~3 column-sized
    gaps = np.diff(merged)  # arrays alive at once instead of ~9 (1M x 25 columns on 2 threads)
    del merged
    current_below = np.cumsum(order[:-1] >= n, dtype=np.intp)
    del order
    # |F_ref - F_cur| at each gap, scaled by n*m to stay in integers; computed in place
    gap_cdf = np.arange(1, n + m, dtype=current_below.dtype)
    gap_cdf -= current_below
    gap_cdf *= m
    current_below *= n
    gap_cdf -= current_below
    del current_below
    np.abs(gap_cdf, out=gap_cdf)
    wasserstein = float(np.dot(gap_cdf, gaps)) / (n * m)
    # inside a run of tied values the running counts are partial; only the last of a run counts
    distinct = gaps > 0
    ks = float(gap_cdf[distinct].max()) / (n * m) if distinct.any() else 0.0
    return wasserstein, ks


EXACT_KS_LIMIT = 2000  # above this effective size kstwo.sf costs ~15 ms; Kolmogorov's limit is within ~2 %


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value: as ks_2samp(method="asymp") computes it (kstwo with the
    effective sample size) up to EXACT_KS_LIMIT, then the Kolmogorov distribution's limit."""
    from scipy.special import kolmogorov

    effective = n * m / (n + m)
    if effective <= EXACT_KS_LIMIT:
        return float(np.clip(stats.kstwo.sf(statistic, round(effective)), 0.0, 1.0))
    return float(np.clip(kolmogorov(np.sqrt(effective) * statistic), 0.0, 1.0))


# --------------------------------------------------------------------------- reference summaries
@dataclass
class NumericReference:
    name: str
    sorted_values: np.ndarray  # the non-missing reference values, ascending
    edges: np.ndarray  # inner quantile cut points: PSI_BINS bins at most
    counts: np.ndarray  # rows per bin, then the missing values
    spread: float  # standard deviation, the Wasserstein scale
    kind: str = "numeric"

    @classmethod
    def build(cls, name: str, values: Values) -> "NumericReference":
        values = np.asarray(values, dtype=float)
        present = np.sort(values[~np.isnan(values)])
        if len(present):
            edges = np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
        else:
            edges = np.array([])
        counts = _bin_counts(present, edges, missing=len(values) - len(present))
        spread = float(np.std(present)) if len(present) else 0.0
        return cls(name, present, edges, counts, spread)

    def compare(self, values: Values) -> NumericDrift:
        values = np.sort(np.asarray(values, dtype=float))  # NaN sorts last
        missing = int(np.isnan(values).sum()) if len(values) and np.isnan(values[-1]) else 0
        present = values[:len(values) - missing]
        counts = _bin_counts(present, self.edges, missing)
        stability = psi(_shares(self.counts), _shares(counts))
        test = chi_square(self.counts, counts)
        wasserstein = wasserstein_norm = ks = ks_p = None
        if len(present) and len(self.sorted_values):
            wasserstein, ks = cdf_distances(self.sorted_values, present)
            wasserstein_norm = _normalise(wasserstein, self.spread)
            ks_p = ks_pvalue(ks, len(self.sorted_values), len(present))
        large = stability > PSI_LIMIT or (wasserstein_norm or 0.0) > WASSERSTEIN_LIMIT
        beyond_noise = min(ks_p if ks_p is not None else 1.0, test.chi2_pvalue) < NOISE_P_VALUE
        return NumericDrift(psi=stability, missing_share=missing / len(values) if len(values) else 0.0,
                            chi2=test.chi2, chi2_pvalue=test.chi2_pvalue, wasserstein=wasserstein,
                            wasserstein_norm=wasserstein_norm, ks=ks, ks_pvalue=ks_p,
                            drifted=bool(large and beyond_noise))


def _bin_counts(sorted_present: np.ndarray, edges: np.ndarray, missing: int) -> np.ndarray:
    # bins are (-inf, e0], (e0, e1], ..., (e_last, inf): cumulative counts at the edges
    below = np.searchsorted(sorted_present, edges, side="right")
    counts = np.diff(np.concatenate([[0], below, [len(sorted_present)]]))
    return np.append(counts, missing).astype(float)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def _normalise(distance: float, spread: float) -> float:
    if spread > 0:
        return distance / spread
    return 0.0 if distance == 0 else float("inf")


@dataclass
class CategoricalReference:
    name: str
    counts: dict[str, int]  # category -> rows, with MISSING for missing values
    kind: str = "categorical"

    @classmethod
    def build(cls, name: str, values: Values) -> "CategoricalReference":
        return cls(name, category_counts(values))

    def compare(self, values: Values) -> CategoricalDrift:
        current = category_counts(values)
        categories = list(self.counts) + [c for c in current if c not in self.counts]
        ref = np.array([self.counts.get(c, 0) for c in categories], dtype=float)
        cur = np.array([current.get(c, 0) for c in categories], dtype=float)
        ref_shares = ref / ref.sum() if ref.sum() else ref
        cur_shares = cur / cur.sum() if cur.sum() else cur
        js = float(jensenshannon(ref_shares, cur_shares, base=2)) if ref.sum() and cur.sum() else 0.0
        stability = psi(ref_shares, cur_shares)
        test = chi_square(ref, cur)
        return CategoricalDrift(
            psi=stability, jensen_shannon=js, missing_share=current.get(MISSING, 0) / cur.sum() if cur.sum() else 0.0,
            unseen_categories=tuple([c for c in current if c not in self.counts][:20]), chi2=test.chi2,
            chi2_pvalue=test.chi2_pvalue,
            drifted=bool((stability > PSI_LIMIT or js > JS_LIMIT) and test.chi2_pvalue < NOISE_P_VALUE))


def category_counts(values: Values) -> dict[str, int]:
    """Rows per category (as text), MISSING counting the missing values: a mapping of one value type."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1)  # slot 0: the missing values
    result: dict[str, int] = {}
    for category, count in zip(uniques, counts[1:]):
        result[str(category)] = result.get(str(category), 0) + int(count)
    if counts[0]:
        result[MISSING] = int(counts[0])
    return result


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> ChiSquare:
    """Chi-square test of homogeneity on the 2 x categories table of counts."""
    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return ChiSquare(chi2=0.0, chi2_pvalue=1.0)
    result = stats.chi2_contingency(table, correction=False)
    return ChiSquare(chi2=float(result.statistic), chi2_pvalue=float(result.pvalue))


FeatureReference = NumericReference | CategoricalReference


@dataclass
class DriftReference:
    """Everything a batch is compared with, prepared once per model."""

    features: dict[str, FeatureReference]  # by feature name, in the schema's order
    predictions: FeatureReference | None = None  # the model's predictions on the training rows
    estimator: "ConfidenceEstimator | None" = None  # None: regression, or no probabilities
    rows: int = 0
    # the second class's (binary) or the top probability on the training rows: served traffic's
    # probabilities are compared with it (None: no probabilities, or no saved reference rows)
    probability: NumericReference | None = None


def prepare_features(model_frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, FeatureReference]:
    """Summaries of each feature column. kinds: name -> schema kind; booleans count as categories
    (a Wasserstein distance over 0/1 values normalised by their spread is not a useful effect size)."""
    return {name: (CategoricalReference if kinds.get(name) in ("categorical", "boolean") else NumericReference).build(
        name, model_frame[name].to_numpy()) for name in model_frame.columns}


PARALLEL_MIN_ROWS = 50_000  # below this a thread pool costs more than it saves


def compare_features(features: Mapping[str, FeatureReference], model_frame: pd.DataFrame) -> dict[str, FeatureDrift]:
    """Each feature against its reference. Large batches use a few threads: numpy's sorts,
    which dominate the cost, release the GIL."""
    workers = min(4, os.cpu_count() or 1)
    if len(model_frame) < PARALLEL_MIN_ROWS or workers < 2:
        return {name: reference.compare(model_frame[name].to_numpy()) for name, reference in features.items()}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(_compare, reference, model_frame[name].to_numpy())
                   for name, reference in features.items()}
        return {name: future.result() for name, future in futures.items()}


def _compare(reference: FeatureReference, values: Values) -> FeatureDrift:
    return reference.compare(values)


def drifted_names(per_feature: Mapping[str, FeatureDrift]) -> list[str]:
    return [name for name, result in per_feature.items() if result.drifted]


def prediction_reference(predictions: Values, task: str) -> FeatureReference:
    if task == "classification":
        return CategoricalReference.build("prediction", np.asarray(predictions).astype(str))
    return NumericReference.build("prediction", predictions)


def compare_predictions(reference: FeatureReference, predictions: Values, task: str) -> FeatureDrift:
    if task == "classification":
        return reference.compare(np.asarray(predictions).astype(str))
    return reference.compare(predictions)


# --------------------------------------------------------------------------- label-free estimate
MIN_CALIBRATION_ROWS = 30


class ConfidenceEstimator:
    """A confidence-based performance estimate in the spirit of NannyML's CBPE.

    The model's class probabilities are calibrated on the hold-out reference rows
    (isotonic regression, one class against the rest); on a new batch the calibrated
    probabilities give an expected confusion matrix, and from it the expected metric.
    It assumes the concept has not changed: under concept drift it stays confidently
    high, so it is a hint, never the basis of a retraining decision when labels exist.
    """

    def __init__(self, classes: list, calibrators: list | None):
        self.classes = list(classes)
        self.calibrators = calibrators  # one per class (binary: one, for the second class); None: raw
        self.calibration: tuple[np.ndarray, np.ndarray] | None = None  # (hold-out proba, label index) fitted on

    @classmethod
    def fit(cls, proba: np.ndarray, y_true: Values, classes: list) -> "ConfidenceEstimator":
        classes = list(classes)
        y_true = np.asarray(y_true)
        label_index = np.full(len(y_true), -1, dtype=np.int64)  # -1: a label the model has no class for
        for index, label in enumerate(classes):
            label_index[y_true == label] = index
        return cls.fit_indexed(proba, label_index, classes)

    @classmethod
    def fit_indexed(cls, proba: np.ndarray, label_index: np.ndarray, classes: list) -> "ConfidenceEstimator":
        """fit() with each row's label given as its index in classes (-1: none of them)."""
        from sklearn.isotonic import IsotonicRegression

        classes = list(classes)
        if len(label_index) < MIN_CALIBRATION_ROWS:
            return cls(classes, None)  # too few hold-out rows to calibrate: trust the raw probabilities
        proba = np.asarray(proba, dtype=float)
        columns = [1] if len(classes) == 2 else range(len(classes))
        calibrators = []
        for column in columns:
            isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            isotonic.fit(proba[:, column], (label_index == column).astype(float))
            calibrators.append(isotonic)
        estimator = cls(classes, calibrators)
        estimator.calibration = (proba, np.asarray(label_index, dtype=np.int64))
        return estimator

    def calibrated(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=float)
        if self.calibrators is None:
            return proba
        if len(self.classes) == 2:
            positive = self.calibrators[0].predict(proba[:, 1])
            return np.column_stack([1 - positive, positive])
        calibrated = np.column_stack([c.predict(proba[:, k]) for k, c in enumerate(self.calibrators)])
        sums = calibrated.sum(axis=1, keepdims=True)
        return np.where(sums > 0, calibrated / np.where(sums > 0, sums, 1), proba)

    def estimate(self, proba: np.ndarray, metric: str) -> float | None:
        if len(proba) == 0:
            return None
        return expected_metric(self.calibrated(proba), np.asarray(proba, dtype=float), metric)


def expected_confusion(calibrated: np.ndarray, predicted_index: np.ndarray) -> np.ndarray:
    """C[true, predicted]: the expected counts when row i is of class c with probability P[i, c]."""
    k = calibrated.shape[1]
    one_hot = np.eye(k)[predicted_index]
    return calibrated.T @ one_hot


def expected_metric(calibrated: np.ndarray, raw_proba: np.ndarray, metric: str) -> float | None:
    predicted = raw_proba.argmax(axis=1)
    confusion = expected_confusion(calibrated, predicted)
    true_totals, predicted_totals, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    if metric == "accuracy":
        return float(hits.sum() / confusion.sum())
    if metric == "balanced_accuracy":
        present = true_totals > 0
        return float(np.mean(hits[present] / true_totals[present]))
    if metric == "f1_macro":
        denominator = true_totals + predicted_totals
        return float(np.mean(np.where(denominator > 0, 2 * hits / np.where(denominator > 0, denominator, 1), 0.0)))
    if metric == "log_loss":
        clipped = np.clip(raw_proba, 1e-15, 1)
        return float(np.mean(-(calibrated * np.log(clipped)).sum(axis=1)))
    if metric == "roc_auc":
        return _expected_auc(calibrated, raw_proba)
    return None


def _expected_auc(calibrated: np.ndarray, raw_proba: np.ndarray) -> float | None:
    columns = [1] if raw_proba.shape[1] == 2 else range(raw_proba.shape[1])
    areas = []
    for column in columns:
        order = np.argsort(-raw_proba[:, column], kind="stable")
        positive = calibrated[order, column]
        true_positive = np.concatenate([[0], np.cumsum(positive)])
        false_positive = np.concatenate([[0], np.cumsum(1 - positive)])
        if true_positive[-1] <= 0 or false_positive[-1] <= 0:
            continue
        areas.append(np.trapezoid(true_positive / true_positive[-1], false_positive / false_positive[-1]))
    return float(np.mean(areas)) if areas else None
