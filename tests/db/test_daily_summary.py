"""GetDailyCDRDataBatch fills DailySummary per day and never duplicates on a second call."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from config.settings import Settings
from db.cdr import cdr_bounds, daily_summary, frame_to_rows, insert_cdr_rows
from db.connection import connection, transaction
from db.errors import QueryError
from db.schema import CDR_COLUMNS
from tests.table_digest import table_snapshot


def _row(
    day: str, msisdn: str, moc: int | None, minutes: float, data: int, mb: float
) -> dict[str, object]:
    return {
        "DP_DATE": pd.Timestamp(day),
        "DP_MSISDN": msisdn,
        "DP_MOC_COUNT": moc,
        "DP_MOC_DURATION": minutes,
        "DP_MTC_COUNT": 1,
        "DP_MTC_DURATION": 1.0,
        "DP_MOSMS_COUNT": 0,
        "DP_MTSMS_COUNT": 0,
        "DP_DATA_COUNT": data,
        "DP_DATA_VOLUME": mb,
        "PSEUDO_CHURNED": 0,
    }


@pytest.fixture
def loaded(db_settings: Settings) -> Settings:
    frame = pd.DataFrame(
        [
            _row("2024-01-01 08:00", "a", 2, 3.5, 1, 10.0),
            _row("2024-01-01 17:30", "b", 4, 1.5, 0, 0.0),
            _row("2024-01-02 00:00", "a", None, 2.0, 3, 5.25),
            _row("2024-01-04 12:00", "c", 1, 0.5, 2, 1.0),
        ],
        columns=list(CDR_COLUMNS),
    )
    frame["DP_MOC_COUNT"] = frame["DP_MOC_COUNT"].astype("Int64")
    with connection(db_settings) as conn, transaction(conn) as cursor:
        insert_cdr_rows(conn, cursor, frame_to_rows(frame), chunk_rows=2)
    return db_settings


def test_summary_per_day_and_idempotent(loaded: Settings) -> None:
    with connection(loaded) as conn:
        first = daily_summary(conn, date(2024, 1, 1))
        after_first = table_snapshot(loaded, "DailySummary")
        second = daily_summary(conn, date(2024, 1, 1))
        assert table_snapshot(loaded, "DailySummary") == after_first
        with transaction(conn) as cursor:
            cursor.execute("SELECT COUNT(*) FROM DailySummary")
            stored = cursor.fetchone()[0]
    assert stored == 3  # three days with data, each once, after two calls
    pd.testing.assert_frame_equal(first, second)
    assert first["summary_date"].tolist() == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 4)]
    day1 = first.iloc[0]
    assert (day1.cdr_rows, day1.outgoing_calls, day1.data_purchases) == (2, 6, 1)
    assert day1.outgoing_call_minutes == pytest.approx(5.0)
    day2 = first.iloc[1]
    assert day2.outgoing_calls == 0  # a NULL count sums as nothing, not as an error
    assert day2.data_volume_mb == pytest.approx(5.25)


def test_summary_returns_rows_from_start_only(loaded: Settings) -> None:
    with connection(loaded) as conn:
        assert daily_summary(conn, date(2024, 1, 2))["summary_date"].tolist() == [
            date(2024, 1, 2),
            date(2024, 1, 4),
        ]
        assert daily_summary(conn, date(2030, 1, 1)).empty


def test_summary_follows_new_rows(loaded: Settings) -> None:
    with connection(loaded) as conn:
        daily_summary(conn, date(2024, 1, 1))
        extra = pd.DataFrame([_row("2024-01-04 13:00", "d", 5, 1.0, 1, 1.0)])
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, frame_to_rows(extra), chunk_rows=10)
        again = daily_summary(conn, date(2024, 1, 1))
    assert again.iloc[-1].outgoing_calls == 6 and again.iloc[-1].cdr_rows == 2


def test_null_start_date_is_refused(loaded: Settings) -> None:
    with connection(loaded) as conn, pytest.raises(QueryError, match="startDate"):
        daily_summary(conn, None)  # type: ignore[arg-type]


def test_bounds(loaded: Settings) -> None:
    with connection(loaded) as conn:
        first, last, rows = cdr_bounds(conn)
    assert (first, last, rows) == (datetime(2024, 1, 1, 8), datetime(2024, 1, 4, 12), 4)
