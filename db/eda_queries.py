"""The exploratory analysis's reads of `DP_CDR_Data`: overview, daily totals, moments, samples.

Ranges are calendar days with both ends inclusive, read as ``start 00:00 <= DP_DATE < the day
after end 00:00`` so a record at 23:59:59.5 on the last day counts and the date index is used.

Every function takes a cursor rather than a connection and never commits: a caller that runs
them all in one transaction reads one InnoDB snapshot (REPEATABLE READ), so the totals, the
moments and the samples describe the same rows even while a stream is inserting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from db.schema import LABEL_COLUMN, PROCESSED_LABEL, PROCESSED_NAMES, USAGE_COLUMNS

if TYPE_CHECKING:  # the pure EDA core imports the names below without the driver
    from db.connection import Cursor

# The EDA speaks of the Spark stage's processed names, so report and model agree.
FEATURES: dict[str, str] = PROCESSED_NAMES
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES[column] for column in USAGE_COLUMNS)
FEATURE_MEANINGS: dict[str, str] = {
    "M_Out_Call_Count": "outgoing calls",
    "M_Out_Call_Time": "outgoing call minutes",
    "M_In_Call_Count": "incoming calls",
    "M_In_Call_Time": "incoming call minutes",
    "M_Out_SMS_Count": "outgoing SMS",
    "M_In_SMS_Count": "incoming SMS",
    "M_Data_Count": "data sessions or purchases",
    "M_Data_Sum": "data megabytes",
}
LABEL = PROCESSED_LABEL
# Columns of `daily_totals` before the per-feature sums.
DAILY_COUNT_COLUMNS: tuple[str, ...] = (
    "cdr_rows",
    "subscribers",
    "churn_label_rows",
    "unlabelled_rows",
)
MOMENT_COLUMNS: tuple[str, ...] = ("rows", "count", "mean", "std", "min", "max")

_IN_RANGE = "DP_DATE >= %s AND DP_DATE < %s"
_OVERVIEW = (
    "SELECT COUNT(*), COUNT(DISTINCT DP_MSISDN), MIN(DP_DATE), MAX(DP_DATE) "  # noqa: S608 - constant column names
    f"FROM DP_CDR_Data WHERE {_IN_RANGE}"
)
_DAILY_TOTALS = (
    "SELECT DATE(DP_DATE) AS day, COUNT(*), COUNT(DISTINCT DP_MSISDN), "  # noqa: S608 - constant column names
    "COUNT(CASE WHEN PSEUDO_CHURNED = 1 THEN 1 END), COUNT(*) - COUNT(PSEUDO_CHURNED), "
    + ", ".join(f"SUM({column})" for column in USAGE_COLUMNS)
    + f" FROM DP_CDR_Data WHERE {_IN_RANGE} GROUP BY DATE(DP_DATE) ORDER BY day"
)
# `+ 0e0` makes the argument a DOUBLE: over an integer column AVG and STDDEV_SAMP return a
# DECIMAL rounded to 4 places.
_LABEL_MOMENTS = (
    f"SELECT {LABEL_COLUMN}, COUNT(*), "  # noqa: S608 - constant column names
    + ", ".join(
        f"COUNT({c}), AVG({c} + 0e0), STDDEV_SAMP({c} + 0e0), MIN({c}), MAX({c})"
        for c in USAGE_COLUMNS
    )
    + f" FROM DP_CDR_Data WHERE {_IN_RANGE} GROUP BY {LABEL_COLUMN}"
)
# CRC32(id) orders the rows in a fixed pseudo-random permutation: the first N of a label are a
# uniform sample that the next run reads again. The threshold keeps only about twice N rows for
# the server to sort, instead of every row of the label (`<=>` also matches a NULL label).
_LABEL_SAMPLE = (
    "SELECT "  # noqa: S608 - constant column names
    + ", ".join(f"{column} AS {FEATURES[column]}" for column in USAGE_COLUMNS)
    + f", {LABEL_COLUMN} AS {LABEL} FROM DP_CDR_Data WHERE {_IN_RANGE} "
    f"AND {LABEL_COLUMN} <=> %s AND CRC32(id) < %s ORDER BY CRC32(id), id LIMIT %s"
)
_CRC32_VALUES = 2**32
# Rows kept by the threshold beyond N: enough that a small N is met all but surely.
_SAMPLE_MARGIN_ROWS = 50


@dataclass(frozen=True)
class RangeOverview:
    """Size of a date range of `DP_CDR_Data`."""

    rows: int
    subscribers: int
    first: datetime | None
    last: datetime | None


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The half-open timestamp interval ``[start 00:00, end + 1 day 00:00)`` of inclusive days."""
    return (
        datetime.combine(start, datetime.min.time()),
        datetime.combine(end + timedelta(days=1), datetime.min.time()),
    )


def range_overview(cursor: Cursor, start: date, end: date) -> RangeOverview:
    """Rows, distinct subscribers, and first and last `DP_DATE` from ``start`` to ``end``."""
    cursor.execute(_OVERVIEW, day_bounds(start, end))
    rows, subscribers, first, last = cursor.fetchone()
    return RangeOverview(int(rows), int(subscribers), first, last)


def daily_totals(cursor: Cursor, start: date, end: date) -> pd.DataFrame:
    """Per-day totals from ``start`` to ``end``, computed by the server.

    Returns:
        One row per day that has CDRs, in date order: ``day`` (datetime64), the
        `DAILY_COUNT_COLUMNS` (int64: rows, distinct subscribers, rows labelled 1, rows
        without a label), then the sum of each feature in `FEATURE_NAMES` (float64). A sum is
        NaN when the feature is NULL on every row of the day.
    """
    cursor.execute(_DAILY_TOTALS, day_bounds(start, end))
    columns = ["day", *DAILY_COUNT_COLUMNS, *FEATURE_NAMES]
    frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    frame["day"] = pd.to_datetime(frame["day"])
    for column in DAILY_COUNT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for name in FEATURE_NAMES:
        # Integer sums arrive as Decimal, and as None when the feature is NULL all day.
        frame[name] = frame[name].map(_float).astype("float64")
    return frame


def label_moments(cursor: Cursor, start: date, end: date) -> pd.DataFrame:
    """Exact per-label moments of every feature from ``start`` to ``end``, computed by the server.

    Returns:
        One row per label value present (0, 1, or NaN for a missing label) and feature: the
        label in ``LABEL``, ``feature``, then ``rows`` (of the label), ``count`` (non-missing
        values), ``mean``, ``std`` (sample standard deviation), ``min`` and ``max``.
    """
    cursor.execute(_LABEL_MOMENTS, day_bounds(start, end))
    records: list[dict[str, Any]] = []
    for label, rows, *stats in cursor.fetchall():
        for index, name in enumerate(FEATURE_NAMES):
            count, mean, std, low, high = stats[5 * index : 5 * index + 5]
            records.append(
                {
                    LABEL: label,
                    "feature": name,
                    "rows": int(rows),
                    "count": int(count),
                    "mean": _float(mean),
                    "std": _float(std),
                    "min": _float(low),
                    "max": _float(high),
                }
            )
    frame = pd.DataFrame(records, columns=[LABEL, "feature", *MOMENT_COLUMNS])
    frame[LABEL] = frame[LABEL].astype("float64")
    return frame


def label_sample(
    cursor: Cursor, start: date, end: date, label: int | None, limit: int, label_rows: int
) -> pd.DataFrame:
    """A deterministic uniform sample of at most ``limit`` rows with the given label.

    Args:
        cursor: A cursor, ideally inside the transaction that counted ``label_rows``.
        start: First day of the range.
        end: Last day of the range, inclusive.
        label: 0, 1, or None for the rows without a label.
        limit: The most rows to return.
        label_rows: Rows with this label in the range (from `label_moments`); it sets how
            much of the label the server sorts.

    Returns:
        The features (`FEATURE_NAMES`, float64, NaN when NULL) and ``LABEL`` of the rows whose
        CRC32(id) is smallest: every row of the label when it has at most ``limit``.
    """
    if limit <= 0 or label_rows <= 0:
        return _sample_frame([])
    share = min(1.0, (2 * limit + _SAMPLE_MARGIN_ROWS) / label_rows)
    threshold = math.ceil(share * _CRC32_VALUES)
    cursor.execute(_LABEL_SAMPLE, (*day_bounds(start, end), label, threshold, limit))
    return _sample_frame(cursor.fetchall())


def _sample_frame(rows: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*FEATURE_NAMES, LABEL])
    return frame.astype("float64")


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
