"""Expected calibration error and the calibration gap, checked by hand."""

from __future__ import annotations

import math

import numpy as np

from monitoring.compute.calibration import calibration_gap, expected_calibration_error


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
