"""Calibration of the model's scores per chunk, once labels are known."""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


def expected_calibration_error(
    chunk_ids: np.ndarray,
    chunks: int,
    y_true: np.ndarray,
    y_pred_proba: np.ndarray,
    bins: int = ECE_BINS,
) -> np.ndarray:
    """Expected calibration error of each chunk's labelled rows, over equal-width score bins.

    ECE = sum over bins b of (n_b / n) * |mean label in b - mean score in b|, which is
    sum_b |sum of labels in b - sum of scores in b| / n. Bin b holds the scores in
    [b / bins, (b + 1) / bins); a score of exactly 1 joins the last bin.

    Args:
        chunk_ids: Each row's chunk number, in [0, chunks).
        chunks: Number of chunks.
        y_true: Labels 0/1, NaN when not known yet (those rows are left out).
        y_pred_proba: The model's scores, uncalibrated, in [0, 1].
        bins: Number of equal-width bins.

    Returns:
        One value per chunk; NaN for a chunk without labelled rows.
    """
    labelled = ~np.isnan(y_true)
    scores = y_pred_proba[labelled]
    score_bins = np.minimum((scores * bins).astype(np.int64), bins - 1)
    cells = chunk_ids[labelled] * bins + score_bins
    size = chunks * bins
    label_sums = np.bincount(cells, weights=y_true[labelled], minlength=size).reshape(chunks, bins)
    score_sums = np.bincount(cells, weights=scores, minlength=size).reshape(chunks, bins)
    rows = np.bincount(chunk_ids[labelled], minlength=chunks).astype(np.float64)
    gaps = np.abs(label_sums - score_sums).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rows > 0, gaps / rows, np.nan)


def calibration_gap(
    chunk_ids: np.ndarray, chunks: int, y_true: np.ndarray, y_pred_proba: np.ndarray
) -> np.ndarray:
    """Observed churn rate minus mean score, per chunk, over its labelled rows.

    Calibration in the large: with the score-to-label relation of the reference, the gap
    stays where the reference's was, whatever the scores do. A change in the base rate that
    the features do not show (more churners than the scores expect) moves it, while ROC AUC,
    which only ranks, barely changes.

    Args:
        chunk_ids: Each row's chunk number, in [0, chunks).
        chunks: Number of chunks.
        y_true: Labels 0/1, NaN when not known yet (those rows are left out).
        y_pred_proba: The model's scores.

    Returns:
        One value per chunk, in [-1, 1]; NaN for a chunk without labelled rows.
    """
    labelled = ~np.isnan(y_true)
    ids = chunk_ids[labelled]
    rows = np.bincount(ids, minlength=chunks).astype(np.float64)
    differences = y_true[labelled] - y_pred_proba[labelled]
    sums = np.bincount(ids, weights=differences, minlength=chunks)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rows > 0, sums / rows, np.nan)
