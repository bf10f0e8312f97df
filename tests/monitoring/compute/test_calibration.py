"""Expected calibration error, checked by hand."""

from __future__ import annotations

import math

import numpy as np

from monitoring.compute.calibration import expected_calibration_error


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
