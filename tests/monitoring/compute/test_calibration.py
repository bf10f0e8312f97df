"""Expected calibration error and the calibration gap, checked by hand."""

from __future__ import annotations

import math

import numpy as np

from monitoring.compute.calibration import (
    CHANGE_CHUNKS,
    calibration_change,
    calibration_gap,
    expected_calibration_error,
)
from monitoring.compute.thresholds import Bounds, change_bounds


def test_ece_by_hand() -> None:
    ids = np.array([0, 0, 0, 0, 1, 1, 2])
    scores = np.array([0.05, 0.15, 0.17, 0.95, 0.35, 0.45, 0.5])
    truth = np.array([0.0, 1.0, 0.0, 1.0, 1.0, np.nan, np.nan])

    ece = expected_calibration_error(ids, 3, truth, scores)

    # Chunk 0: bin 0 |0 - 0.05|, bin 1 |1 - (0.15 + 0.17)|, bin 9 |1 - 0.95|, over 4 rows.
    assert math.isclose(ece[0], (0.05 + 0.68 + 0.05) / 4)
    # Chunk 1: only the 0.35 is labelled.
    assert math.isclose(ece[1], 0.65)
    # Chunk 2: nothing labelled.
    assert np.isnan(ece[2])


def test_a_score_of_one_falls_in_the_last_bin() -> None:
    ece = expected_calibration_error(
        np.array([0, 0]), 1, np.array([1.0, 1.0]), np.array([1.0, 0.95])
    )

    assert math.isclose(ece[0], 0.05 / 2)


def test_calibration_gap_is_the_observed_rate_minus_the_mean_score() -> None:
    ids = np.array([0, 0, 0, 1, 1, 2])
    scores = np.array([0.2, 0.4, 0.9, 0.1, 0.3, 0.5])
    truth = np.array([0.0, 1.0, 1.0, 0.0, np.nan, np.nan])

    gap = calibration_gap(ids, 3, truth, scores)

    assert math.isclose(gap[0], 2 / 3 - 1.5 / 3)
    # Chunk 1: only the 0.1 is labelled.
    assert math.isclose(gap[1], -0.1)
    assert np.isnan(gap[2])


def test_calibration_change_is_the_gap_minus_the_gap_chunks_earlier() -> None:
    gaps = np.array([0.01, 0.02, np.nan, 0.05, 0.03])

    change = calibration_change(gaps, chunks=2)

    assert np.isnan(change[:2]).all()  # no chunk two earlier
    assert np.isnan(change[2]) and np.isnan(change[4])  # its own gap, or the earlier, NaN
    assert math.isclose(change[3], 0.05 - 0.02)
    assert np.isnan(calibration_change(gaps, chunks=5)).all()


HORIZON = 14
REFERENCE_DAYS = 20
SUBSCRIBERS = 10_000


def _horizon_days(doubled_from: int | None, days: int = 70) -> tuple[np.ndarray, np.ndarray]:
    """Daily labels over a 14-day horizon, as the pipeline's are, and the scores.

    Each subscriber has a daily churn hazard; one who churns is replaced by one with the same
    hazard. The label of day d says whether the subscriber of that day churns in days
    d+1..d+14 and the (calibrated) score is that chance, 1 - (1 - hazard)^14: consecutive
    days share 13 of their 14 churn days. From day ``doubled_from`` on, hazards double, which
    the scores do not know.

    Returns:
        Labels, one row per day, and each subscriber's score.
    """
    rng = np.random.default_rng(5)
    hazard = rng.uniform(0.001, 0.01, SUBSCRIBERS)
    factor = np.ones(days + HORIZON)
    if doubled_from is not None:
        factor[doubled_from:] = 2.0
    churns = rng.random((SUBSCRIBERS, days + HORIZON)) < hazard[:, None] * factor[None, :]
    labels = np.stack([churns[:, day + 1 : day + 1 + HORIZON].any(axis=1) for day in range(days)])
    return labels.astype(np.float64), 1 - (1 - hazard) ** HORIZON


def _gaps(labels: np.ndarray, score: np.ndarray) -> np.ndarray:
    days = len(labels)
    return calibration_gap(
        np.repeat(np.arange(days), SUBSCRIBERS), days, labels.ravel(), np.tile(score, days)
    )


def _change_band() -> Bounds:
    """The band from the changes of the clean reference days' gaps."""
    labels, score = _horizon_days(None)
    reference = _gaps(labels[:REFERENCE_DAYS], score)
    return change_bounds(calibration_change(reference), 0.00125, two_sided=False)


def test_a_clean_label_horizon_stays_inside_the_change_band() -> None:
    labels, score = _horizon_days(None)
    band = _change_band()

    assert band.lower is None and band.upper is not None
    assert not band.alerts(calibration_change(_gaps(labels, score))[REFERENCE_DAYS:]).any()


def test_a_doubled_churn_hazard_crosses_the_change_band_within_three_chunks() -> None:
    # Hazards double from day 45: the labels of day 31 on (churn days 32..45) see it.
    labels, score = _horizon_days(45)

    flags = _change_band().alerts(calibration_change(_gaps(labels, score)))

    assert not flags[:31].any()
    assert flags[31 : 31 + CHANGE_CHUNKS].any()
