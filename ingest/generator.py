"""Deterministic synthetic call-detail records, the public stand-in for the private dataset.

One row holds one subscriber's usage aggregates for one day. The model:

- **Population.** Each subscriber has a latent engagement ``z ~ N(0, 1)`` that scales all usage
  (``exp(0.5 z)``), a data affinity ``a ~ Beta(1.5, 1.5)`` that trades voice for data (voice-heavy
  at ``a -> 0``, data-heavy at ``a -> 1``), a gamma-spread rate per count column, and lognormal
  mean minutes per call and megabytes per session (data-heavy users also move bigger sessions).
- **Days.** Counts are Poisson of rate x weekday factor x a gamma day-activity shared by all
  columns x the churn decline below. Minutes and megabytes are the sum of ``count`` gamma-sized
  events, drawn exactly as one gamma with shape ``count x event shape``. Weekends carry less voice
  and more data. A subscriber skips a day with probability 3 %, independently of everything else.
- **Churn.** Hazards are ``exp(-0.8 z)`` scaled so that, on average over the population,
  ``churn_rate`` of the subscribers churn within 30 days; low-engagement subscribers thus churn
  more. Churn times are exponential, so many fall after the window (censored). Over the last
  ``decay_days`` before churn, usage falls linearly to a floor of 10-30 % of normal; there are no
  records from the churn day on. ``PSEUDO_CHURNED`` is 1 on records at most
  ``label_horizon_days`` before the churn day, also when that day lies after the window.
- **Scenario.** ``covariate_drift`` scales the voice, SMS and data rates on days ``>= from_step``;
  ``churn_rate_change`` multiplies the hazard from ``from_step`` on; ``concept_drift`` makes each
  churn dated ``>= from_step`` silent (no decline) with probability ``strength`` and hands its
  decline to a subscriber who does not churn within the window, who then stays at the floor.

Every random component draws from its own child stream of ``numpy.random.default_rng(seed)``,
laid out day by day, so scenarios with the same seed share the population, and covariate drift
leaves every record before ``from_step`` unchanged.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from db.schema import (
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATA_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SMS_COLUMNS,
    SUBSCRIBER_COLUMN,
    VOICE_COLUMNS,
)
from ingest.scenario import Scenario

MSISDN_PREFIX = "2771"
_MSISDN_DIGITS = 7

# Mean events per day for an average subscriber, before weekday and activity factors.
_BASE_RATES: dict[str, float] = {
    "DP_MOC_COUNT": 3.0,
    "DP_MTC_COUNT": 2.5,
    "DP_MOSMS_COUNT": 1.2,
    "DP_MTSMS_COUNT": 2.0,
    "DP_DATA_COUNT": 4.0,
}
# Each amount column sums the events of one count column; median event size across subscribers,
# its lognormal spread, and the gamma shape of single events (below 1: many small, few large).
_AMOUNT_MODEL: dict[str, tuple[str, float, float, float]] = {
    "DP_MOC_DURATION": ("DP_MOC_COUNT", 2.0, 0.5, 0.7),
    "DP_MTC_DURATION": ("DP_MTC_COUNT", 1.7, 0.5, 0.7),
    "DP_DATA_VOLUME": ("DP_DATA_COUNT", 25.0, 0.7, 0.4),
}
# Monday..Sunday.
_WEEKDAY_FACTORS: dict[str, tuple[float, ...]] = {
    "voice": (1.05, 1.05, 1.05, 1.05, 1.10, 0.85, 0.70),
    "sms": (1.00, 1.00, 1.00, 1.00, 1.05, 1.00, 0.90),
    "data": (0.95, 0.95, 0.95, 0.95, 1.00, 1.15, 1.20),
}
_ENGAGEMENT_USAGE = 0.5
_ENGAGEMENT_HAZARD = 0.8
_DATA_AFFINITY_BETA = 1.5
# Shapes above 1 keep every subscriber using every column a little, around a spread of ~50 %.
_RATE_SHAPE = 4.0
# Day-to-day variation common to all columns (busy days); coefficient of variation ~45 %.
_ACTIVITY_SHAPE = 5.0
_SKIP_PROBABILITY = 0.03
_DECLINE_FLOOR_RANGE = (0.1, 0.3)
_HAZARD_PERIOD_DAYS = 30
# Churn times beyond this many days after the window are all alike: they never reach it.
_CENSOR_DAYS = 100_000

_KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "voice": VOICE_COLUMNS,
    "sms": SMS_COLUMNS,
    "data": DATA_COLUMNS,
}
_COUNT_KINDS: dict[str, str] = {
    column: kind
    for kind, columns in _KIND_COLUMNS.items()
    for column in columns
    if column in COUNT_COLUMNS
}
_STREAMS = (
    "traits",
    "churn",
    "concept",
    "activity",
    "skip",
    *COUNT_COLUMNS,
    *_AMOUNT_MODEL,
)


class GeneratorConfig(BaseModel):
    """Size, churn behaviour, seed and drift scenario of one generated history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscribers: int = Field(3000, gt=0, le=10**_MSISDN_DIGITS)
    days: int = Field(60, gt=0, le=3660)
    start_date: datetime.date = datetime.date(2024, 1, 1)
    churn_rate: float = Field(
        0.15, gt=0, lt=1, description="expected fraction of subscribers churning per 30 days"
    )
    decay_days: int = Field(21, gt=0, description="days a churner's usage declines beforehand")
    label_horizon_days: int = Field(
        14, gt=0, description="records at most this many days before churn are labelled 1"
    )
    seed: int = Field(42, ge=0)
    scenario: Scenario = Field(default_factory=Scenario)


@dataclass(frozen=True)
class _Population:
    engagement: NDArray[np.float64]
    rates: dict[str, NDArray[np.float64]]
    event_means: dict[str, NDArray[np.float64]]
    decline_floor: NDArray[np.float64]
    churn_day: NDArray[np.int64]
    decline_day: NDArray[np.int64]
    declines: NDArray[np.bool_]


def generate_cdr(config: GeneratorConfig) -> pd.DataFrame:
    """Generate a history of daily usage records.

    Args:
        config: Size, churn behaviour, seed and scenario of the history.

    Returns:
        One row per subscriber and active day with exactly the columns of
        ``db.schema.CDR_COLUMNS``, sorted by date and MSISDN. Counts are ``int64``, minutes and
        megabytes are floats rounded to 2 decimals, ``PSEUDO_CHURNED`` is 0 or 1. The same config
        always gives the same frame.
    """
    streams = _streams(config.seed)
    population = _draw_population(config, streams)
    days = np.arange(config.days)

    weekday = (config.start_date.weekday() + days) % 7
    decline = _decline_multiplier(config, population, days)
    activity = streams["activity"].gamma(
        _ACTIVITY_SHAPE, 1.0 / _ACTIVITY_SHAPE, size=(config.days, config.subscribers)
    )
    intensity = activity * decline

    columns: dict[str, NDArray[np.int64] | NDArray[np.float64]] = {}
    for column, kind in _COUNT_KINDS.items():
        day_factor = np.asarray(_WEEKDAY_FACTORS[kind])[weekday] * _drift_factor(config, kind, days)
        mean = population.rates[column] * day_factor[:, None] * intensity
        columns[column] = streams[column].poisson(mean).astype(np.int64)
    for column, (count_column, _, _, event_shape) in _AMOUNT_MODEL.items():
        scale = population.event_means[column] / event_shape
        columns[column] = streams[column].gamma(columns[count_column] * event_shape, scale)

    skipped = streams["skip"].random((config.days, config.subscribers)) < _SKIP_PROBABILITY
    active = (days[:, None] < population.churn_day[None, :]) & ~skipped
    day_index, subscriber_index = np.nonzero(active)

    days_to_churn = population.churn_day[subscriber_index] - day_index
    label = (days_to_churn >= 1) & (days_to_churn <= config.label_horizon_days)
    dates = np.datetime64(config.start_date, "D") + days
    frame = pd.DataFrame(
        {
            DATE_COLUMN: dates[day_index].astype("datetime64[ns]"),
            SUBSCRIBER_COLUMN: _msisdns(config.subscribers)[subscriber_index],
            **{
                column: np.round(values[active], 2) if column in _AMOUNT_MODEL else values[active]
                for column, values in columns.items()
            },
            LABEL_COLUMN: label.astype(np.int64),
        }
    )
    return frame[list(CDR_COLUMNS)]


def draw_subscribers(config: GeneratorConfig) -> pd.DataFrame:
    """Return the latent subscriber table behind ``generate_cdr(config)``.

    The ground truth that the records only show indirectly: for evaluation and tests.

    Args:
        config: The same config as passed to :func:`generate_cdr`.

    Returns:
        One row per subscriber, ordered by MSISDN, with ``DP_MSISDN``; ``engagement``, the latent
        trait behind both usage level and churn hazard; ``churn_day``, the day index
        (0 = ``start_date``) of the churn, ``>= config.days`` when it falls after the window; and
        ``decline_day``, the day index by which usage has fallen to its floor: the churn day for
        ordinary churners, ``<NA>`` for churns without warning (concept drift), and an earlier
        day than the churn day for the non-churners who decline instead.
    """
    population = _draw_population(config, _streams(config.seed))
    return pd.DataFrame(
        {
            SUBSCRIBER_COLUMN: _msisdns(config.subscribers),
            "engagement": population.engagement,
            "churn_day": population.churn_day,
            "decline_day": pd.Series(population.decline_day, dtype="Int64").where(
                population.declines
            ),
        }
    )


def _streams(seed: int) -> dict[str, np.random.Generator]:
    return dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS)), strict=True))


def _msisdns(subscribers: int) -> NDArray[np.str_]:
    return np.array([f"{MSISDN_PREFIX}{i:0{_MSISDN_DIGITS}d}" for i in range(subscribers)])


def _draw_population(
    config: GeneratorConfig, streams: dict[str, np.random.Generator]
) -> _Population:
    n = config.subscribers
    traits = streams["traits"]
    engagement = traits.standard_normal(n)
    data_affinity = traits.beta(_DATA_AFFINITY_BETA, _DATA_AFFINITY_BETA, n)
    # Centred so that the engagement and affinity factors average 1 over the population.
    level = np.exp(_ENGAGEMENT_USAGE * engagement - _ENGAGEMENT_USAGE**2 / 2)
    kind_mix = {
        "voice": 0.3 + 1.4 * (1.0 - data_affinity),
        "sms": np.ones(n),
        "data": 0.3 + 1.4 * data_affinity,
    }
    rates = {
        column: _BASE_RATES[column]
        * level
        * kind_mix[kind]
        * traits.gamma(_RATE_SHAPE, 1.0 / _RATE_SHAPE, n)
        for column, kind in _COUNT_KINDS.items()
    }
    event_means = {
        column: traits.lognormal(np.log(median), sigma, n)
        for column, (_, median, sigma, _) in _AMOUNT_MODEL.items()
    }
    event_means["DP_DATA_VOLUME"] *= 0.5 + data_affinity
    decline_floor = traits.uniform(*_DECLINE_FLOOR_RANGE, n)

    churn_day = _draw_churn_days(config, engagement, streams["churn"])
    decline_day, declines = _assign_declines(config, churn_day, streams["concept"])
    return _Population(
        engagement=engagement,
        rates=rates,
        event_means=event_means,
        decline_floor=decline_floor,
        churn_day=churn_day,
        decline_day=decline_day,
        declines=declines,
    )


def _draw_churn_days(
    config: GeneratorConfig, engagement: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.int64]:
    weight = np.exp(-_ENGAGEMENT_HAZARD * engagement)
    hazard = _hazard_scale(weight, config.churn_rate) * weight
    churn_time = rng.standard_exponential(config.subscribers) / hazard
    change = config.scenario.churn_rate_change
    if change is not None:
        # Inverting the piecewise-constant cumulative hazard: past from_step, time runs `factor`
        # times faster, and churns before from_step stay exactly where they were.
        start = float(change.from_step)
        churn_time = np.where(
            churn_time < start, churn_time, start + (churn_time - start) / change.factor
        )
    return np.floor(np.minimum(churn_time, config.days + _CENSOR_DAYS)).astype(np.int64)


def _hazard_scale(weight: NDArray[np.float64], churn_rate: float) -> float:
    """Solve ``mean(1 - exp(-30 * c * weight)) == churn_rate`` for ``c`` by bisection."""

    def churned(scale: float) -> float:
        return float(np.mean(-np.expm1(-_HAZARD_PERIOD_DAYS * scale * weight)))

    low, high = 0.0, 1.0
    while churned(high) < churn_rate:
        high *= 2.0
    for _ in range(100):
        middle = (low + high) / 2.0
        low, high = (middle, high) if churned(middle) < churn_rate else (low, middle)
    return (low + high) / 2.0


def _assign_declines(
    config: GeneratorConfig, churn_day: NDArray[np.int64], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    decline_day = churn_day.copy()
    declines = np.ones(config.subscribers, dtype=bool)
    drift = config.scenario.concept_drift
    if drift is None:
        return decline_day, declines

    # Only churns whose decline reaches into the window change what the records show.
    eligible = (churn_day >= drift.from_step) & (churn_day < config.days + config.decay_days)
    silent = eligible & (rng.random(config.subscribers) < drift.strength)
    declines[silent] = False
    # Decoys must neither churn nor be labelled in the window, or the label rate would move.
    untouched = config.days + max(config.decay_days, config.label_horizon_days)
    pool = np.flatnonzero(churn_day >= untouched)
    silent_days = rng.permutation(churn_day[silent])
    decoys = rng.choice(pool, size=min(silent_days.size, pool.size), replace=False)
    decline_day[decoys] = silent_days[: decoys.size]
    return decline_day, declines


def _decline_multiplier(
    config: GeneratorConfig, population: _Population, days: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Usage factor per (day, subscriber): 1, falling linearly to the floor by the decline day."""
    days_left = population.decline_day[None, :] - days[:, None]
    progress = np.clip((days_left - 1) / config.decay_days, 0.0, 1.0)
    floor = population.decline_floor[None, :]
    multiplier = floor + (1.0 - floor) * progress
    return np.where(population.declines[None, :], multiplier, 1.0)


def _drift_factor(
    config: GeneratorConfig, kind: str, days: NDArray[np.int64]
) -> NDArray[np.float64]:
    drift = config.scenario.covariate_drift
    if drift is None:
        return np.ones(days.size)
    factor = {"voice": drift.voice_factor, "sms": drift.sms_factor, "data": drift.data_factor}[kind]
    return np.where(days >= drift.from_step, factor, 1.0)
