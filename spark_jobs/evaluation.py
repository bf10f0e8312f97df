"""Held-out evaluation of the churn model, on probabilities rather than hard labels."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)

from spark_jobs.calibration import expected_calibration_error


def best_f1_threshold(probability: ArrayLike, label: ArrayLike) -> float:
    """The probability cut-off with the highest F1 (choose it on data the test never sees)."""
    precision, recall, thresholds = precision_recall_curve(label, probability)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    # The last precision/recall pair has no threshold.
    return float(thresholds[int(np.argmax(f1[:-1]))])


def evaluate(probability: ArrayLike, label: ArrayLike, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, F1, accuracy and calibration error of churn probabilities.

    Raises:
        ValueError: ``label`` holds a single class (ROC-AUC is undefined).
    """
    p = np.asarray(probability, dtype=float)
    y = np.asarray(label, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("the test rows hold a single class: ROC-AUC is undefined")
    predicted = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": float(f1_score(y, predicted)),
        "accuracy": float(accuracy_score(y, predicted)),
        "ece": expected_calibration_error(p, y),
        "threshold": float(threshold),
        "rows": len(y),
        "churn_rate": float(y.mean()),
        "predicted_churn_rate": float(predicted.mean()),
    }
