"""Tests for the synthetic CDR generator: shape, determinism, churn model and scenarios.

The population's stationarity and its arrivals are tested in test_population.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from db.schema import (
    AMOUNT_COLUMNS,
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SUBSCRIBER_COLUMN,
)
from ingest.generator import GeneratorConfig, draw_subscribers, generate_cdr
from ingest.scenario import BrokenFeed, ChurnRateChange, ConceptDrift, CovariateDrift, Scenario

SMALL = GeneratorConfig(subscribers=300, days=60)


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return generate_cdr(SMALL)


@pytest.fixture(scope="module")
def small_truth() -> pd.DataFrame:
    return draw_subscribers(SMALL)


def _with_day_and_churn(
    frame: pd.DataFrame, truth: pd.DataFrame, config: GeneratorConfig
) -> pd.DataFrame:
    """The records with their day index, their subscriber's churn day and their event count."""
    start = pd.Timestamp(config.start_date)
    return frame.assign(
        day=(frame[DATE_COLUMN] - start).dt.days,
        churn_day=frame[SUBSCRIBER_COLUMN].map(truth.set_index(SUBSCRIBER_COLUMN)["churn_day"]),
        events=frame[list(COUNT_COLUMNS)].sum(axis=1),
    )


def _late_to_early_usage(records: pd.DataFrame, by: str, low: int, high: int) -> tuple[float, int]:
    """Events per record in the week before ``by`` over those 4+ weeks before, for ``by`` in range.

    Returns the ratio of the mean of per-subscriber means and the number of subscribers.
    """
    rows = records[(records[by] >= low) & (records[by] < high)]
    days_left = rows[by] - rows["day"]
    late = rows[(days_left >= 1) & (days_left <= 7)].groupby(SUBSCRIBER_COLUMN)["events"].mean()
    early = rows[days_left >= 28].groupby(SUBSCRIBER_COLUMN)["events"].mean()
    both = late.index.intersection(early.index)
    return float(late[both].mean() / early[both].mean()), len(both)


def test_same_config_gives_identical_frame_and_other_seed_differs(
    small_frame: pd.DataFrame,
) -> None:
    pd.testing.assert_frame_equal(generate_cdr(SMALL), small_frame)

    other = generate_cdr(SMALL.model_copy(update={"seed": 43}))
    assert not other.equals(small_frame)
    assert other["DP_DATA_VOLUME"].sum() != small_frame["DP_DATA_VOLUME"].sum()


def test_columns_dtypes_and_values(small_frame: pd.DataFrame) -> None:
    frame = small_frame

    assert list(frame.columns) == list(CDR_COLUMNS)
    assert frame[DATE_COLUMN].dtype == np.dtype("datetime64[ns]")
    assert (frame[DATE_COLUMN] == frame[DATE_COLUMN].dt.normalize()).all()
    assert frame[DATE_COLUMN].min() == pd.Timestamp("2024-01-01")
    assert frame[DATE_COLUMN].max() == pd.Timestamp("2024-02-29")
    assert pd.api.types.is_string_dtype(frame[SUBSCRIBER_COLUMN])
    truth = draw_subscribers(SMALL)
    recorded = truth[truth["churn_day"] > truth["join_day"].clip(lower=0)]
    assert set(frame[SUBSCRIBER_COLUMN]) <= set(truth[SUBSCRIBER_COLUMN])
    assert len(set(frame[SUBSCRIBER_COLUMN])) > 0.99 * len(recorded)
    assert frame[SUBSCRIBER_COLUMN].str.fullmatch(r"2771\d{7}").all()
    for column in COUNT_COLUMNS:
        assert frame[column].dtype == np.int64, column
        assert (frame[column] >= 0).all(), column
    for column in AMOUNT_COLUMNS:
        assert frame[column].dtype == np.float64, column
        assert (frame[column] >= 0).all(), column
        np.testing.assert_allclose(frame[column], frame[column].round(2), rtol=0, atol=1e-9)
    for amount, count in [
        ("DP_MOC_DURATION", "DP_MOC_COUNT"),
        ("DP_MTC_DURATION", "DP_MTC_COUNT"),
        ("DP_DATA_VOLUME", "DP_DATA_COUNT"),
    ]:
        assert (frame.loc[frame[count] == 0, amount] == 0).all(), amount
    assert frame[LABEL_COLUMN].dtype == np.int64
    assert set(frame[LABEL_COLUMN].unique()) == {0, 1}
    keys = pd.MultiIndex.from_frame(frame[[DATE_COLUMN, SUBSCRIBER_COLUMN]])
    assert keys.is_monotonic_increasing
    assert keys.is_unique


def test_churn_rate_is_the_expected_fraction_churning_per_30_days() -> None:
    for churn_rate in (0.15, 0.3):
        truth = draw_subscribers(
            GeneratorConfig(subscribers=20_000, days=30, churn_rate=churn_rate)
        )

        day_zero = truth[truth["join_day"] < 0]

        # Binomial standard deviation on 20 000 subscribers is at most 0.0035.
        assert len(day_zero) == 20_000
        assert abs((day_zero["churn_day"] < 30).mean() - churn_rate) < 0.015


def test_low_usage_subscribers_churn_more(
    small_frame: pd.DataFrame, small_truth: pd.DataFrame
) -> None:
    records = _with_day_and_churn(small_frame, small_truth, SMALL)
    settled = small_truth.loc[small_truth["join_day"] < -14, SUBSCRIBER_COLUMN]
    # Churns from day 35 on have not started declining in the first week; no ramp-up either.
    first_week = records[(records["day"] < 7) & records[SUBSCRIBER_COLUMN].isin(settled)]
    churner = (first_week["churn_day"] >= 35) & (first_week["churn_day"] < 60)
    stayer = first_week["churn_day"] >= 60 + 21

    assert churner.groupby(first_week[SUBSCRIBER_COLUMN]).first().sum() > 20
    assert first_week.loc[churner, "events"].mean() < 0.85 * first_week.loc[stayer, "events"].mean()


def test_subscribers_have_a_row_on_nearly_every_day_until_churn(
    small_frame: pd.DataFrame, small_truth: pd.DataFrame
) -> None:
    day_zero = small_truth.loc[small_truth["join_day"] < 0, SUBSCRIBER_COLUMN]
    records = _with_day_and_churn(small_frame, small_truth, SMALL)
    records = records[records[SUBSCRIBER_COLUMN].isin(day_zero)]
    stayers = small_truth[(small_truth["churn_day"] >= 60) & (small_truth["join_day"] < 0)]
    present = records["churn_day"] >= 60

    # A 3 % chance of an inactive day leaves about 97 % of the possible rows.
    assert 0.95 < present.sum() / (len(stayers) * 60) < 0.99
    last_day = records.groupby(SUBSCRIBER_COLUMN)["day"].max()
    churn_day = small_truth.set_index(SUBSCRIBER_COLUMN)["churn_day"][last_day.index]
    in_window = churn_day < 60
    # Three inactive days in a row right before churn: about 3e-5 per churner.
    assert ((churn_day - last_day)[in_window] <= 3).all()


def test_no_records_on_or_after_the_churn_day(
    small_frame: pd.DataFrame, small_truth: pd.DataFrame
) -> None:
    records = _with_day_and_churn(small_frame, small_truth, SMALL)
    churned_early = small_truth.loc[small_truth["churn_day"] <= 0, SUBSCRIBER_COLUMN]

    assert (small_truth["churn_day"] < 60).sum() > 40
    assert (records["day"] < records["churn_day"]).all()
    assert not records[SUBSCRIBER_COLUMN].isin(churned_early).any()
    # Derived from the data alone: whoever is missing for the last week has churned.
    last_day = records.groupby(SUBSCRIBER_COLUMN)["day"].max()
    gone = last_day[last_day < 60 - 7].index
    assert len(gone) > 30
    assert (small_truth.set_index(SUBSCRIBER_COLUMN)["churn_day"][gone] < 60).all()


def test_churners_usage_declines_before_churn(
    small_frame: pd.DataFrame, small_truth: pd.DataFrame
) -> None:
    records = _with_day_and_churn(small_frame, small_truth, SMALL)

    ratio, churners = _late_to_early_usage(records, "churn_day", 35, 60)

    # The last week averages a factor of about 0.2 + 0.8 * 3 / 21 = 0.31.
    assert churners > 15
    assert ratio < 0.5


@pytest.mark.parametrize("horizon", [7, 14])
def test_label_marks_exactly_the_records_within_the_horizon_before_churn(horizon: int) -> None:
    config = SMALL.model_copy(update={"label_horizon_days": horizon})
    frame = generate_cdr(config)
    records = _with_day_and_churn(frame, draw_subscribers(config), config)
    days_left = records["churn_day"] - records["day"]

    expected = ((days_left >= 1) & (days_left <= horizon)).astype(np.int64)
    pd.testing.assert_series_equal(records[LABEL_COLUMN], expected, check_names=False)
    assert records.groupby(SUBSCRIBER_COLUMN)[LABEL_COLUMN].sum().max() <= horizon
    # Churns after the window still label the last in-window records.
    last_day = records[records["day"] == 59]
    assert last_day[LABEL_COLUMN].sum() > 0
    assert (last_day.loc[last_day[LABEL_COLUMN] == 1, "churn_day"] <= 59 + horizon).all()
    # Derived from the data alone: a churner's labels lie within the horizon of its last record.
    last_record = records.groupby(SUBSCRIBER_COLUMN)["day"].transform("max")
    gone = last_record < 60 - 7
    labelled = records[gone & (records[LABEL_COLUMN] == 1)]
    assert len(labelled) > 0
    assert (last_record[labelled.index] + 1 - labelled["day"] <= horizon).all()


@pytest.mark.parametrize(
    "start_date", [datetime.date(2024, 1, 1), datetime.date(2024, 1, 3)], ids=["mon", "wed"]
)
def test_weekends_carry_less_voice_and_more_data(start_date: datetime.date) -> None:
    frame = generate_cdr(SMALL.model_copy(update={"start_date": start_date}))
    weekend = frame[DATE_COLUMN].dt.day_of_week >= 5
    voice = frame["DP_MOC_COUNT"] + frame["DP_MTC_COUNT"]
    data = frame["DP_DATA_COUNT"]

    # Designed: voice 0.775 / 1.06 = 0.73, data 1.175 / 0.96 = 1.22.
    assert voice[weekend].mean() < 0.85 * voice[~weekend].mean()
    assert data[weekend].mean() > 1.1 * data[~weekend].mean()


def test_covariate_drift_scales_usage_from_its_step_on_only(small_frame: pd.DataFrame) -> None:
    drift = CovariateDrift(from_step=30, voice_factor=0.5, sms_factor=1.0, data_factor=2.0)
    drifted = generate_cdr(SMALL.model_copy(update={"scenario": Scenario(covariate_drift=drift)}))
    before = small_frame[DATE_COLUMN] < pd.Timestamp("2024-01-31")

    pd.testing.assert_frame_equal(drifted[before], small_frame[before])
    keys = [DATE_COLUMN, SUBSCRIBER_COLUMN, LABEL_COLUMN, "DP_MOSMS_COUNT", "DP_MTSMS_COUNT"]
    pd.testing.assert_frame_equal(drifted[keys], small_frame[keys])
    after_drifted, after_base = drifted[~before], small_frame[~before]
    for column, low, high in [
        ("DP_MOC_COUNT", 0.45, 0.55),
        ("DP_MTC_DURATION", 0.4, 0.6),
        ("DP_DATA_COUNT", 1.9, 2.1),
        ("DP_DATA_VOLUME", 1.7, 2.3),
    ]:
        ratio = after_drifted[column].mean() / after_base[column].mean()
        assert low < ratio < high, (column, ratio)


def test_churn_rate_change_raises_churn_from_its_step_on(small_frame: pd.DataFrame) -> None:
    change = Scenario(churn_rate_change=ChurnRateChange(from_step=30, factor=3.0))
    config = SMALL.model_copy(update={"scenario": change})
    drifted = generate_cdr(config)

    def last_days(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby(SUBSCRIBER_COLUMN)[DATE_COLUMN].max()

    base_last, drifted_last = last_days(small_frame), last_days(drifted)
    cut, gone = pd.Timestamp("2024-01-31"), pd.Timestamp("2024-02-22")
    pd.testing.assert_series_equal(
        drifted_last[drifted_last < cut - pd.Timedelta(days=7)],
        base_last[base_last < cut - pd.Timedelta(days=7)],
    )
    churned_after = ((drifted_last >= cut) & (drifted_last < gone)).sum()
    base_churned_after = ((base_last >= cut) & (base_last < gone)).sum()
    # Tripling a ~9 % risk over these 23 days gives ~24 %: 2-3 times as many churns.
    assert base_churned_after > 10
    assert churned_after > 1.6 * base_churned_after
    base_truth = draw_subscribers(SMALL).set_index(SUBSCRIBER_COLUMN)["churn_day"]
    drifted_truth = draw_subscribers(config).set_index(SUBSCRIBER_COLUMN)["churn_day"]
    early = base_truth[base_truth < 30]
    pd.testing.assert_series_equal(drifted_truth[early.index], early)
    later = base_truth.index[base_truth >= 30].intersection(drifted_truth.index)
    assert (drifted_truth[later] >= 30).all()
    assert (drifted_truth[later] <= base_truth[later]).all()


def test_concept_drift_silences_later_churns_and_gives_stayers_a_passing_dip() -> None:
    base_config = GeneratorConfig(subscribers=1000, days=90)
    drift = ConceptDrift(from_step=60, strength=1.0)
    config = base_config.model_copy(update={"scenario": Scenario(concept_drift=drift)})
    base, drifted = generate_cdr(base_config), generate_cdr(config)
    truth = draw_subscribers(config)
    base_records = _with_day_and_churn(base, truth, base_config)
    records = _with_day_and_churn(drifted, truth, config)

    # Who is active, and the labels, stay exactly those of the clean history.
    keys = [DATE_COLUMN, SUBSCRIBER_COLUMN, LABEL_COLUMN]
    pd.testing.assert_frame_equal(drifted[keys], base[keys])
    before_ratio, before_count = _late_to_early_usage(records, "churn_day", 35, 60)
    base_after_ratio, _ = _late_to_early_usage(base_records, "churn_day", 65, 90)
    after_ratio, after_count = _late_to_early_usage(records, "churn_day", 65, 90)
    assert before_count > 15
    assert after_count > 15
    assert before_ratio < 0.5
    assert base_after_ratio < 0.5
    assert after_ratio > 0.8

    silent = truth["decline_day"].isna()
    dips = truth["dip_day"].notna()
    assert (truth.loc[silent, "churn_day"] >= 60).all()
    assert (truth.loc[dips, "dip_day"] >= 60).all()
    assert (truth.loc[dips, "churn_day"] > truth.loc[dips, "dip_day"] + 21).all()
    # Dips replace the silenced declines at about the same rate.
    silent_in_window = (silent & (truth["churn_day"] < 90)).sum()
    dips_in_window = (dips & (truth["dip_day"] < 90)).sum()
    assert silent_in_window > 30
    assert 0.6 < dips_in_window / silent_in_window < 1.4
    records["dip_day"] = records[SUBSCRIBER_COLUMN].map(
        truth.set_index(SUBSCRIBER_COLUMN)["dip_day"]
    )
    dip_ratio, dip_count = _late_to_early_usage(records, "dip_day", 65, 90)
    assert dip_count > 15
    assert dip_ratio < 0.5
    # ... and the dipping subscribers recover afterwards.
    dipped = records[records["dip_day"].notna() & (records["dip_day"] < 80)]
    after_dip = dipped[dipped["day"] >= dipped["dip_day"] + 3].groupby(SUBSCRIBER_COLUMN)
    long_before = dipped[dipped["day"] < dipped["dip_day"] - 28].groupby(SUBSCRIBER_COLUMN)
    both = after_dip.size().index.intersection(long_before.size().index)
    ratio = after_dip["events"].mean()[both].mean() / long_before["events"].mean()[both].mean()
    assert 0.8 < ratio < 1.25
    # Usage as a whole keeps its level.
    late = drifted[DATE_COLUMN] >= pd.Timestamp("2024-03-01")
    for column in ("DP_MOC_COUNT", "DP_DATA_VOLUME"):
        level = drifted.loc[late, column].mean() / base.loc[late, column].mean()
        assert 0.93 < level < 1.07, column


def test_gradual_covariate_drift_ramps_up_to_its_full_factor(small_frame: pd.DataFrame) -> None:
    drift = CovariateDrift(from_step=20, voice_factor=1.0, data_factor=3.0, ramp_steps=20)
    drifted = generate_cdr(SMALL.model_copy(update={"scenario": Scenario(covariate_drift=drift)}))
    day = (drifted[DATE_COLUMN] - pd.Timestamp(SMALL.start_date)).dt.days

    def ratio(low: int, high: int) -> float:
        rows = (day >= low) & (day < high)
        return float(drifted.loc[rows, "DP_DATA_COUNT"].mean()) / float(
            small_frame.loc[rows, "DP_DATA_COUNT"].mean()
        )

    assert ratio(0, 20) == 1.0
    assert 1.2 < ratio(25, 30) < 1.9  # about 3 ** 0.4 = 1.55
    assert 2.7 < ratio(40, 60) < 3.3
    assert drift.progress(19) == 0.0
    assert drift.progress(20) == pytest.approx(0.05)
    assert drift.progress(39) == 1.0


@pytest.mark.parametrize("value", ["zero", "null"])
@pytest.mark.parametrize("column", ["DP_DATA_VOLUME", "DP_MOC_COUNT"])
def test_broken_feed_empties_one_column_from_its_step_on(
    small_frame: pd.DataFrame, value: str, column: str
) -> None:
    broken = BrokenFeed(from_step=30, column=column, value=value)  # type: ignore[arg-type]
    frame = generate_cdr(SMALL.model_copy(update={"scenario": Scenario(broken_feed=broken)}))
    after = frame[DATE_COLUMN] >= pd.Timestamp("2024-01-31")

    others = [c for c in CDR_COLUMNS if c != column]
    pd.testing.assert_frame_equal(frame[others], small_frame[others])
    assert (frame.loc[~after, column] == small_frame.loc[~after, column]).all()
    if value == "zero":
        assert (frame.loc[after, column] == 0).all()
    else:
        assert frame.loc[after, column].isna().all()
    assert frame.loc[~after, column].notna().all()


@pytest.mark.parametrize(
    "bad",
    [
        {"broken_feed": {"column": "DP_MSISDN"}},
        {"broken_feed": {"column": "DP_DATA_VOLUME", "value": "nan"}},
        {"broken_feed": {"from_step": -1}},
        {"covariate_drift": {"ramp_steps": -1}},
        {"covariate_drift": {"ramp_steps": 2.5}},
        {"concept_drift": {"strength": 0}},
    ],
    ids=["column", "value", "step", "ramp", "ramp-float", "strength"],
)
def test_invalid_scenario_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate(bad)


def test_scenario_shift_moves_every_knob() -> None:
    scenario = Scenario(
        covariate_drift=CovariateDrift(from_step=2), broken_feed=BrokenFeed(from_step=0)
    )
    shifted = scenario.shifted(91)

    assert shifted.covariate_drift == CovariateDrift(from_step=93)
    assert shifted.broken_feed == BrokenFeed(from_step=91)
    assert shifted.concept_drift is None
    earlier = Scenario(concept_drift=ConceptDrift(from_step=5), broken_feed=BrokenFeed())
    combined = shifted.over(earlier)
    assert combined.concept_drift == ConceptDrift(from_step=5)
    assert combined.broken_feed == BrokenFeed(from_step=91)


@pytest.mark.parametrize(
    "bad",
    [
        {"subscribers": 0},
        {"days": 0},
        {"churn_rate": 1.5},
        {"churn_rate": 0.0},
        {"decay_days": 0},
        {"label_horizon_days": 0},
        {"seed": -1},
        {"colour": "red"},
    ],
    ids=lambda bad: next(iter(bad)),
)
def test_invalid_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GeneratorConfig(**bad)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        SMALL.subscribers = 10  # type: ignore[misc]
