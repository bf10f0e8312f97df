"""Alert thresholds with a known false-alarm rate, from a bootstrap of the reference.

NannyML sets a threshold at the mean ± 3 standard deviations of a statistic over the reference
chunks: with the 8-12 daily chunks a model's test window gives, that spread is itself a guess
(a standard deviation from 10 values is off by a quarter or more either way), and the rate at
which a clean chunk crosses it is unknown. Here the reference is resampled instead:

- each bootstrap chunk picks one reference chunk at random and draws as many rows from it, with
  replacement, as it holds; so the resamples carry both the row-level sampling noise of a chunk
  of that size and the chunk-to-chunk variation of the reference (weekdays against weekends);
- every statistic (realized ROC AUC, F1 and accuracy; the drift distance of each feature; the
  PCA reconstruction error) is computed on ``bootstrap_samples`` such chunks with the very
  calculators the analysis uses;
- a threshold sits where a clean chunk crosses it with the policy's rate: a normal quantile of
  the bootstrap mean and spread for the performance metrics and the reconstruction error, a
  log-normal one for the univariate distances, which are positive and skewed to the right.

Resampling the rows of one chunk adds its own sampling noise to the chunk's, so the spread is
on the wide side: the false-alarm rate is at most the nominal one, which is what a monitor
that people should trust needs. The rates are corrected for the number of tests: the
performance rate is shared by the metrics and the univariate rate by the features
(Bonferroni), so ``univariate_rate`` bounds the chance that a clean chunk shows any drifted
feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from monitoring.compute.chunking import ChunkBounds
from monitoring.compute.spec import AlertDirection, Chunking

# Synthetic chunk starts of the resamples: a Monday, so weekly chunks line up.
_BOOTSTRAP_EPOCH = pd.Timestamp("2000-01-03")
_FREQUENCIES = {"D": "D", "W": "W-MON", "M": "MS"}
# Distances of identical distributions are 0: floor them before taking logarithms.
_DISTANCE_FLOOR = 1e-6


@dataclass(frozen=True)
class Bounds:
    """An alert band: a value below ``lower`` or above ``upper`` alerts; None for no bound."""

    lower: float | None
    upper: float | None

    def alerts(self, values: np.ndarray) -> np.ndarray:
        """Per value, whether it lies outside the band; NaN never alerts."""
        values = np.asarray(values, dtype=np.float64)
        flags = np.zeros(len(values), dtype=bool)
        known = ~np.isnan(values)
        if self.lower is not None:
            flags |= known & (np.where(known, values, 0.0) < self.lower)
        if self.upper is not None:
            flags |= known & (np.where(known, values, 0.0) > self.upper)
        return flags


def bootstrap_reference(
    frame: pd.DataFrame,
    bounds: list[ChunkBounds],
    chunking: Chunking,
    timestamp: str,
    samples: int,
    seed: int,
) -> pd.DataFrame:
    """``samples`` chunks resampled from a prepared (sorted) reference frame.

    Each resample takes the rows of one reference chunk drawn at random, with replacement and
    as many as it holds (``chunking.size`` for chunks by size). Its rows get the timestamp of
    the start of the resample's own period, so ``chunking`` cuts the result into exactly
    ``samples`` chunks, in order.
    """
    rng = np.random.default_rng([seed, len(frame)])
    picks = rng.integers(0, len(bounds), size=samples)
    positions = []
    for pick in picks.tolist():
        chunk = bounds[pick]
        size = chunking.size if chunking.size is not None else chunk.rows
        positions.append(rng.integers(chunk.first_row, chunk.stop_row, size=size))
    sizes = [len(part) for part in positions]
    resampled = frame.iloc[np.concatenate(positions)].reset_index(drop=True)
    frequency = _FREQUENCIES[chunking.period] if chunking.period is not None else "D"
    starts = pd.date_range(_BOOTSTRAP_EPOCH, periods=samples, freq=frequency)
    resampled[timestamp] = np.repeat(starts.to_numpy(), sizes)
    return resampled


def performance_bounds(values: np.ndarray, rate: float, direction: AlertDirection) -> Bounds:
    """The band of a performance metric from its bootstrap values.

    Args:
        values: The metric on each resample (NaN where undefined).
        rate: Chance that a clean chunk falls outside the band.
        direction: ``lower``: only a drop alerts; ``both``: a rise too, ``rate`` split evenly.
    """
    mean, spread = _mean_spread(values)
    if math.isnan(mean):
        return Bounds(None, None)
    if direction == "lower":
        return Bounds(mean - _z(rate) * spread, None)
    z = _z(rate / 2)
    return Bounds(mean - z * spread, mean + z * spread)


def upper_bound(values: np.ndarray, rate: float) -> Bounds:
    """An upper bound crossed by a clean chunk with chance ``rate``, from bootstrap values
    (normal quantile)."""
    mean, spread = _mean_spread(values)
    if math.isnan(mean):
        return Bounds(None, None)
    return Bounds(None, mean + _z(rate) * spread)


def distance_bound(values: np.ndarray, rate: float) -> Bounds:
    """An upper bound for a drift distance (log-normal quantile of its bootstrap values)."""
    known = np.asarray(values, dtype=np.float64)
    known = known[~np.isnan(known)]
    if len(known) < 2:
        return Bounds(None, None)
    logs = np.log(np.maximum(known, _DISTANCE_FLOOR))
    return Bounds(None, float(np.exp(logs.mean() + _z(rate) * logs.std(ddof=1))))


def _mean_spread(values: np.ndarray) -> tuple[float, float]:
    known = np.asarray(values, dtype=np.float64)
    known = known[~np.isnan(known)]
    if len(known) < 2:
        return math.nan, math.nan
    return float(known.mean()), float(known.std(ddof=1))


def _z(rate: float) -> float:
    return NormalDist().inv_cdf(1 - rate)
