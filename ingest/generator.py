"""Deterministic synthetic call-detail records, the public stand-in for the private dataset.

One row holds one subscriber's usage aggregates for one day. The model:

- **Subscribers.** Each has a latent engagement ``z`` that scales all usage (``exp(0.5 z)``), a
  data affinity ``a ~ Beta(1.5, 1.5)`` that trades voice for data (voice-heavy at ``a -> 0``,
  data-heavy at ``a -> 1``), a gamma-spread rate per count column, and lognormal mean minutes
  per call and megabytes per session (data-heavy users also move bigger sessions).
- **Churn.** Each subscriber churns with a constant daily hazard ``c exp(-0.8 z)``: low
  engagement churns more. ``c`` is set so that ``churn_rate`` of the starting population churns
  within 30 days on average. The churn day is known from the subscriber's start on (a unit
  exponential clock run at the hazard), which is what lets every record carry its label.
- **A stationary population.** The ``subscribers`` of day 0 are the stationary population:
  ``z ~ N(0, 1)``, each with a tenure drawn from its own lifetime distribution. Newcomers arrive
  every day (Poisson) at the rate at which the population churns, with ``z ~ N(-0.8, 1)``:
  newcomers churn more, and this is exactly the mix that keeps the survivors at ``N(0, 1)``.
  Without a scenario, the population's size, tenure and usage mix thus stay stationary apart
  from weekly seasonality and Poisson noise. A newcomer's usage ramps up from 40 % to full over
  its first 14 days.
- **Days.** Counts are Poisson of rate x weekday factor x a gamma day-activity shared by all
  columns x the ramp-up x the churn decline below. Minutes and megabytes are the sum of
  ``count`` gamma-sized events, drawn exactly as one gamma with shape ``count x event shape``.
  Weekends carry less voice and more data. A subscriber skips a day with probability 3 %.
- **Decline and labels.** Over the last ``decay_days`` before churn, usage falls linearly to a
  floor of 10-30 % of normal; there are no records from the churn day on. ``PSEUDO_CHURNED`` is
  1 on records at most ``label_horizon_days`` before the churn day, also when that day lies
  after the generated window.
- **Scenario** (knobs apply from a day index on). ``covariate_drift`` scales the voice, SMS and
  data rates, at once or over ``ramp_steps`` days; ``churn_rate_change`` multiplies the hazard
  (churns before ``from_step`` stay where they were); ``concept_drift`` makes each churn dated
  ``>= from_step`` silent (no decline) with probability ``strength``, while non-churners show
  the same decline at the same rate and then recover, so usage stops predicting churn without
  changing its distribution; ``broken_feed`` makes one usage column zero or NULL.

Randomness is laid out by purpose and day: the population's traits and arrivals come from
``seed`` and the day they arrive, a day's usage from a *usage seed* and that day. So history
and a stream that continues it (``ingest.simulator``) share one population, scenarios with the
same seed share their subscribers, covariate drift leaves every record before ``from_step``
unchanged, and the population on any day can be rebuilt without drawing the usage before it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, fields
from threading import Lock
from typing import Any

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
    USAGE_COLUMNS,
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
WEEKDAY_FACTORS: dict[str, NDArray[np.float64]] = {
    "voice": np.array([1.05, 1.05, 1.05, 1.05, 1.10, 0.85, 0.70]),
    "sms": np.array([1.00, 1.00, 1.00, 1.00, 1.05, 1.00, 0.90]),
    "data": np.array([0.95, 0.95, 0.95, 0.95, 1.00, 1.15, 1.20]),
}
ENGAGEMENT_USAGE = 0.5
ENGAGEMENT_HAZARD = 0.8
_DATA_AFFINITY_BETA = 1.5
# Shapes above 1 keep every subscriber using every column a little, around a spread of ~50 %.
_RATE_SHAPE = 4.0
# Day-to-day variation common to all columns (busy days); coefficient of variation ~45 %.
_ACTIVITY_SHAPE = 5.0
SKIP_PROBABILITY = 0.03
DECLINE_FLOOR_RANGE = (0.1, 0.3)
RAMP_START = 0.4
RAMP_DAYS = 14
_HAZARD_PERIOD_DAYS = 30
# Churn days beyond this are all alike: they never reach any window.
_NEVER = 10**7
# Arrivals are drawn this many days ahead of need, so a growing stream rebuilds rarely.
_ARRIVALS_AHEAD = 64

# Purposes of the per-day random streams: np.random.default_rng([seed, purpose, day]).
TRAITS, ARRIVALS, USAGE, SKIPS = 0, 1, 2, 3

_KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "voice": VOICE_COLUMNS,
    "sms": SMS_COLUMNS,
    "data": DATA_COLUMNS,
}
COUNT_KINDS: dict[str, str] = {
    column: kind
    for kind, columns in _KIND_COLUMNS.items()
    for column in columns
    if column in COUNT_COLUMNS
}
AMOUNT_COUNTS: dict[str, str] = {column: model[0] for column, model in _AMOUNT_MODEL.items()}
EVENT_SHAPES: dict[str, float] = {column: model[3] for column, model in _AMOUNT_MODEL.items()}


class GeneratorConfig(BaseModel):
    """Size, churn behaviour, seed and drift scenario of one generated history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscribers: int = Field(
        3000, gt=0, le=10**_MSISDN_DIGITS, description="active subscribers on day 0"
    )
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


def day_rng(seed: int, purpose: int, day: int) -> np.random.Generator:
    """The random stream of one purpose on one day (day >= 0)."""
    return np.random.default_rng([seed, purpose, day])


@dataclass(frozen=True)
class Subscribers:
    """Latent traits of a set of subscribers, one array entry per subscriber.

    ``join_time`` is the (fractional) day the subscriber joined, negative for the population
    of day 0; ``clock_start`` is where its churn clock starts: ``max(join_time, 0)``, since a
    constant hazard has no memory. ``churn_clock`` and ``dip_clock`` are unit exponentials
    run at ``hazard`` per day; ``silent_draw`` and ``dip_draw`` are uniforms for concept drift.
    """

    msisdn: NDArray[np.object_]
    engagement: NDArray[np.float64]
    rates: dict[str, NDArray[np.float64]]
    event_means: dict[str, NDArray[np.float64]]
    decline_floor: NDArray[np.float64]
    join_time: NDArray[np.float64]
    clock_start: NDArray[np.float64]
    hazard: NDArray[np.float64]
    churn_clock: NDArray[np.float64]
    dip_clock: NDArray[np.float64]
    silent_draw: NDArray[np.float64]
    dip_draw: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.msisdn.size)

    def take(self, index: NDArray[np.int64]) -> Subscribers:
        """The subscribers at ``index``, in that order."""
        values: dict[str, Any] = {f.name: _take(getattr(self, f.name), index) for f in fields(self)}
        return Subscribers(**values)

    @staticmethod
    def concat(parts: list[Subscribers]) -> Subscribers:
        """All ``parts`` one after the other."""
        values: dict[str, Any] = {}
        for f in fields(Subscribers):
            first = getattr(parts[0], f.name)
            if isinstance(first, dict):
                values[f.name] = {
                    key: np.concatenate([getattr(p, f.name)[key] for p in parts]) for key in first
                }
            else:
                values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        return Subscribers(**values)


def _take(value: object, index: NDArray[np.int64]) -> object:
    if isinstance(value, dict):
        return {key: array[index] for key, array in value.items()}
    return value[index]  # type: ignore[index]


# Draws the newcomers of one day: (day, number of subscribers joined before) -> newcomers.
Arrivals = Callable[[int, int], Subscribers]


@dataclass(frozen=True)
class _Fate:
    """What the scenario makes of each subscriber's clocks."""

    join_day: NDArray[np.int64]
    churn_day: NDArray[np.int64]
    declines: NDArray[np.bool_]  # shows a decline before its churn
    dip_day: NDArray[np.int64]  # _NEVER unless it dips (concept drift)


class Population:
    """One world's subscribers, day by day: who is active, their usage, churn and labels.

    Arrivals are drawn lazily, day by day, so the population can be carried forward to any
    day; the result for a day never depends on how far it was carried before. Thread-safe.
    """

    def __init__(
        self,
        initial: Subscribers,
        arrivals: Arrivals,
        *,
        start_date: datetime.date,
        scenario: Scenario,
        decay_days: int,
        label_horizon_days: int,
    ) -> None:
        self.start_date = start_date
        self.scenario = scenario
        self.decay_days = decay_days
        self.label_horizon_days = label_horizon_days
        self._arrivals = arrivals
        self._parts = [initial]
        self._days_drawn = 0
        self._subscribers = initial
        self._fate = self._decide(initial)
        self._lock = Lock()

    @classmethod
    def for_generator(cls, config: GeneratorConfig, scenario: Scenario | None = None) -> Population:
        """The world of ``generate_cdr(config)``.

        Args:
            config: Size, churn behaviour and seed of the world.
            scenario: Replaces ``config.scenario`` when given (steps in days from
                ``config.start_date``).
        """
        engagement = day_rng(config.seed, TRAITS, 0).standard_normal(config.subscribers)
        weight = np.exp(-ENGAGEMENT_HAZARD * engagement)
        scale = hazard_scale(weight, config.churn_rate)
        rng = day_rng(config.seed, TRAITS, 1)
        traits = _draw_traits(rng, engagement, scale)
        # In the stationary population a subscriber's age is distributed like its lifetime.
        tenure = rng.standard_exponential(config.subscribers) / traits["hazard"]
        initial = Subscribers(
            msisdn=_msisdns(0, config.subscribers),
            join_time=-tenure,
            clock_start=np.zeros(config.subscribers),
            **traits,
        )
        # Newcomers at the rate the day-0 population churns; their N(-0.8, 1) engagement
        # (density x hazard, normalised) keeps the survivors at N(0, 1).
        rate = float(np.sum(traits["hazard"]))

        def arrivals(day: int, joined_before: int) -> Subscribers:
            rng = day_rng(config.seed, ARRIVALS, day)
            count = int(rng.poisson(rate))
            engagement = rng.normal(-ENGAGEMENT_HAZARD, 1.0, count)
            join_time = day + rng.random(count)
            return Subscribers(
                msisdn=_msisdns(joined_before, count),
                join_time=join_time,
                clock_start=join_time,
                **_draw_traits(rng, engagement, scale),
            )

        return cls(
            initial,
            arrivals,
            start_date=config.start_date,
            scenario=config.scenario if scenario is None else scenario,
            decay_days=config.decay_days,
            label_horizon_days=config.label_horizon_days,
        )

    def subscribers(self, until_day: int) -> tuple[Subscribers, _Fate]:
        """Everyone who joined before ``until_day``, with their fate (a prefix of later calls)."""
        with self._lock:
            if self._days_drawn < until_day:
                target = until_day + _ARRIVALS_AHEAD
                joined = len(self._subscribers)
                for day in range(self._days_drawn, target):
                    part = self._arrivals(day, joined)
                    joined += len(part)
                    self._parts.append(part)
                self._days_drawn = target
                self._subscribers = Subscribers.concat(self._parts)
                self._fate = self._decide(self._subscribers)
            return self._subscribers, self._fate

    def active(self, day: int) -> NDArray[np.int64]:
        """Positions (in :meth:`subscribers` order) of the subscribers active on ``day``."""
        _, fate = self.subscribers(day + 1)
        return np.flatnonzero((fate.join_day <= day) & (fate.churn_day > day))

    def day_size(self, day: int, usage_seed: int) -> int:
        """Rows of ``day``: active subscribers who do not skip it."""
        return int(np.count_nonzero(~self._skips(day, usage_seed, self.active(day).size)))

    def day_records(self, day: int, usage_seed: int) -> pd.DataFrame:
        """The records of ``day`` in `CDR_COLUMNS` order, sorted by MSISDN, dated midnight."""
        subscribers, fate = self.subscribers(day + 1)
        index = self.active(day)
        # One stream per column, so that drifting one column leaves the others' draws alone.
        rngs = np.random.SeedSequence([usage_seed, USAGE, day]).spawn(1 + len(USAGE_COLUMNS))
        rng = {c: np.random.default_rng(r) for c, r in zip(USAGE_COLUMNS, rngs[1:], strict=True)}
        n = index.size
        intensity = np.random.default_rng(rngs[0]).gamma(_ACTIVITY_SHAPE, 1.0 / _ACTIVITY_SHAPE, n)
        intensity *= self._usage_multiplier(day, index, subscribers, fate)
        weekday = (self.start_date.weekday() + day) % 7
        columns: dict[str, NDArray[np.float64] | NDArray[np.int64]] = {}
        for column, kind in COUNT_KINDS.items():
            factor = WEEKDAY_FACTORS[kind][weekday] * _drift_factor(self.scenario, kind, day)
            mean = subscribers.rates[column][index] * factor * intensity
            columns[column] = rng[column].poisson(mean).astype(np.int64)
        for column, count_column in AMOUNT_COUNTS.items():
            shape = EVENT_SHAPES[column]
            scale = subscribers.event_means[column][index] / shape
            columns[column] = np.round(rng[column].gamma(columns[count_column] * shape, scale), 2)

        keep = ~self._skips(day, usage_seed, n)
        index = index[keep]
        days_to_churn = fate.churn_day[index] - day
        label = (days_to_churn >= 1) & (days_to_churn <= self.label_horizon_days)
        date = pd.Timestamp(self.start_date) + pd.Timedelta(days=day)
        frame = pd.DataFrame(
            {
                DATE_COLUMN: np.full(index.size, date.to_datetime64(), dtype="datetime64[ns]"),
                SUBSCRIBER_COLUMN: subscribers.msisdn[index],
                **{column: columns[column][keep] for column in USAGE_COLUMNS},
                LABEL_COLUMN: label.astype(np.int64),
            }
        )
        return _break_feed(self.scenario, day, frame)

    def records(self, first_day: int, days: int, usage_seed: int) -> pd.DataFrame:
        """Records of ``days`` days from ``first_day`` on, sorted by date and MSISDN."""
        parts = [self.day_records(day, usage_seed) for day in range(first_day, first_day + days)]
        return pd.concat(parts, ignore_index=True)

    def _skips(self, day: int, usage_seed: int, n: int) -> NDArray[np.bool_]:
        return day_rng(usage_seed, SKIPS, day).random(n) < SKIP_PROBABILITY

    def _decide(self, subscribers: Subscribers) -> _Fate:
        hazard = subscribers.hazard
        start = subscribers.clock_start
        churn_time = start + subscribers.churn_clock / hazard
        change = self.scenario.churn_rate_change
        if change is not None:
            # Past from_step the clock runs `factor` times faster; churns before stay put.
            switch = float(change.from_step)
            before = np.maximum(switch - start, 0.0) * hazard
            after = np.maximum(start, switch) + (subscribers.churn_clock - before) / (
                hazard * change.factor
            )
            churn_time = np.where(subscribers.churn_clock <= before, churn_time, after)
        churn_day = np.floor(np.minimum(churn_time, _NEVER)).astype(np.int64)
        join_day = np.floor(subscribers.join_time).astype(np.int64)
        declines = np.ones(len(subscribers), dtype=bool)
        dip_day = np.full(len(subscribers), _NEVER, dtype=np.int64)
        drift = self.scenario.concept_drift
        if drift is not None:
            declines = ~(
                (churn_day >= drift.from_step) & (subscribers.silent_draw < drift.strength)
            )
            # A dip must neither be labelled nor run into the subscriber's own decline. Dips
            # start at from_step, at the churn hazard raised by the odds of surviving that
            # margin, so they replace the silent declines one for one on average.
            margin = max(self.decay_days, self.label_horizon_days) + 1
            dip_rate = hazard * np.exp(margin * hazard)
            dip_time = np.maximum(start, drift.from_step) + subscribers.dip_clock / dip_rate
            candidate = np.floor(np.minimum(dip_time, _NEVER)).astype(np.int64)
            dips = (
                (candidate >= drift.from_step)
                & (subscribers.dip_draw < drift.strength)
                & (churn_day > candidate + margin)
            )
            dip_day = np.where(dips, candidate, _NEVER)
        return _Fate(join_day=join_day, churn_day=churn_day, declines=declines, dip_day=dip_day)

    def _usage_multiplier(
        self, day: int, index: NDArray[np.int64], subscribers: Subscribers, fate: _Fate
    ) -> NDArray[np.float64]:
        age = day - subscribers.join_time[index]
        ramp = np.clip(RAMP_START + (1.0 - RAMP_START) * age / RAMP_DAYS, RAMP_START, 1.0)
        floor = subscribers.decline_floor[index]
        churn = np.where(
            fate.declines[index], _decline(fate.churn_day[index] - day, floor, self.decay_days), 1.0
        )
        dip_left = fate.dip_day[index] - day
        dip = np.where(dip_left > 0, _decline(dip_left, floor, self.decay_days), 1.0)
        return ramp * churn * dip


def _decline(
    days_left: NDArray[np.int64], floor: NDArray[np.float64], decay_days: int
) -> NDArray[np.float64]:
    """1, falling linearly to ``floor`` on the last day before the decline's end."""
    progress = np.clip((days_left - 1) / decay_days, 0.0, 1.0)
    return floor + (1.0 - floor) * progress


def _drift_factor(scenario: Scenario, kind: str, day: int) -> float:
    drift = scenario.covariate_drift
    if drift is None:
        return 1.0
    factor = {"voice": drift.voice_factor, "sms": drift.sms_factor, "data": drift.data_factor}[kind]
    return float(factor ** drift.progress(day))


def _break_feed(scenario: Scenario, day: int, frame: pd.DataFrame) -> pd.DataFrame:
    broken = scenario.broken_feed
    if broken is None or not broken.active(day):
        return frame
    column = broken.column
    if broken.value == "zero":
        frame[column] = np.zeros(len(frame), dtype=frame[column].dtype)
    elif column in COUNT_COLUMNS:
        frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
    else:
        frame[column] = np.full(len(frame), np.nan)
    return frame


def generate_cdr(config: GeneratorConfig) -> pd.DataFrame:
    """Generate a history of daily usage records.

    Args:
        config: Size, churn behaviour, seed and scenario of the history.

    Returns:
        One row per subscriber and active day with exactly the columns of
        ``db.schema.CDR_COLUMNS``, sorted by date and MSISDN. Counts are ``int64`` (``Int64``
        for a count column a NULL ``broken_feed`` empties), minutes and megabytes are floats
        rounded to 2 decimals, ``PSEUDO_CHURNED`` is 0 or 1. The same config always gives the
        same frame.
    """
    frame = Population.for_generator(config).records(0, config.days, config.seed)
    return frame[list(CDR_COLUMNS)]


def draw_subscribers(config: GeneratorConfig) -> pd.DataFrame:
    """Return the latent subscriber table behind ``generate_cdr(config)``.

    The ground truth that the records only show indirectly: for evaluation and tests.

    Args:
        config: The same config as passed to :func:`generate_cdr`.

    Returns:
        One row per subscriber of day 0 and per newcomer joining within the window (in that
        order; a churn on the first day leaves no record), with ``DP_MSISDN``;
        ``engagement``, the latent trait behind both usage level and churn hazard;
        ``join_day``, the day index (0 = ``start_date``) of joining, negative for the day-0
        population; ``churn_day``, ``>= config.days`` when it falls after the window;
        ``decline_day``, the churn day when usage declines before it, ``<NA>`` for churns
        without warning (concept drift); and ``dip_day``, ``<NA>`` unless the subscriber
        shows a decline without churning (concept drift).
    """
    subscribers, fate = Population.for_generator(config).subscribers(config.days)
    seen = np.flatnonzero(fate.join_day < config.days)
    churn_day = fate.churn_day[seen]
    dip_day = fate.dip_day[seen]
    return pd.DataFrame(
        {
            SUBSCRIBER_COLUMN: subscribers.msisdn[seen],
            "engagement": subscribers.engagement[seen],
            "join_day": fate.join_day[seen],
            "churn_day": churn_day,
            "decline_day": pd.Series(churn_day, dtype="Int64").where(fate.declines[seen]),
            "dip_day": pd.Series(dip_day, dtype="Int64").where(dip_day < _NEVER),
        }
    )


def _msisdns(first: int, count: int) -> NDArray[np.object_]:
    return np.array(
        [f"{MSISDN_PREFIX}{i:0{_MSISDN_DIGITS}d}" for i in range(first, first + count)],
        dtype=object,
    )


def _draw_traits(
    rng: np.random.Generator, engagement: NDArray[np.float64], scale: float
) -> dict[str, Any]:
    n = engagement.size
    data_affinity = rng.beta(_DATA_AFFINITY_BETA, _DATA_AFFINITY_BETA, n)
    # Centred so that the engagement and affinity factors average 1 over N(0, 1) engagement.
    level = np.exp(ENGAGEMENT_USAGE * engagement - ENGAGEMENT_USAGE**2 / 2)
    kind_mix = {
        "voice": 0.3 + 1.4 * (1.0 - data_affinity),
        "sms": np.ones(n),
        "data": 0.3 + 1.4 * data_affinity,
    }
    rates = {
        column: _BASE_RATES[column]
        * level
        * kind_mix[kind]
        * rng.gamma(_RATE_SHAPE, 1.0 / _RATE_SHAPE, n)
        for column, kind in COUNT_KINDS.items()
    }
    event_means = {
        column: rng.lognormal(np.log(median), sigma, n)
        for column, (_, median, sigma, _) in _AMOUNT_MODEL.items()
    }
    event_means["DP_DATA_VOLUME"] *= 0.5 + data_affinity
    return {
        "engagement": engagement,
        "rates": rates,
        "event_means": event_means,
        "decline_floor": rng.uniform(*DECLINE_FLOOR_RANGE, n),
        "hazard": scale * np.exp(-ENGAGEMENT_HAZARD * engagement),
        "churn_clock": rng.standard_exponential(n),
        "dip_clock": rng.standard_exponential(n),
        "silent_draw": rng.random(n),
        "dip_draw": rng.random(n),
    }


def hazard_scale(weight: NDArray[np.float64], churn_rate: float) -> float:
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
