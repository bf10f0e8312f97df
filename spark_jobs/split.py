"""How the model job divides its rows: time or label-stratified test rows, calibration
subscribers, and cross-validation folds grouped by subscriber.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.errors import SplitError
from spark_jobs.features import LABEL_COLUMN
from spark_jobs.schemas import DATE, USER


@dataclass(frozen=True)
class SplitWindows:
    """The dates of the training and test rows (the same span for a stratified split)."""

    train_start: date
    train_end: date
    test_start: date
    test_end: date


def time_split(dates: Iterable[date], test_fraction: float, embargo_days: int) -> SplitWindows:
    """Test on the latest ``test_fraction`` of the dates; train on those before the embargo.

    The ``embargo_days`` before the first test date are left out: a label says whether the
    subscriber churns within a horizon, so training labels of those days would describe
    churn inside the test period.

    Raises:
        SplitError: too few dates to leave any for training.
    """
    days = sorted(set(dates))
    if not days:
        raise SplitError("no dated rows to split")
    test_days = max(1, math.ceil(len(days) * test_fraction))
    test_start = days[-test_days]
    train_end = test_start - timedelta(days=embargo_days + 1)
    train_days = [d for d in days if d <= train_end]
    if not train_days:
        raise SplitError(
            f"{len(days)} modelled dates ({days[0]} to {days[-1]}) leave none for training "
            f"before the {test_days} test dates and the {embargo_days}-day embargo: widen "
            "processed_start/processed_end in the config file, lower MODEL_EMBARGO_DAYS, or "
            'use "split": "stratified"'
        )
    return SplitWindows(train_days[0], train_days[-1], test_start, days[-1])


def stratified_test_flag(fraction: float, seed: int) -> Column:
    """True for a ``fraction`` of the rows of each label, chosen by a seeded hash."""
    by_label = Window.partitionBy(LABEL_COLUMN).orderBy(
        F.xxhash64(F.col(USER), F.col(DATE), F.lit(seed)), USER, DATE
    )
    return F.percent_rank().over(by_label) < F.lit(fraction)


def subscriber_bucket(seed: int, buckets: int) -> Column:
    """A bucket in [0, buckets) per subscriber: rows of one subscriber never straddle groups."""
    return F.pmod(F.xxhash64(F.col(USER), F.lit(seed)), F.lit(buckets)).cast("int")


def sample_subscribers(frame: DataFrame, max_rows: int, total_rows: int, seed: int) -> DataFrame:
    """About ``max_rows`` rows of ``frame``, taking whole subscribers."""
    if total_rows <= max_rows:
        return frame
    share = max(1, math.floor(1000 * max_rows / total_rows))
    return frame.where(subscriber_bucket(seed + 7, 1000) < share)
