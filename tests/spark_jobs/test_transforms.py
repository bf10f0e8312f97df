"""The analysis job's pure steps on tiny, hand-checkable frames."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pyspark.sql.types import LongType

from spark_jobs.io import conform
from spark_jobs.schemas import PROCESSED_SCHEMA, RAW_CDR_SCHEMA
from spark_jobs.transforms import aggregate_daily, clean_cdr


def _raw(spark: Any, rows: list[tuple[Any, ...]]) -> Any:
    return spark.createDataFrame(rows, schema=RAW_CDR_SCHEMA)


def _row(i: int, when: datetime | None, who: str | None, moc: int | None = 1, **kw: Any) -> tuple:  # type: ignore[type-arg]
    values = {
        "DP_MOC_DURATION": 2.0,
        "DP_MTC_COUNT": 1,
        "DP_MTC_DURATION": 1.5,
        "DP_MOSMS_COUNT": 0,
        "DP_MTSMS_COUNT": 2,
        "DP_DATA_COUNT": 3,
        "DP_DATA_VOLUME": 10.0,
        "PSEUDO_CHURNED": 0,
        **kw,
    }
    return (i, when, who, moc, *values.values())


def test_clean_drops_unusable_rows_and_impossible_values(spark: Any) -> None:
    day = datetime(2024, 1, 1, 9)
    frame = _raw(
        spark,
        [
            _row(1, day, " 2771 ", moc=-3),  # negative count -> NULL; id trimmed
            _row(2, None, "2772"),  # no date
            _row(3, day, "   "),  # no subscriber
            _row(4, day, "2773", PSEUDO_CHURNED=7),  # impossible label -> unknown
            _row(5, day, "2774"),
            _row(6, day, "2774"),  # same content as id 5, exported twice
        ],
    )
    cleaned = {r["id"]: r for r in clean_cdr(frame).collect()}
    assert set(cleaned) in ({1, 4, 5}, {1, 4, 6})
    assert cleaned[1]["DP_MSISDN"] == "2771" and cleaned[1]["DP_MOC_COUNT"] is None
    assert cleaned[4]["PSEUDO_CHURNED"] is None


def test_aggregate_daily_sums_per_subscriber_and_day(spark: Any) -> None:
    frame = _raw(
        spark,
        [
            _row(1, datetime(2024, 1, 1, 8), "a", moc=2, DP_DATA_VOLUME=1.5),
            _row(2, datetime(2024, 1, 1, 23, 59), "a", moc=None, DP_DATA_VOLUME=2.0),
            _row(3, datetime(2024, 1, 2, 0, 0), "a", moc=4, PSEUDO_CHURNED=1),
            _row(4, datetime(2024, 1, 1, 12), "b", moc=1, PSEUDO_CHURNED=None),
        ],
    )
    result = aggregate_daily(clean_cdr(frame))
    assert [(f.name, f.dataType) for f in result.schema.fields] == [
        (f.name, f.dataType) for f in PROCESSED_SCHEMA.fields
    ]
    rows = {(r["Date"], r["User"]): r for r in result.collect()}
    assert set(rows) == {(date(2024, 1, 1), "a"), (date(2024, 1, 2), "a"), (date(2024, 1, 1), "b")}
    a1 = rows[(date(2024, 1, 1), "a")]
    assert (a1["M_Out_Call_Count"], a1["Record_Count"], a1["M_Data_Sum"]) == (2, 2, 3.5)
    assert a1["M_In_Call_Time"] == 3.0 and a1["M_In_SMS_Count"] == 4
    assert a1["Churn_Within_Horizon"] == 0
    assert rows[(date(2024, 1, 2), "a")]["Churn_Within_Horizon"] == 1
    assert rows[(date(2024, 1, 1), "b")]["Churn_Within_Horizon"] is None


def test_conform_orders_and_casts(spark: Any) -> None:
    frame = spark.createDataFrame([("x", "2024-01-05", 3)], "User string, Date string, extra int")
    conformed = conform(
        frame.withColumn("M_Out_Call_Count", frame["extra"]),
        PROCESSED_SCHEMA.__class__(
            [
                PROCESSED_SCHEMA["Date"],
                PROCESSED_SCHEMA["User"],
                PROCESSED_SCHEMA["M_Out_Call_Count"],
            ]
        ),
    )
    assert conformed.columns == ["Date", "User", "M_Out_Call_Count"]
    assert conformed.first()["Date"] == date(2024, 1, 5)
    assert conformed.schema["M_Out_Call_Count"].dataType == LongType()
