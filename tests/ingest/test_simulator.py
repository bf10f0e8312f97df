"""Tests for the stream's batches: the seeded population carried forward, cut into batches."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from db.schema import (
    AMOUNT_COLUMNS,
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SUBSCRIBER_COLUMN,
    USAGE_COLUMNS,
)
from ingest.generator import GeneratorConfig, Population, generate_cdr
from ingest.scenario import BrokenFeed, ChurnRateChange, ConceptDrift, CovariateDrift, Scenario
from ingest.simulator import (
    REALTIME_JITTER_S,
    BatchClock,
    EmptyBaseError,
    GeneratorBase,
    StreamDays,
    build_batch,
    profile_base,
    simulated_anchor,
    stream_days,
)

CONFIG = GeneratorConfig(subscribers=300, days=28, seed=3)
BASE = GeneratorBase(CONFIG, CONFIG.days)
FIRST_DAY = datetime(2024, 1, 29)
NOW = datetime(2026, 3, 5, 14, 30, 0)
REALTIME = BatchClock("realtime", FIRST_DAY)
SIMULATED = BatchClock("simulated", FIRST_DAY)
SEED = 11


def _batch(
    batch_index: int = 0,
    size: int = 500,
    seed: int = SEED,
    clock: BatchClock = SIMULATED,
    scenario: Scenario | None = None,
    base: GeneratorBase | pd.DataFrame = BASE,
) -> pd.DataFrame:
    return build_batch(base, batch_index, size, seed, clock, NOW, scenario)


def _stream(
    days: int, size: int = 500, scenario: Scenario | None = None, seed: int = SEED
) -> pd.DataFrame:
    """The first ``days`` streamed days, whole, with their day index and event count."""
    frames, index = [], 0
    while True:
        batch = _batch(index, size, seed, scenario=scenario)
        frames.append(batch)
        index += 1
        if batch[DATE_COLUMN].max() >= FIRST_DAY + timedelta(days=days):
            break
    stream = pd.concat(frames, ignore_index=True)
    day = (stream[DATE_COLUMN] - FIRST_DAY).dt.days
    stream = stream.assign(day=day, events=stream[list(COUNT_COLUMNS)].sum(axis=1))
    return stream[stream["day"] < days].reset_index(drop=True)


@pytest.mark.parametrize("size", [1, 37, 500, 2000])
def test_batch_has_the_requested_rows_in_table_column_order(size: int) -> None:
    batch = _batch(size=size)

    assert len(batch) == size
    assert list(batch.columns) == list(CDR_COLUMNS)
    assert batch.index.tolist() == list(range(size))


def test_a_batch_is_rebuilt_exactly_from_its_seed_and_index_also_without_the_cache() -> None:
    first = _batch(batch_index=7)
    stream_days.cache_clear()

    pd.testing.assert_frame_equal(_batch(batch_index=7), first)
    pd.testing.assert_frame_equal(_batch(batch_index=7), first)


@pytest.mark.parametrize(("seed", "batch_index"), [(SEED + 1, 0), (SEED, 1)])
def test_another_batch_index_or_seed_draws_another_batch(seed: int, batch_index: int) -> None:
    first, other = _batch(), _batch(batch_index, seed=seed)

    assert not first[list(USAGE_COLUMNS)].equals(other[list(USAGE_COLUMNS)])
    assert not first[DATE_COLUMN].equals(other[DATE_COLUMN])


def test_batches_cut_the_concatenated_days_whatever_their_size() -> None:
    small = pd.concat([_batch(i, 130) for i in range(30)], ignore_index=True)
    large = pd.concat([_batch(i, 1300) for i in range(3)], ignore_index=True)

    pd.testing.assert_frame_equal(small, large)
    # Each day is whole, in time order, before the next begins.
    assert small[DATE_COLUMN].is_monotonic_increasing
    days = StreamDays(BASE, SEED, Scenario())
    per_day = small.groupby(small[DATE_COLUMN].dt.normalize()).size()
    full_days = per_day.iloc[:-1]  # the last one is cut by the batch end
    assert full_days.tolist() == [days.day_size(k) for k in range(len(full_days))]


def test_a_day_has_one_row_per_active_subscriber_like_a_history_day() -> None:
    history = generate_cdr(CONFIG)
    stream = _stream(14)

    history_rows = history.groupby(DATE_COLUMN).size()
    stream_rows = stream.groupby("day").size()
    assert stream.groupby("day")[SUBSCRIBER_COLUMN].nunique().equals(stream_rows)
    assert abs(stream_rows.mean() / history_rows.mean() - 1) < 0.05
    for column in ("events", "DP_DATA_VOLUME"):
        history_mean = history[list(COUNT_COLUMNS)].sum(axis=1).mean()
        if column != "events":
            history_mean = history[column].mean()
        assert abs(stream[column].mean() / history_mean - 1) < 0.1, column


def test_the_stream_carries_the_same_subscribers_forward() -> None:
    history = generate_cdr(CONFIG)
    stream = _stream(28)
    population = Population.for_generator(CONFIG)
    subscribers, fate = population.subscribers(CONFIG.days + 28)
    churn_day = pd.Series(fate.churn_day, index=subscribers.msisdn)
    join_day = pd.Series(fate.join_day, index=subscribers.msisdn)

    last_day = set(
        history.loc[history[DATE_COLUMN] == history[DATE_COLUMN].max(), SUBSCRIBER_COLUMN]
    )
    first_day = set(stream.loc[stream["day"] == 0, SUBSCRIBER_COLUMN])
    assert len(first_day & last_day) > 0.93 * len(last_day)
    # Churners leave for good: no record on or after the churn day.
    assert (stream["day"] + CONFIG.days < stream[SUBSCRIBER_COLUMN].map(churn_day)).all()
    assert (history[SUBSCRIBER_COLUMN].map(churn_day) < CONFIG.days + 28).sum() > 0
    # Newcomers join: numbered after everyone of the history, recorded from their join day.
    newcomers = set(stream[SUBSCRIBER_COLUMN]) - set(history[SUBSCRIBER_COLUMN])
    assert len(newcomers) > 5
    assert (join_day[list(newcomers)] >= CONFIG.days - 1).all()
    assert max(newcomers) > max(history[SUBSCRIBER_COLUMN])


def test_streamed_labels_follow_the_churn_process_and_horizon() -> None:
    stream = _stream(42)
    subscribers, fate = Population.for_generator(CONFIG).subscribers(CONFIG.days + 60)
    churn_day = pd.Series(fate.churn_day, index=subscribers.msisdn)
    days_left = stream[SUBSCRIBER_COLUMN].map(churn_day) - (stream["day"] + CONFIG.days)

    expected = ((days_left >= 1) & (days_left <= CONFIG.label_horizon_days)).astype(np.int64)
    pd.testing.assert_series_equal(stream[LABEL_COLUMN], expected, check_names=False)
    assert stream[LABEL_COLUMN].sum() > 50
    # From the data alone: someone labelled 1 in the first 2 weeks is gone within 14 days.
    labelled = stream[(stream[LABEL_COLUMN] == 1) & (stream["day"] < 14)]
    last_seen = stream.groupby(SUBSCRIBER_COLUMN)["day"].max()
    assert (
        last_seen[labelled[SUBSCRIBER_COLUMN]].to_numpy() < labelled["day"].to_numpy() + 14
    ).all()


def test_counts_stay_non_negative_integers_and_amounts_non_negative() -> None:
    batch = _batch(size=2000)

    for column in COUNT_COLUMNS:
        assert pd.api.types.is_integer_dtype(batch[column]), column
        assert (batch[column] >= 0).all(), column
    for column in AMOUNT_COLUMNS:
        assert pd.api.types.is_float_dtype(batch[column]), column
        assert (batch[column] >= 0).all(), column
    assert set(batch[LABEL_COLUMN].unique()) <= {0, 1}


def test_realtime_stamps_fall_within_five_minutes_of_now() -> None:
    stamps = _batch(clock=REALTIME, size=2000)[DATE_COLUMN]
    window = timedelta(seconds=REALTIME_JITTER_S)

    assert REALTIME_JITTER_S == 300
    assert stamps.min() >= NOW - window
    assert stamps.max() <= NOW + window
    assert stamps.max() - stamps.min() > window
    assert stamps.is_monotonic_increasing
    # The content is the same population's: only the stamps differ.
    simulated = _batch(size=2000)
    pd.testing.assert_frame_equal(
        simulated.drop(columns=DATE_COLUMN),
        _batch(clock=REALTIME, size=2000).drop(columns=DATE_COLUMN),
    )


def test_simulated_stamps_fall_on_the_anchor_plus_the_streamed_day() -> None:
    stream = _stream(3)

    assert (
        stream[DATE_COLUMN].dt.normalize() == FIRST_DAY + pd.to_timedelta(stream["day"], "D")
    ).all()
    assert stream[DATE_COLUMN].nunique() > 500  # spread over the day
    assert set(stream["day"]) == {0, 1, 2}
    # The wall clock plays no part.
    later = build_batch(BASE, 2, 500, SEED, SIMULATED, NOW + timedelta(days=30))
    pd.testing.assert_frame_equal(later, _batch(2))


@pytest.mark.parametrize(
    ("latest", "anchor"),
    [
        (datetime(2024, 1, 10), datetime(2024, 1, 11)),
        (datetime(2024, 1, 10, 23, 59, 59), datetime(2024, 1, 11)),
        (datetime(2024, 12, 31, 12), datetime(2025, 1, 1)),
    ],
)
def test_simulated_anchor_is_the_midnight_after_the_latest_record(
    latest: datetime, anchor: datetime
) -> None:
    assert simulated_anchor(latest) == anchor


def test_covariate_drift_scales_usage_from_its_streamed_day_on() -> None:
    drift = CovariateDrift(from_step=5, voice_factor=0.5, sms_factor=1.0, data_factor=3.0)
    plain, drifted = _stream(12), _stream(12, scenario=Scenario(covariate_drift=drift))
    before = plain["day"] < 5

    pd.testing.assert_frame_equal(drifted[before], plain[before])
    keys = [DATE_COLUMN, SUBSCRIBER_COLUMN, LABEL_COLUMN, "DP_MOSMS_COUNT", "DP_MTSMS_COUNT"]
    pd.testing.assert_frame_equal(drifted[keys], plain[keys])
    for column, factor in (("DP_MOC_COUNT", 0.5), ("DP_DATA_COUNT", 3.0), ("DP_DATA_VOLUME", 3.0)):
        ratio = drifted.loc[~before, column].mean() / plain.loc[~before, column].mean()
        assert ratio == pytest.approx(factor, rel=0.1), column


@pytest.mark.parametrize("value", ["zero", "null"])
def test_a_broken_feed_empties_its_column_from_its_streamed_day_on(value: str) -> None:
    broken = BrokenFeed(from_step=3, column="DP_MTC_DURATION", value=value)  # type: ignore[arg-type]
    plain, stream = _stream(6), _stream(6, scenario=Scenario(broken_feed=broken))
    after = stream["day"] >= 3

    others = [c for c in stream.columns if c != "DP_MTC_DURATION"]
    pd.testing.assert_frame_equal(stream[others], plain[others])
    assert stream.loc[~after, "DP_MTC_DURATION"].equals(plain.loc[~after, "DP_MTC_DURATION"])
    if value == "zero":
        assert (stream.loc[after, "DP_MTC_DURATION"] == 0).all()
    else:
        assert stream.loc[after, "DP_MTC_DURATION"].isna().all()


def test_churn_rate_change_raises_churn_from_its_streamed_day_on() -> None:
    change = Scenario(churn_rate_change=ChurnRateChange(from_step=7, factor=4.0))
    plain, changed = _stream(28), _stream(28, scenario=change)

    # Nobody churns earlier before day 7 (labels may: they look 14 days ahead).
    keys = [DATE_COLUMN, SUBSCRIBER_COLUMN]
    pd.testing.assert_frame_equal(
        changed.loc[changed["day"] < 7, keys], plain.loc[plain["day"] < 7, keys]
    )
    late_changed, late_plain = changed[changed["day"] >= 14], plain[plain["day"] >= 14]
    assert late_changed[LABEL_COLUMN].mean() > 2.5 * late_plain[LABEL_COLUMN].mean()
    assert (
        late_changed.groupby("day").size().mean() < 0.97 * late_plain.groupby("day").size().mean()
    )


def test_concept_drift_keeps_who_is_active_and_their_labels_but_not_their_usage() -> None:
    drift = Scenario(concept_drift=ConceptDrift(from_step=0, strength=1.0))
    plain, drifted = _stream(28), _stream(28, scenario=drift)

    keys = [DATE_COLUMN, SUBSCRIBER_COLUMN, LABEL_COLUMN]
    pd.testing.assert_frame_equal(drifted[keys], plain[keys])
    # Churners no longer decline: their labelled records lose the drop in usage, ...
    labelled = (plain[LABEL_COLUMN] == 1) & (plain["day"] >= 7)
    assert drifted.loc[labelled, "events"].mean() > 1.5 * plain.loc[labelled, "events"].mean()
    # ... while usage as a whole keeps its level (stayers dip instead).
    assert drifted["events"].mean() == pytest.approx(plain["events"].mean(), rel=0.05)


def test_loaded_history_is_continued_from_28_day_profiles() -> None:
    history = generate_cdr(GeneratorConfig(subscribers=400, days=35, seed=8))
    history["DP_MOSMS_COUNT"] = pd.array([pd.NA] * len(history), dtype="Int64")
    sparse = np.random.default_rng(0).random(len(history)) < 0.2
    history["DP_DATA_VOLUME"] = history["DP_DATA_VOLUME"].mask(sparse)
    base = profile_base(history, date(2024, 2, 5))
    stream = pd.concat(
        [build_batch(base, i, 1000, 1, SIMULATED, NOW) for i in range(12)], ignore_index=True
    )

    assert base.initial.msisdn.size > 370
    last_week = history[history[DATE_COLUMN] >= pd.Timestamp("2024-01-29")]
    for column in ("DP_MOC_COUNT", "DP_DATA_VOLUME", "DP_MTC_DURATION"):
        assert abs(stream[column].mean() / last_week[column].mean() - 1) < 0.15, column
    # NULL as often as in history: always for a column never filled, 20 % for a sparse one.
    assert stream["DP_MOSMS_COUNT"].isna().all()
    assert stream["DP_DATA_VOLUME"].isna().mean() == pytest.approx(0.2, abs=0.02)
    assert stream["DP_DATA_COUNT"].notna().all()
    rows_per_day = stream.groupby(stream[DATE_COLUMN].dt.normalize()).size().iloc[:-1]
    assert abs(rows_per_day.mean() / last_week.groupby(DATE_COLUMN).size().mean() - 1) < 0.1
    assert 0.03 < stream[LABEL_COLUMN].mean() < 0.15
    # Subscribers continue; newcomers get numbers of their own.
    known = stream[SUBSCRIBER_COLUMN].isin(set(history[SUBSCRIBER_COLUMN]))
    assert known.mean() > 0.9
    assert (stream.loc[~known, SUBSCRIBER_COLUMN].str.len() == 14).all()
    # The same history gives the same stream; a frame base is profiled on the spot.
    pd.testing.assert_frame_equal(
        build_batch(history, 3, 1000, 1, SIMULATED, NOW),
        stream.iloc[3000:4000].reset_index(drop=True),
    )


def test_an_empty_base_raises_empty_base_error() -> None:
    with pytest.raises(EmptyBaseError):
        _batch(base=pd.DataFrame(columns=list(CDR_COLUMNS)))
    assert issubclass(EmptyBaseError, ValueError)
