"""Alert thresholds with a known false-alarm rate, from a bootstrap of the reference.

NannyML sets a threshold at the mean ± 3 standard deviations of a statistic over the reference
chunks: with the 8-20 daily chunks a model's test window gives, that spread is itself a guess
(a standard deviation from 10 values is off by a quarter or more either way), and the rate at
which a clean chunk crosses it is unknown. Here the reference is resampled instead, into
``bootstrap_samples`` chunks, each as large as a reference chunk picked at random, and every
statistic is computed on them with the very calculators the analysis uses: its mean and spread
on a chunk of that size then rest on hundreds of values rather than ten.

- **Performance** (realized ROC AUC, F1, accuracy): the resamples draw from the whole
  reference, which gives the sampling spread of a chunk exactly; the spread over the
  reference's own chunks is the floor, for chunk-level effects (weekdays against weekends)
  pooled resamples do not have. The estimate and the realized value share the band.
- **Drift** (each feature's distance, the PCA reconstruction error): each resample draws from
  one reference chunk. Its rows were seen by the fitted calculators (binned by them, or
  reconstructed by the PCA fitted on them), which makes in-sample values look closer to the
  reference than a new chunk is; drawing from one chunk adds that chunk's own deviation, and
  the sum is at least a new chunk's spread. Distances are positive and skewed to the right,
  so their band is a log-normal quantile; the others are normal quantiles.

The rates are corrected for the number of tests: the performance rate is shared by the
metrics and the univariate rate by the features (Bonferroni), so ``univariate_rate`` bounds
the chance that a clean chunk shows any drifted feature. Measured on a clean 69-day stream of
the demo model, see the README.
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
    *,
    pooled: bool,
) -> pd.DataFrame:
    """``samples`` chunks resampled from a prepared (sorted) reference frame.

    Each resample draws, with replacement, as many rows as a reference chunk picked at random
    holds (``chunking.size`` for chunks by size): from the whole reference when ``pooled``,
    else from that chunk only. Its rows get the timestamp of the start of the resample's own
    period, so ``chunking`` cuts the result into exactly ``samples`` chunks, in order.
    """
    rng = np.random.default_rng([seed, len(frame), int(pooled)])
    picks = rng.integers(0, len(bounds), size=samples)
    positions = []
    for pick in picks.tolist():
        chunk = bounds[pick]
        size = chunking.size if chunking.size is not None else chunk.rows
        first, stop = (0, len(frame)) if pooled else (chunk.first_row, chunk.stop_row)
        positions.append(rng.integers(first, stop, size=size))
    sizes = [len(part) for part in positions]
    resampled = frame.iloc[np.concatenate(positions)].reset_index(drop=True)
    frequency = _FREQUENCIES[chunking.period] if chunking.period is not None else "D"
    starts = pd.date_range(_BOOTSTRAP_EPOCH, periods=samples, freq=frequency)
    resampled[timestamp] = np.repeat(starts.to_numpy(), sizes)
    return resampled


def performance_bounds(
    values: np.ndarray, chunk_values: np.ndarray, rate: float, direction: AlertDirection
) -> Bounds:
    """The band of a performance metric from its bootstrap values.

    Args:
        values: The metric on each resample (NaN where undefined).
        chunk_values: The metric on each reference chunk: their spread, when wider, stands
            for the chunk-to-chunk variation the resamples do not have.
        rate: Chance that a clean chunk falls outside the band.
        direction: ``lower``: only a drop alerts; ``both``: a rise too, ``rate`` split evenly.
    """
    mean, spread = _mean_spread(values, chunk_values)
    if math.isnan(mean):
        return Bounds(None, None)
    if direction == "lower":
        return Bounds(mean - _z(rate) * spread, None)
    z = _z(rate / 2)
    return Bounds(mean - z * spread, mean + z * spread)


def change_bounds(chunk_values: np.ndarray, rate: float, *, two_sided: bool) -> Bounds:
    """The band of a statistic's change over a few chunks (`calibration_change`), around 0.

    From the changes over the reference's own chunks, not from resamples: resampled chunks
    are independent, while consecutive real chunks share most of their rows' label windows,
    which makes their changes smaller than those between independent chunks (by half and
    more on the demo's daily chunks). A stationary statistic's change has mean 0; the mean of
    the few overlapping changes the reference gives is noise, left out. No band from fewer
    than two changes.

    Args:
        chunk_values: The change over the reference chunks (NaN where undefined).
        rate: Chance that a clean chunk falls outside the band.
        two_sided: A drop alerts too, ``rate`` split evenly; else only a rise.
    """
    changes = _known(chunk_values)
    if len(changes) < 2:
        return Bounds(None, None)
    spread = float(changes.std(ddof=1))
    if not two_sided:
        return Bounds(None, _z(rate) * spread)
    z = _z(rate / 2)
    return Bounds(-z * spread, z * spread)


def upper_bound(values: np.ndarray, rate: float) -> Bounds:
    """An upper bound crossed by a clean chunk with chance ``rate``, from bootstrap values
    (normal quantile)."""
    mean, spread = _mean_spread(values, np.array([]))
    if math.isnan(mean):
        return Bounds(None, None)
    return Bounds(None, mean + _z(rate) * spread)


def share_bound(values: np.ndarray, chunk_values: np.ndarray, rows: int, rate: float) -> Bounds:
    """An upper bound for a share of rows (e.g. of zeros), crossed with chance ``rate``.

    The normal quantile of the bootstrap values, with the reference chunks' spread as a floor
    like `performance_bounds`; and, since a share the reference never shows (all its values
    nonzero) has no spread at all, at least the binomial spread of ``rows`` rows at the
    rule-of-succession share ``(k + 1) / (n + 2)``: one stray zero is no alert.

    Args:
        values: The share on each resample.
        chunk_values: The share on each reference chunk.
        rows: Rows of a typical chunk.
        rate: Chance that a clean chunk exceeds the bound.
    """
    mean, spread = _mean_spread(values, chunk_values)
    if math.isnan(mean) or rows < 1:
        return Bounds(None, None)
    share = (mean * rows + 1) / (rows + 2)
    spread = max(spread, math.sqrt(share * (1 - share) / rows))
    return Bounds(None, mean + _z(rate) * spread)


def distance_bound(values: np.ndarray, rate: float) -> Bounds:
    """An upper bound for a drift distance (log-normal quantile of its bootstrap values)."""
    # np.maximum keeps NaN, which _mean_spread skips.
    logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), _DISTANCE_FLOOR))
    mean, spread = _mean_spread(logs, np.array([]))
    if math.isnan(mean):
        return Bounds(None, None)
    return Bounds(None, float(np.exp(mean + _z(rate) * spread)))


def _mean_spread(values: np.ndarray, chunk_values: np.ndarray) -> tuple[float, float]:
    known = _known(values)
    if len(known) < 2:
        return math.nan, math.nan
    spread = float(known.std(ddof=1))
    chunks = _known(chunk_values)
    if len(chunks) >= 2:
        spread = max(spread, float(chunks.std(ddof=1)))
    return float(known.mean()), spread


def _known(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[~np.isnan(array)]


def _z(rate: float) -> float:
    return NormalDist().inv_cdf(1 - rate)
