"""Splitting rows for the model: time split with an embargo, stratified, by subscriber."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pyspark.sql import functions as F

from spark_jobs.errors import SplitError
from spark_jobs.split import sample_subscribers, stratified_test_flag, subscriber_bucket, time_split

DAY0 = date(2024, 1, 1)


def _days(n: int) -> list[date]:
    return [DAY0 + timedelta(days=d) for d in range(n)]


def test_time_split_tests_on_the_latest_dates_after_an_embargo() -> None:
    windows = time_split(_days(40), test_fraction=0.25, embargo_days=14)
    assert (windows.test_start, windows.test_end) == (DAY0 + timedelta(30), DAY0 + timedelta(39))
    # The 14 days before the test are left out: training ends on day 15.
    assert (windows.train_start, windows.train_end) == (DAY0, DAY0 + timedelta(15))


def test_time_split_says_how_to_fix_too_few_dates() -> None:
    with pytest.raises(SplitError, match=r"leave none for training.*stratified"):
        time_split(_days(12), test_fraction=0.25, embargo_days=14)
    with pytest.raises(SplitError, match="no dated rows"):
        time_split([], test_fraction=0.25, embargo_days=0)


def test_stratified_flag_takes_the_same_share_of_each_label(spark: Any) -> None:
    rows = [(f"u{i}", DAY0, 1 if i % 10 == 0 else 0) for i in range(1000)]
    frame = spark.createDataFrame(rows, "User string, Date date, label int")
    flagged = frame.withColumn("test", stratified_test_flag(0.25, seed=3))
    averages = flagged.groupBy("label").agg(F.avg(F.col("test").cast("int")).alias("share"))
    shares = {row["label"]: row["share"] for row in averages.collect()}
    assert shares[0] == pytest.approx(0.25, abs=0.002)
    assert shares[1] == pytest.approx(0.25, abs=0.012)


def test_subscriber_groups_never_split_a_subscriber(spark: Any) -> None:
    rows = [(f"u{i % 50}", DAY0 + timedelta(days=i % 7), 0) for i in range(700)]
    frame = spark.createDataFrame(rows, "User string, Date date, label int")
    buckets = frame.withColumn("fold", subscriber_bucket(seed=1, buckets=3))
    per_user = buckets.groupBy("User").agg(F.countDistinct("fold")).collect()
    assert all(row[1] == 1 for row in per_user)
    assert {row["fold"] for row in buckets.select("fold").distinct().collect()} == {0, 1, 2}
    sampled = sample_subscribers(frame, max_rows=350, total_rows=700, seed=1)
    kept = sampled.groupBy("User").count().collect()
    assert all(row["count"] == 14 for row in kept)  # whole subscribers only
    assert 0 < sampled.count() < 700
    assert sample_subscribers(frame, max_rows=700, total_rows=700, seed=1) is frame
