"""The EDA's SQL on the real server agrees with pandas on the same rows; ranges are inclusive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest

from config.settings import Settings
from db.cdr import frame_to_rows, insert_cdr_rows
from db.connection import Cursor, connection, transaction
from db.eda_queries import (
    FEATURE_NAMES,
    LABEL,
    MOMENT_COLUMNS,
    daily_totals,
    label_moments,
    label_sample,
    range_overview,
)
from db.schema import CDR_COLUMNS
from eda.summary import feature_moments

# The range of the seeded history (tests/eda/conftest.py: 20 days from 2024-01-01).
SMALL_START, SMALL_END = date(2024, 1, 1), date(2024, 1, 20)


@pytest.fixture
def read(seeded: Settings) -> Iterator[Cursor]:
    with connection(seeded) as conn, transaction(conn) as cursor:
        yield cursor


def test_daily_totals_from_sql_equal_a_pandas_groupby(
    read: Cursor, pandas_daily: pd.DataFrame
) -> None:
    got = daily_totals(read, SMALL_START, SMALL_END)

    assert len(got) == 20
    pd.testing.assert_frame_equal(got, pandas_daily, check_dtype=False, rtol=1e-9)


def test_a_sub_range_keeps_only_its_days(read: Cursor, pandas_daily: pd.DataFrame) -> None:
    got = daily_totals(read, date(2024, 1, 5), date(2024, 1, 7))

    expected = pandas_daily[pandas_daily["day"].between("2024-01-05", "2024-01-07")]
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)


def test_label_moments_from_sql_equal_pandas(read: Cursor, eda_rows: pd.DataFrame) -> None:
    got = label_moments(read, SMALL_START, SMALL_END)

    expected = feature_moments(eda_rows)
    key = [LABEL, "feature"]
    got, expected = (frame.sort_values(key).reset_index(drop=True) for frame in (got, expected))
    pd.testing.assert_frame_equal(got[key], expected[key])
    pd.testing.assert_frame_equal(
        got[list(MOMENT_COLUMNS)], expected[list(MOMENT_COLUMNS)], check_dtype=False, rtol=1e-9
    )


def test_overview_counts_rows_and_distinct_subscribers(
    read: Cursor, raw_rows: pd.DataFrame
) -> None:
    overview = range_overview(read, SMALL_START, SMALL_END)

    assert (overview.rows, overview.subscribers) == (len(raw_rows), raw_rows["DP_MSISDN"].nunique())
    assert overview.first == raw_rows["DP_DATE"].min()
    assert overview.last == raw_rows["DP_DATE"].max()


def test_a_sample_is_capped_deterministic_and_drawn_from_its_label(
    read: Cursor, eda_rows: pd.DataFrame
) -> None:
    zeros = int((eda_rows[LABEL] == 0).sum())

    first = label_sample(read, SMALL_START, SMALL_END, 0, 40, zeros)
    again = label_sample(read, SMALL_START, SMALL_END, 0, 40, zeros)

    assert len(first) == 40
    pd.testing.assert_frame_equal(first, again)
    assert set(first[LABEL]) == {0.0}
    # Every sampled row is a row of the range (as a multiset of feature values).
    known = set(map(tuple, eda_rows[eda_rows[LABEL] == 0][list(FEATURE_NAMES)].to_numpy()))
    assert set(map(tuple, first[list(FEATURE_NAMES)].to_numpy())) <= known
    # Spread over the range, not the first rows by id: those are all of the first day.
    assert (
        first["M_Data_Sum"].tolist() != eda_rows[eda_rows[LABEL] == 0]["M_Data_Sum"][:40].tolist()
    )


def test_a_label_with_fewer_rows_than_the_limit_is_read_whole(
    read: Cursor, eda_rows: pd.DataFrame
) -> None:
    ones = eda_rows[eda_rows[LABEL] == 1]

    sample = label_sample(read, SMALL_START, SMALL_END, 1, 10_000, len(ones))

    key = list(FEATURE_NAMES)
    pd.testing.assert_frame_equal(
        sample.sort_values(key).reset_index(drop=True),
        ones.sort_values(key).reset_index(drop=True),
    )


def _record(stamp: str, msisdn: str, calls: int | None, label: int | None) -> dict[str, object]:
    record: dict[str, object] = dict.fromkeys(CDR_COLUMNS, 1)
    record.update(DP_DATE=pd.Timestamp(stamp), DP_MSISDN=msisdn, PSEUDO_CHURNED=label)
    record["DP_MOC_COUNT"] = calls
    return record


@pytest.fixture
def edges(db_settings: Settings) -> Settings:
    """Rows just inside and just outside 2024-01-01 .. 2024-01-03, some without a label."""
    frame = pd.DataFrame(
        [
            _record("2023-12-31 23:59:59", "early", 100, 0),
            _record("2024-01-01 00:00:00", "a", 1, 0),
            _record("2024-01-01 12:00:00", "b", None, None),
            _record("2024-01-03 23:59:00", "a", 2, 1),
            _record("2024-01-03 23:59:59", "c", 4, None),
            _record("2024-01-04 00:00:00", "late", 100, 1),
        ]
    )
    with connection(db_settings) as conn, transaction(conn) as cursor:
        insert_cdr_rows(conn, cursor, frame_to_rows(frame), 100)
    return db_settings


def test_the_end_date_is_inclusive_to_its_last_second(edges: Settings) -> None:
    start, end = date(2024, 1, 1), date(2024, 1, 3)
    with connection(edges) as conn, transaction(conn) as cursor:
        overview = range_overview(cursor, start, end)
        daily = daily_totals(cursor, start, end)
        unlabelled = label_sample(cursor, start, end, None, 10, 2)

    assert (overview.rows, overview.subscribers) == (4, 3)
    assert str(overview.last) == "2024-01-03 23:59:59"
    assert daily["day"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-03"]
    assert daily["cdr_rows"].tolist() == [2, 2]
    assert daily["churn_label_rows"].tolist() == [0, 1]
    assert daily["unlabelled_rows"].tolist() == [1, 1]
    assert daily["M_Out_Call_Count"].tolist() == [1, 6]  # NULL calls add nothing
    assert sorted(unlabelled["M_Out_Call_Count"].fillna(-1)) == [-1, 4]
    assert unlabelled[LABEL].isna().all()


def test_moments_count_missing_values_and_a_missing_label(edges: Settings) -> None:
    with connection(edges) as conn, transaction(conn) as cursor:
        moments = label_moments(cursor, date(2024, 1, 1), date(2024, 1, 3))

    calls = moments[moments["feature"] == "M_Out_Call_Count"].set_index(LABEL, drop=False)
    unknown = calls[calls[LABEL].isna()].iloc[0]
    assert (unknown["rows"], unknown["count"], unknown["mean"]) == (2, 1, 4.0)
    assert calls.loc[0.0, "rows"] == 1 and calls.loc[1.0, "max"] == 2.0
