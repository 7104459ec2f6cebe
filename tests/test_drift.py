"""Drift statistics against hand-computed and scipy values; the label-free estimate."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score

from app.core.ml import drift


def test_psi_matches_the_hand_computed_value():
    # (0.7-0.5)ln(0.7/0.5) + (0.3-0.5)ln(0.3/0.5)
    expected = 0.2 * math.log(1.4) + (-0.2) * math.log(0.6)
    assert drift.psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(expected, abs=1e-12)
    assert drift.psi([0.25] * 4, [0.25] * 4) == 0.0


def test_psi_stays_finite_when_a_bin_is_empty():
    value = drift.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    expected = (-0.1 * math.log(0.8)) * 2 + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wasserstein_and_ks_equal_scipy_including_ties(seed):
    rng = np.random.default_rng(seed)
    reference = np.sort(rng.normal(0, 1, 700).round(1))  # rounded: many ties
    current = rng.normal(0.3, 1.4, 450).round(1)
    wasserstein, ks = drift.cdf_distances(reference, np.sort(current))
    assert wasserstein == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12)
    assert ks == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)


def test_ks_pvalue_is_scipys_asymptotic_one():
    rng = np.random.default_rng(4)
    reference, current = np.sort(rng.normal(size=2000)), np.sort(rng.normal(0.1, 1, 1500))
    _, ks = drift.cdf_distances(reference, current)
    expected = stats.ks_2samp(reference, current, method="asymp").pvalue
    assert drift.ks_pvalue(ks, 2000, 1500) == pytest.approx(expected, rel=1e-9)


def test_ks_pvalue_on_large_samples_uses_the_kolmogorov_limit():
    rng = np.random.default_rng(11)
    reference, current = np.sort(rng.normal(size=20_000)), np.sort(rng.normal(0.02, 1, 100_000))
    _, ks = drift.cdf_distances(reference, current)
    expected = stats.ks_2samp(reference, current, method="asymp").pvalue
    assert drift.ks_pvalue(ks, 20_000, 100_000) == pytest.approx(expected, rel=0.05)


def test_numeric_reference_bins_are_reference_deciles():
    values = np.arange(1000, dtype=float)
    reference = drift.NumericReference.build("x", values)
    assert len(reference.edges) == 9
    assert np.allclose(reference.counts[:-1], 100)  # ten equal bins, then the missing bin
    assert reference.counts[-1] == 0
    same = reference.compare(values)
    assert same.psi == 0.0 and same.wasserstein == 0.0 and same.ks == 0.0 and not same.drifted


def test_a_shift_by_one_spread_gives_normalised_wasserstein_one():
    rng = np.random.default_rng(5)
    values = rng.normal(10, 2, 5000)
    reference = drift.NumericReference.build("x", values)
    result = reference.compare(values + np.std(values))
    assert result.wasserstein_norm == pytest.approx(1.0, rel=1e-9)
    assert result.drifted
    assert result.psi > drift.PSI_LIMIT


def test_missing_values_have_their_own_bin():
    rng = np.random.default_rng(6)
    values = rng.normal(size=2000)
    reference = drift.NumericReference.build("x", values)
    half_missing = values.copy()
    half_missing[::2] = np.nan
    result = reference.compare(half_missing)
    assert result.missing_share == pytest.approx(0.5)
    assert result.psi > 1  # the missing bin went from 0 to half the rows
    assert result.drifted


def test_small_noisy_batch_is_not_drift_but_a_real_shift_is():
    rng = np.random.default_rng(7)
    reference = drift.NumericReference.build("x", rng.lognormal(10, 0.45, 4000))
    stationary = [reference.compare(rng.lognormal(10, 0.45, 300)).drifted for _ in range(40)]
    assert sum(stationary) <= 1  # effect sizes alone would flag several of these small batches
    assert reference.compare(rng.lognormal(10.5, 0.45, 300)).drifted


def test_categorical_statistics_equal_scipy():
    reference = drift.CategoricalReference.build("region", ["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    current = ["a"] * 20 + ["b"] * 30 + ["c"] * 30 + ["d"] * 10 + [None] * 10
    result = reference.compare(np.array(current, dtype=object))
    ref_counts = np.array([50, 30, 20, 0, 0], dtype=float)
    cur_counts = np.array([20, 30, 30, 10, 10], dtype=float)
    assert result.jensen_shannon == pytest.approx(
        jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), base=2), rel=1e-12)
    assert result.psi == pytest.approx(drift.psi(ref_counts / 100, cur_counts / 100), rel=1e-12)
    chi2 = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    assert result.chi2 == pytest.approx(chi2.statistic, rel=1e-12)
    assert result.chi2_pvalue == pytest.approx(chi2.pvalue, rel=1e-9)
    assert set(result.unseen_categories) == {"d", drift.MISSING}
    assert result.missing_share == pytest.approx(0.1)
    assert result.drifted


def test_booleans_are_compared_as_categories():
    frame = pd.DataFrame({"flag": [0.0, 1.0] * 100, "x": np.arange(200.0)})
    features = drift.prepare_features(frame, {"flag": "boolean", "x": "numeric"})
    assert isinstance(features["flag"], drift.CategoricalReference)
    assert isinstance(features["x"], drift.NumericReference)
    result = drift.compare_features(features, frame)
    assert drift.drifted_names(result) == []


def test_expected_confusion_and_metrics_by_hand():
    calibrated = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    raw = calibrated.copy()
    confusion = drift.expected_confusion(calibrated, raw.argmax(axis=1))
    # predicted 0 for rows 0 and 2, 1 for row 1: C[true, predicted]
    assert np.allclose(confusion, [[0.9 + 0.6, 0.2], [0.1 + 0.4, 0.8]])
    assert drift.expected_metric(calibrated, raw, "accuracy") == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    recall_0, recall_1 = 1.5 / 1.7, 0.8 / 1.3
    assert drift.expected_metric(calibrated, raw, "balanced_accuracy") == pytest.approx((recall_0 + recall_1) / 2)
    f1_0, f1_1 = 2 * 1.5 / (1.7 + 2.0), 2 * 0.8 / (1.3 + 1.0)
    assert drift.expected_metric(calibrated, raw, "f1_macro") == pytest.approx((f1_0 + f1_1) / 2)
    expected_log_loss = -np.mean([0.9 * np.log(0.9) + 0.1 * np.log(0.1), 0.2 * np.log(0.2) + 0.8 * np.log(0.8),
                                  0.6 * np.log(0.6) + 0.4 * np.log(0.4)])
    assert drift.expected_metric(calibrated, raw, "log_loss") == pytest.approx(expected_log_loss)
    assert drift.expected_metric(calibrated, raw, "r2") is None


def _calibrated_sample(rng, rows):
    positive = rng.uniform(0, 1, rows)
    labels = (rng.uniform(0, 1, rows) < positive).astype(int)
    return np.column_stack([1 - positive, positive]), labels


def test_estimate_tracks_accuracy_and_auc_when_the_concept_holds():
    rng = np.random.default_rng(8)
    holdout_proba, holdout_y = _calibrated_sample(rng, 3000)
    estimator = drift.ConfidenceEstimator.fit(holdout_proba, holdout_y, [0, 1])
    proba, labels = _calibrated_sample(rng, 5000)
    actual_accuracy = np.mean(proba.argmax(axis=1) == labels)
    assert estimator.estimate(proba, "accuracy") == pytest.approx(actual_accuracy, abs=0.02)
    assert estimator.estimate(proba, "roc_auc") == pytest.approx(roc_auc_score(labels, proba[:, 1]), abs=0.02)
    # the documented limit: under concept drift (labels flipped) the estimate stays where it was
    assert estimator.estimate(proba, "accuracy") - np.mean(proba.argmax(axis=1) == 1 - labels) > 0.4


def test_estimate_corrects_an_overconfident_model():
    rng = np.random.default_rng(9)
    true_positive = rng.uniform(0.3, 0.7, 4000)  # the truth is uncertain...
    labels = (rng.uniform(0, 1, 4000) < true_positive).astype(int)
    stated = np.where(true_positive > 0.5, 0.99, 0.01)  # ...the model claims certainty
    proba = np.column_stack([1 - stated, stated])
    raw_guess = drift.expected_metric(proba, proba, "accuracy")
    estimator = drift.ConfidenceEstimator.fit(proba[:2000], labels[:2000], [0, 1])
    calibrated_guess = estimator.estimate(proba[2000:], "accuracy")
    actual = np.mean(proba[2000:].argmax(axis=1) == labels[2000:])
    assert raw_guess > 0.95
    assert calibrated_guess == pytest.approx(actual, abs=0.03)


def test_too_few_holdout_rows_fall_back_to_raw_probabilities():
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    estimator = drift.ConfidenceEstimator.fit(proba, np.array([0, 1]), [0, 1])
    assert estimator.calibrators is None
    assert estimator.estimate(proba, "accuracy") == pytest.approx(0.75)


def test_multiclass_calibration_rows_sum_to_one():
    rng = np.random.default_rng(10)
    raw = rng.dirichlet([1, 1, 1], 600)
    labels = np.array([rng.choice(3, p=p) for p in raw])
    estimator = drift.ConfidenceEstimator.fit(raw, labels, [0, 1, 2])
    assert np.allclose(estimator.calibrated(raw).sum(axis=1), 1.0)
    assert 0.0 < estimator.estimate(raw, "accuracy") < 1.0
