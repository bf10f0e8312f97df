"""Probability calibration of the churn model: Platt scaling and expected calibration error.

Pure NumPy. The forest is trained with balanced class weights, which inflates its churn
scores; label-free performance estimation (CBPE) needs probabilities that mean what they
say, so the model maps its scores through a logistic curve fitted on held-out subscribers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

_EPSILON = 1e-6


@dataclass(frozen=True)
class PlattScaling:
    """``p' = 1 / (1 + exp(-(slope * logit(p) + intercept)))``."""

    slope: float
    intercept: float

    def apply(self, probability: ArrayLike) -> np.ndarray:
        """Calibrated probabilities of ``probability``."""
        return _sigmoid(self.slope * _logit(np.asarray(probability, dtype=float)) + self.intercept)


def fit_platt(probability: ArrayLike, label: ArrayLike, iterations: int = 100) -> PlattScaling:
    """Fit Platt scaling to scores and 0/1 labels by Newton's method.

    Uses Platt's smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2)) so a perfectly
    separated calibration set does not push the slope to infinity.

    Raises:
        ValueError: empty input or a single class.
    """
    p = np.asarray(probability, dtype=float)
    y = np.asarray(label, dtype=float)
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    if len(y) == 0 or positives == 0 or negatives == 0:
        raise ValueError("calibration needs rows of both classes")
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    x = _logit(p)
    weights = np.zeros(2)  # slope, intercept
    design = np.column_stack([x, np.ones_like(x)])
    for _ in range(iterations):
        fitted = _sigmoid(design @ weights)
        gradient = design.T @ (fitted - target)
        curvature = design.T @ (design * (fitted * (1 - fitted))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(curvature, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return PlattScaling(slope=float(weights[0]), intercept=float(weights[1]))


def expected_calibration_error(probability: ArrayLike, label: ArrayLike, bins: int = 10) -> float:
    """Row-weighted mean |mean probability - churn rate| over ``bins`` equal-width bins."""
    p = np.asarray(probability, dtype=float)
    y = np.asarray(label, dtype=float)
    if len(p) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    probability_sums = np.bincount(index, weights=p, minlength=bins)
    churn_sums = np.bincount(index, weights=y, minlength=bins)
    gap = np.abs(probability_sums - churn_sums)
    return float(gap.sum() / counts.sum())


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPSILON, 1 - _EPSILON)
    return np.log(clipped / (1 - clipped))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
