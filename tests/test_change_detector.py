"""The change detector on a model's per-batch loss: silent on a stationary stream, early on a slide."""

import numpy as np
import pytest

from app.core.ml.change import LossCusum


def errors(rng, rate: float, rows: int) -> np.ndarray:
    return (rng.random(rows) < rate).astype(float)


@pytest.mark.parametrize("rows", [300, 1000])
def test_a_stationary_error_rate_raises_no_change_in_two_hundred_streams(rows):
    rng = np.random.default_rng(1)
    fired = 0
    for _ in range(200):
        detector = LossCusum()
        fired += any(detector.update(errors(rng, 0.06, rows), index) is not None for index in range(50))
    assert fired <= 2  # about 0.2 % of 50-batch streams in simulation


def test_a_slow_slide_is_caught_before_it_crosses_a_five_point_drop():
    rng = np.random.default_rng(2)
    delays = []
    for _ in range(50):
        detector = LossCusum()
        for index in range(40):
            rate = 0.06 + max(0, index - 5) * 0.005  # half a point worse per batch from batch 5
            change = detector.update(errors(rng, rate, 300), index)
            if change is not None:
                delays.append(index - 5)
                break
    assert len(delays) == 50
    assert np.mean(delays) < 10  # a 5-point drop (the default --max-drop) takes 10 batches


def test_an_abrupt_change_is_dated_to_its_first_batch_and_the_detector_starts_again():
    rng = np.random.default_rng(3)
    detector = LossCusum()
    steady = np.r_[np.ones(15), np.zeros(285)]  # exactly 5 % errors: no excursion before the change
    for index in range(6):
        assert detector.update(steady, index) is None
    change = detector.update(errors(rng, 0.30, 300), 6)
    assert change.started_at == 6 and change.detected_at == 6
    assert change.batch_loss > 0.25 and change.reference_loss < 0.08 and change.statistic > change.limit
    assert detector.batches == 0 and detector.reference_rows == 0  # the new regime builds a new reference
    assert all(detector.update(errors(rng, 0.30, 300), index) is None for index in range(7, 12))


def test_the_state_survives_a_round_trip_through_a_dict():
    rng = np.random.default_rng(4)
    detector = LossCusum()
    for index in range(5):
        detector.update(errors(rng, 0.1, 300), index)
    copy = LossCusum.from_json(detector.to_json())
    assert copy == detector
    batch = errors(rng, 0.1, 300)
    assert copy.update(batch, 5) == detector.update(batch, 5) and copy == detector


def test_regression_losses_on_any_scale_use_the_same_setting():
    rng = np.random.default_rng(5)
    for scale in (0.01, 1000.0):
        detector = LossCusum()
        found = [detector.update(np.abs(rng.normal(0, scale * (1 + (i >= 8)), 500)), i) for i in range(12)]
        assert [i for i, change in enumerate(found) if change] and not any(found[:8])
