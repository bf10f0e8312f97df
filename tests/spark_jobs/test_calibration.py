"""Calibration and evaluation of churn probabilities, by hand and on known curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spark_jobs.calibration import PlattScaling, expected_calibration_error, fit_platt
from spark_jobs.evaluation import best_f1_threshold, evaluate
from spark_jobs.scoring import calibrated


def test_platt_recovers_a_known_distortion() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(0.01, 0.99, 200_000)
    label = rng.random(true.size) < true
    # Scores that overstate churn: logit(score) = (logit(true) + 1) / 2.
    distorted = PlattScaling(slope=0.5, intercept=0.5).apply(true)
    platt = fit_platt(distorted, label)
    assert platt.slope == pytest.approx(2.0, abs=0.05)
    assert platt.intercept == pytest.approx(-1.0, abs=0.05)
    assert expected_calibration_error(distorted, label) > 0.05
    assert expected_calibration_error(platt.apply(distorted), label) < 0.01


def test_platt_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_platt([0.2, 0.3], [0, 0])


def test_expected_calibration_error_by_hand() -> None:
    # Bin [0.1, 0.2): mean p 0.15, churn 1/2; bin [0.9, 1]: mean p 0.95, churn 1/2.
    p = [0.1, 0.2 - 1e-9, 0.9, 1.0]
    y = [0, 1, 1, 0]
    assert expected_calibration_error(p, y) == pytest.approx((2 * 0.35 + 2 * 0.45) / 4)


def test_best_threshold_and_metrics_by_hand() -> None:
    p = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1])
    threshold = best_f1_threshold(p, y)
    assert threshold == pytest.approx(0.35)  # F1 6/7, against 4/5 at 0.8
    metrics = evaluate(p, y, threshold)
    assert metrics["f1"] == pytest.approx(6 / 7)
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    with pytest.raises(ValueError, match="single class"):
        evaluate(p, np.zeros(6), 0.5)


def test_spark_calibration_matches_numpy(spark: Any) -> None:
    platt = PlattScaling(slope=1.7, intercept=-0.4)
    values = [0.0, 1e-9, 0.05, 0.5, 0.93, 1.0]
    frame = spark.createDataFrame([(v,) for v in values], "p double")
    spark_values = [row[0] for row in frame.select(calibrated(frame["p"], platt)).collect()]
    assert spark_values == pytest.approx(list(platt.apply(values)), rel=1e-12)
