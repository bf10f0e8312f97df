"""The streaming simulator's batches: a pure function of the subscriber base, a seed and a clock.

As in the seed project, a batch samples rows of recent history (the subscriber base),
jitters their usage with multiplicative noise and stamps them afresh. Unlike the seed,
counts stay non-negative integers and subscriber ids and churn labels are never jittered.
A batch depends only on (base, stream seed, batch index, clock), so a batch retried after
a lost connection, or a stream resumed after a restart, rebuilds exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from db.schema import (
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATA_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SMS_COLUMNS,
    USAGE_COLUMNS,
    VOICE_COLUMNS,
)
from ingest.scenario import Scenario

ClockMode = Literal["realtime", "simulated"]

NOISE_SIGMA = 0.1  # spread of the multiplicative log-normal usage noise
REALTIME_JITTER_S = 300  # realtime stamps fall within now +- 5 minutes, as in the seed
_SECONDS_PER_DAY = 86_400


class EmptyBaseError(ValueError):
    """There is no history to sample subscribers from."""


@dataclass(frozen=True)
class BatchClock:
    """How a batch's rows are stamped.

    ``realtime``: around ``now``. ``simulated``: batch ``i`` falls on the day ``anchor + i``,
    so a stream continues the stored history one day per batch.
    """

    mode: ClockMode
    anchor: datetime

    def day_of(self, batch_index: int) -> datetime:
        """Midnight of the day a simulated batch is stamped with."""
        return self.anchor + timedelta(days=batch_index)


def simulated_anchor(latest: datetime) -> datetime:
    """The first simulated day: midnight after the latest stored ``DP_DATE``."""
    return datetime(latest.year, latest.month, latest.day) + timedelta(days=1)


def build_batch(
    base: pd.DataFrame,
    batch_index: int,
    size: int,
    seed: int,
    clock: BatchClock,
    now: datetime,
    scenario: Scenario | None = None,
) -> pd.DataFrame:
    """Build batch ``batch_index`` of a stream: ``size`` rows in `CDR_COLUMNS` order.

    Args:
        base: Recent history to sample from, with the raw CDR columns.
        batch_index: 0-based position of the batch in its stream; scenario knobs compare
            their ``from_step`` with it.
        size: Rows in the batch.
        seed: The stream's seed; with ``batch_index`` it fixes every random draw.
        clock: How rows are stamped.
        now: The wall-clock time, used by the realtime clock only.
        scenario: Drift to apply, if any.

    Raises:
        EmptyBaseError: ``base`` has no rows.
    """
    if base.empty:
        raise EmptyBaseError("there is no CDR history to sample subscribers from")
    scenario = scenario or Scenario()
    rng = np.random.default_rng([seed, batch_index])
    labels = base[LABEL_COLUMN].to_numpy(dtype=float, na_value=np.nan)

    weights = None
    rate_change = scenario.churn_rate_change
    if rate_change is not None and rate_change.active(batch_index):
        churned = np.nan_to_num(labels) == 1
        if churned.any():
            weights = np.where(churned, rate_change.factor, 1.0)
            weights /= weights.sum()
    replace = weights is not None or size > len(base)
    picked = rng.choice(len(base), size=size, replace=replace, p=weights)
    batch = base.iloc[picked].reset_index(drop=True).copy()

    noise = rng.lognormal(-(NOISE_SIGMA**2) / 2, NOISE_SIGMA, size=(size, len(USAGE_COLUMNS)))
    factors = _drift_factors(scenario, batch_index)
    for position, column in enumerate(USAGE_COLUMNS):
        values = batch[column].to_numpy(dtype=float, na_value=np.nan)
        jittered = np.maximum(values * noise[:, position] * factors[column], 0.0)
        if column in COUNT_COLUMNS:
            batch[column] = pd.array(np.round(jittered), dtype="Int64")
        else:
            batch[column] = np.round(jittered, 2)

    concept = scenario.concept_drift
    if concept is not None and concept.active(batch_index):
        batch[LABEL_COLUMN] = _redraw_labels(batch[LABEL_COLUMN], concept.strength, labels, rng)

    batch[DATE_COLUMN] = _timestamps(clock, batch_index, size, now, rng)
    return batch.loc[:, list(CDR_COLUMNS)]


def _drift_factors(scenario: Scenario, batch_index: int) -> dict[str, float]:
    factors = dict.fromkeys(USAGE_COLUMNS, 1.0)
    drift = scenario.covariate_drift
    if drift is not None and drift.active(batch_index):
        for columns, factor in (
            (VOICE_COLUMNS, drift.voice_factor),
            (SMS_COLUMNS, drift.sms_factor),
            (DATA_COLUMNS, drift.data_factor),
        ):
            factors.update(dict.fromkeys(columns, factor))
    return factors


def _redraw_labels(
    current: pd.Series, strength: float, base_labels: np.ndarray, rng: np.random.Generator
) -> pd.Series:
    """Replace a ``strength`` share of labels with draws that ignore usage, keeping the rate."""
    known = base_labels[~np.isnan(base_labels)]
    rate = float(known.mean()) if known.size else 0.0
    redraw = rng.random(len(current)) < strength
    fresh = (rng.random(len(current)) < rate).astype(int)
    values = current.to_numpy(dtype=float, na_value=np.nan)
    values = np.where(redraw & ~np.isnan(values), fresh, values)
    return pd.Series(pd.array(np.round(values), dtype="Int64"), index=current.index)


def _timestamps(
    clock: BatchClock, batch_index: int, size: int, now: datetime, rng: np.random.Generator
) -> pd.Series:
    if clock.mode == "realtime":
        offsets = rng.integers(-REALTIME_JITTER_S, REALTIME_JITTER_S + 1, size=size)
        start = pd.Timestamp(now).floor("s")
    else:
        offsets = rng.integers(0, _SECONDS_PER_DAY, size=size)
        start = pd.Timestamp(clock.day_of(batch_index))
    return pd.Series(start + pd.to_timedelta(np.sort(offsets), unit="s"))
