"""Calibration of the model's scores per chunk, once labels are known."""

from __future__ import annotations

import numpy as np

from monitoring.compute.thresholds import Bounds

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


# Chunks between the two calibration gaps whose difference `calibration_change` takes.
CHANGE_CHUNKS = 3


def calibration_change(gaps: np.ndarray, chunks: int = CHANGE_CHUNKS) -> np.ndarray:
    """Each chunk's calibration gap minus the gap ``chunks`` chunks earlier.

    A label that says whether a subscriber churns within a horizon (14 days) makes
    consecutive daily chunks share most of their churn events: the gap's level wanders with
    them, slowly and far beyond a single chunk's sampling spread, and a step in the churn rate
    hides in that wandering. The difference over a few chunks cancels the shared window and
    keeps the step, which grows by a horizon's share a day.

    Args:
        gaps: `calibration_gap` per chunk, oldest first, NaN without labels.
        chunks: How many chunks back the gap is compared with.

    Returns:
        One value per chunk; NaN for the first ``chunks`` chunks and where either gap is NaN.
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    change = np.full(len(gaps), np.nan)
    if len(gaps) > chunks:
        change[chunks:] = gaps[chunks:] - gaps[:-chunks]
    return change


def calibration_alerts(gaps: np.ndarray, level: Bounds, change: Bounds) -> tuple[bool, ...]:
    """Per chunk, whether its calibration gap is outside ``level`` or its `calibration_change`
    outside ``change``: the realized calibration alert.

    The change looks back `CHANGE_CHUNKS` chunks, so a chunk's alert depends on the chunks
    before it too: an incremental run settles it on the merged series.
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    flags = level.alerts(gaps) | change.alerts(calibration_change(gaps))
    return tuple(bool(flag) for flag in flags)
