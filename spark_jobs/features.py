"""Per-subscriber features as of each date, built from trailing windows only.

A row of `Processed_Data` is one subscriber's usage on one day they were active; days
without a row count as no usage. Every feature of a row dated ``d`` is computed from rows
dated ``d - 27`` to ``d``: no window reaches past its own date, so a feature never sees the
future (tested by changing later rows).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.schemas import AMOUNT_FEATURES, COUNT_FEATURES, DATE, LABEL, USAGE_FEATURES, USER

SHORT_WINDOW = 7
LONG_WINDOW = 28
# Bumped whenever the features below change meaning: part of a model version's identity.
FEATURE_SET_VERSION = 1

_PER_USAGE = ("mean_7", "mean_28", "trend")
CONTINUOUS_FEATURES: tuple[str, ...] = (
    *(f"{usage}_{kind}" for usage in USAGE_FEATURES for kind in _PER_USAGE),
    "active_share_7",
    "active_share_28",
    "days_since_previous_activity",
    "out_in_call_ratio",
    "data_share_28",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("usage_profile",)
FEATURE_COLUMNS: tuple[str, ...] = (*CONTINUOUS_FEATURES, *CATEGORICAL_FEATURES)
USAGE_PROFILES: tuple[str, ...] = ("voice", "sms", "data", "none")
LABEL_COLUMN = "label"


def feature_types() -> list[dict[str, str]]:
    """Each feature's name and type, declared for the registry and for drift detection."""
    return [{"name": name, "type": "continuous"} for name in CONTINUOUS_FEATURES] + [
        {"name": name, "type": "categorical"} for name in CATEGORICAL_FEATURES
    ]


def build_features(processed: DataFrame, first_day: date, min_history_days: int) -> DataFrame:
    """Features of every subscriber-day with at least ``min_history_days`` of data behind it.

    Args:
        processed: Rows in the `Processed_Data` schema.
        first_day: The first date of the data read; windows do not reach before it, and
            means divide by the days actually covered.
        min_history_days: Dates with fewer days of data (``first_day`` to the date,
            inclusive) are left out: their windows are too short to describe a subscriber.

    Returns:
        `Date`, `User`, ``label`` (the churn label, may be NULL) and ``FEATURE_COLUMNS``.
    """
    day = F.datediff(F.col(DATE), F.lit(first_day))
    by_user = Window.partitionBy(USER).orderBy("_day")
    short = by_user.rangeBetween(-(SHORT_WINDOW - 1), 0)
    long = by_user.rangeBetween(-(LONG_WINDOW - 1), 0)
    so_far = by_user.rangeBetween(Window.unboundedPreceding, 0)
    before_short = by_user.rangeBetween(Window.unboundedPreceding, -SHORT_WINDOW)
    before_long = by_user.rangeBetween(Window.unboundedPreceding, -LONG_WINDOW)
    # Days of data each window covers: fewer than its length near the first day.
    covered_short = F.least(F.lit(SHORT_WINDOW), F.col("_day") + 1)
    covered_long = F.least(F.lit(LONG_WINDOW), F.col("_day") + 1)
    covered_prior = F.greatest(covered_long - covered_short, F.lit(1))

    def trailing(total: Column, before: Column) -> Column:
        # A sliding frame re-adds its whole length for every row; a running total and the
        # running total up to the frame's start are updated once per row. Only exact for
        # integers: the amounts keep their sliding sums, so every value stays bit for bit.
        return total - F.coalesce(before, F.lit(0))

    frame = processed.withColumn("_day", day)
    sums: dict[str, Column] = {}
    for usage in COUNT_FEATURES:
        total = F.sum(usage).over(so_far)
        sums[f"_{usage}_7"] = trailing(total, F.sum(usage).over(before_short))
        sums[f"_{usage}_28"] = trailing(total, F.sum(usage).over(before_long))
    for usage in AMOUNT_FEATURES:
        sums[f"_{usage}_7"] = F.sum(usage).over(short)
        sums[f"_{usage}_28"] = F.sum(usage).over(long)
    active = F.count(F.lit(1)).over(so_far)
    frame = frame.select(
        DATE,
        USER,
        F.col(LABEL).cast("int").alias(LABEL_COLUMN),
        "_day",
        *(column.alias(name) for name, column in sums.items()),
        trailing(active, F.count(F.lit(1)).over(before_short)).alias("_active_7"),
        trailing(active, F.count(F.lit(1)).over(before_long)).alias("_active_28"),
        F.lag("_day").over(by_user).alias("_previous_day"),
    )

    features: dict[str, Column] = {}
    for usage in USAGE_FEATURES:
        recent, whole = F.col(f"_{usage}_7"), F.col(f"_{usage}_28")
        prior_mean = (whole - recent) / covered_prior
        features[f"{usage}_mean_7"] = recent / covered_short
        features[f"{usage}_mean_28"] = whole / covered_long
        # Log ratio of the last week to the three weeks before: 0 when steady, < 0 when falling.
        features[f"{usage}_trend"] = F.log1p(recent / covered_short) - F.log1p(prior_mean)
    features["active_share_7"] = F.col("_active_7") / covered_short
    features["active_share_28"] = F.col("_active_28") / covered_long
    # The first row in the data has no previous activity: count from the first day.
    features["days_since_previous_activity"] = F.least(
        F.coalesce(F.col("_day") - F.col("_previous_day"), F.col("_day") + 1),
        F.lit(LONG_WINDOW),
    ).cast("double")
    features["out_in_call_ratio"] = F.log1p(F.col("_M_Out_Call_Count_28")) - F.log1p(
        F.col("_M_In_Call_Count_28")
    )
    voice = F.col("_M_Out_Call_Count_28") + F.col("_M_In_Call_Count_28")
    sms = F.col("_M_Out_SMS_Count_28") + F.col("_M_In_SMS_Count_28")
    data = F.col("_M_Data_Count_28")
    total = voice + sms + data
    features["data_share_28"] = F.when(total > 0, data / total).otherwise(F.lit(0.0))
    features["usage_profile"] = (
        F.when(total == 0, F.lit("none"))
        .when((voice >= sms) & (voice >= data), F.lit("voice"))
        .when(data >= sms, F.lit("data"))
        .otherwise(F.lit("sms"))
    )
    return frame.where(F.col("_day") + 1 >= min_history_days).select(
        DATE,
        USER,
        LABEL_COLUMN,
        *(features[name].cast("double").alias(name) for name in CONTINUOUS_FEATURES),
        *(features[name].alias(name) for name in CATEGORICAL_FEATURES),
    )
