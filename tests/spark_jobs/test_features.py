"""Trailing-window features on tiny, hand-checkable frames; none may look ahead."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from spark_jobs.features import (
    CONTINUOUS_FEATURES,
    FEATURE_COLUMNS,
    LONG_WINDOW,
    SHORT_WINDOW,
    build_features,
    feature_types,
)
from spark_jobs.schemas import AMOUNT_FEATURES, PROCESSED_SCHEMA, USAGE_FEATURES

DAY0 = date(2024, 1, 1)


def _processed(spark: Any, rows: list[dict[str, Any]]) -> Any:
    names = [field.name for field in PROCESSED_SCHEMA.fields]
    defaults: dict[str, Any] = {name: 0 for name in names}
    defaults.update({"M_Out_Call_Time": 0.0, "M_In_Call_Time": 0.0, "M_Data_Sum": 0.0})
    defaults.update({"Record_Count": 1, "Churn_Within_Horizon": 0})
    return spark.createDataFrame(
        [tuple({**defaults, **row}[name] for name in names) for row in rows],
        schema=PROCESSED_SCHEMA,
    )


def _by_key(frame: Any) -> dict[tuple[date, str], dict[str, Any]]:
    return {(row["Date"], row["User"]): row.asDict() for row in frame.collect()}


def test_window_means_trend_and_activity_by_hand(spark: Any) -> None:
    # Subscriber a: 1..10 outgoing calls on days 0..9. Subscriber b: active on days 0 and 5.
    rows = [
        {"Date": DAY0 + timedelta(days=d), "User": "a", "M_Out_Call_Count": d + 1}
        for d in range(10)
    ] + [
        {"Date": DAY0, "User": "b", "M_Data_Count": 4},
        {"Date": DAY0 + timedelta(days=5), "User": "b", "M_Data_Count": 2, "M_In_Call_Count": 1},
    ]
    features = _by_key(build_features(_processed(spark, rows), DAY0, min_history_days=1))

    a9 = features[(DAY0 + timedelta(days=9), "a")]
    assert a9["M_Out_Call_Count_mean_7"] == pytest.approx(49 / 7)  # days 3..9: 4+..+10
    assert a9["M_Out_Call_Count_mean_28"] == pytest.approx(55 / 10)  # 10 days of data so far
    assert a9["M_Out_Call_Count_trend"] == pytest.approx(math.log1p(7) - math.log1p(6 / 3))
    assert a9["active_share_7"] == 1.0
    assert a9["days_since_previous_activity"] == 1.0
    assert a9["usage_profile"] == "voice"
    assert a9["data_share_28"] == 0.0

    b5 = features[(DAY0 + timedelta(days=5), "b")]
    assert b5["days_since_previous_activity"] == 5.0
    assert b5["active_share_7"] == pytest.approx(2 / 6)  # 6 days of data cover the window
    assert b5["M_Data_Count_mean_7"] == pytest.approx(6 / 6)
    assert b5["usage_profile"] == "data"
    assert b5["data_share_28"] == pytest.approx(6 / 7)
    b0 = features[(DAY0, "b")]
    assert b0["days_since_previous_activity"] == 1.0  # first day of data: censored at 1


def test_a_feature_never_uses_a_later_date(spark: Any) -> None:
    base: list[dict[str, Any]] = [
        {"Date": DAY0 + timedelta(days=d), "User": "a", "M_Data_Sum": d / 2, "M_Out_SMS_Count": d}
        for d in range(30)
    ]
    cut = DAY0 + timedelta(days=19)
    # The same history up to the cut, then a very different future, and one with none.
    changed = [
        {**row, "M_Data_Sum": 1e6, "M_Out_SMS_Count": 999} if row["Date"] > cut else row
        for row in base
    ] + [{"Date": DAY0 + timedelta(days=31), "User": "a", "M_In_Call_Count": 50}]
    truncated = [row for row in base if row["Date"] <= cut]

    def upto_cut(rows: list[dict[str, Any]]) -> dict[tuple[date, str], dict[str, Any]]:
        built = _by_key(build_features(_processed(spark, rows), DAY0, min_history_days=1))
        return {key: value for key, value in built.items() if key[0] <= cut}

    original = upto_cut(base)
    assert len(original) == 20
    assert upto_cut(changed) == original
    assert upto_cut(truncated) == original


def test_dates_without_enough_history_are_left_out(spark: Any) -> None:
    rows = [{"Date": DAY0 + timedelta(days=d), "User": "a"} for d in range(20)]
    built = build_features(_processed(spark, rows), DAY0, min_history_days=14)
    dates = sorted(row["Date"] for row in built.select("Date").collect())
    assert dates[0] == DAY0 + timedelta(days=13)
    assert len(dates) == 7
    assert built.columns == ["Date", "User", "label", *FEATURE_COLUMNS]


def test_feature_types_are_declared_for_every_feature() -> None:
    declared = feature_types()
    assert [entry["name"] for entry in declared] == list(FEATURE_COLUMNS)
    assert {entry["type"] for entry in declared} == {"continuous", "categorical"}
    assert [e["name"] for e in declared if e["type"] == "categorical"] == ["usage_profile"]


def _sliding_window_sums(processed: Any, first_day: date) -> dict[tuple[date, str], list[Any]]:
    """Every trailing sum and count the features derive from, each summed over its own frame.

    The plain formulation build_features replaced with running totals for the counts.
    """
    by_user = Window.partitionBy("User").orderBy("_day")
    short = by_user.rangeBetween(-(SHORT_WINDOW - 1), 0)
    long = by_user.rangeBetween(-(LONG_WINDOW - 1), 0)
    frame = processed.withColumn("_day", F.datediff("Date", F.lit(first_day))).select(
        "Date",
        "User",
        *(F.sum(u).over(w) for u in USAGE_FEATURES for w in (short, long)),
        F.count(F.lit(1)).over(short),
        F.count(F.lit(1)).over(long),
    )
    return {(row[0], row[1]): list(row[2:]) for row in frame.collect()}


def test_running_totals_give_the_sliding_sums_bit_for_bit(spark: Any) -> None:
    # Gaps of every length up to past the long window, large and fractional amounts, zeros.
    draw = random.Random(7)
    rows: list[dict[str, Any]] = []
    for user in ("a", "b", "c"):
        day = draw.randrange(3)
        while day < 75:
            rows.append(
                {
                    "Date": DAY0 + timedelta(days=day),
                    "User": user,
                    "M_Out_Call_Count": draw.randrange(10**12),
                    "M_In_SMS_Count": draw.choice([0, 1, 7]),
                    "M_Data_Count": draw.randrange(50),
                    **{
                        amount: draw.uniform(0, 10) ** draw.randrange(9)
                        for amount in AMOUNT_FEATURES
                    },
                }
            )
            day += draw.choice([1, 1, 1, 2, 3, 8, 29])
    processed = _processed(spark, rows)

    built = _by_key(build_features(processed, DAY0, min_history_days=1))
    sums = _sliding_window_sums(processed, DAY0)

    assert built.keys() == sums.keys()
    for key, row in built.items():
        day = (key[0] - DAY0).days
        covered_short, covered_long = min(SHORT_WINDOW, day + 1), min(LONG_WINDOW, day + 1)
        values = iter(sums[key])
        for usage in USAGE_FEATURES:
            recent, whole = next(values), next(values)
            assert row[f"{usage}_mean_7"] == recent / covered_short, (key, usage)
            assert row[f"{usage}_mean_28"] == whole / covered_long, (key, usage)
        assert row["active_share_7"] == next(values) / covered_short
        assert row["active_share_28"] == next(values) / covered_long
        assert all(not math.isnan(row[name]) for name in CONTINUOUS_FEATURES)
