"""Trailing-window features on tiny, hand-checkable frames; none may look ahead."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import pytest

from spark_jobs.features import FEATURE_COLUMNS, build_features, feature_types
from spark_jobs.schemas import PROCESSED_SCHEMA

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
