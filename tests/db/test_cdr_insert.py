"""The bulk insert path stores exactly what the driver's plain executemany stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import mysql.connector
import pandas as pd
import pytest

from config.settings import Settings
from db.cdr import frame_to_rows, insert_cdr_rows, recent_cdr
from db.connection import Connection, connect, transaction
from db.errors import QueryError
from db.ingest_log import Source, committed_batches, load_batch, register_source, write_batch
from db.schema import CDR_COLUMNS, COUNT_COLUMNS, LABEL_COLUMN, SUBSCRIBER_COLUMN
from tests.table_digest import table_snapshot

ROWS = [
    (datetime(2024, 1, 1, 0, 0, 1), "27710000001", 3, 5.5, 2, 4.0, 1, 0, 4, 120.25, 0),
    (datetime(2024, 1, 2, 23, 59, 59), "it's\\odd\"", 0, 0.0, None, None, 0, 3, 0, 0.0, 1),
    (datetime(2024, 1, 3), "+27 71 000", None, 1e-2, 4294967295, 1e9, None, None, 1, 3.3, None),
]


def _stored(settings: Settings) -> list[tuple[object, ...]]:
    conn = connect(settings)
    try:
        with transaction(conn) as cursor:
            cursor.execute(f"SELECT {', '.join(CDR_COLUMNS)} FROM DP_CDR_Data ORDER BY id")
            return list(cursor.fetchall())
    finally:
        conn.close()


@pytest.mark.skipif(not mysql.connector.HAVE_CEXT, reason="the fast path needs the C extension")
def test_fast_path_matches_executemany(db_settings: Settings) -> None:
    fast = connect(db_settings)
    assert hasattr(fast, "prepare_for_mysql")
    with transaction(fast) as cursor:
        insert_cdr_rows(fast, cursor, ROWS, chunk_rows=2)
    fast.close()
    via_fast = _stored(db_settings)

    with transaction(plain := connect(db_settings)) as cursor:
        cursor.execute("TRUNCATE TABLE DP_CDR_Data")
    plain.close()
    pure = connect(db_settings, use_pure=True)
    assert not hasattr(pure, "prepare_for_mysql")  # so insert_cdr_rows uses executemany
    with transaction(pure) as cursor:
        insert_cdr_rows(pure, cursor, ROWS, chunk_rows=2)
    pure.close()

    assert via_fast == _stored(db_settings)
    assert [tuple(row) for row in via_fast] == [tuple(r) for r in ROWS]


def test_frame_to_rows_gives_plain_values() -> None:
    import pandas as pd

    frame = pd.DataFrame(ROWS, columns=list(CDR_COLUMNS))
    frame["DP_MTC_COUNT"] = frame["DP_MTC_COUNT"].astype("Int64")
    rows = frame_to_rows(frame)
    assert rows[1][4] is None and rows[2][4] == 4294967295
    assert isinstance(rows[0][0], datetime) and rows[0][0] == ROWS[0][0]
    assert rows[2][10] is None and rows[0][10] == 0


def _registered(settings: Settings, source_id: str) -> Connection:
    conn = connect(settings)
    register_source(conn, Source(source_id, "stream", "test", {}, total_batches=1))
    return conn


def test_a_batch_written_again_changes_nothing(db_settings: Settings) -> None:
    conn = _registered(db_settings, "s1")
    try:
        assert write_batch(conn, "s1", 0, ROWS, chunk_rows=2)
        before = [table_snapshot(db_settings, t) for t in ("DP_CDR_Data", "ingest_batches")]

        assert not write_batch(conn, "s1", 0, ROWS, chunk_rows=2)
    finally:
        conn.close()

    assert [table_snapshot(db_settings, t) for t in ("DP_CDR_Data", "ingest_batches")] == before


def test_a_changed_value_changes_the_snapshot_but_not_the_count(db_settings: Settings) -> None:
    conn = _registered(db_settings, "s1")
    try:
        write_batch(conn, "s1", 0, ROWS, chunk_rows=2)
        before = table_snapshot(db_settings, "DP_CDR_Data")
        with transaction(conn) as cursor:
            cursor.execute("UPDATE DP_CDR_Data SET DP_MOC_DURATION = 5.25 WHERE id = 1")
    finally:
        conn.close()

    after = table_snapshot(db_settings, "DP_CDR_Data")
    assert after.rows == before.rows and after.sha256 != before.sha256


# Every value the CSV must carry exactly: quotes, commas, backslashes, a literal \\N, line
# breaks, NUL, NULLs in every nullable column, floats that need all 17 digits, extremes.
SPECIAL_ROWS = [
    (datetime(2024, 1, 1, 0, 0, 1), "27710000001", 3, 5.5, 2, 4.0, 1, 0, 4, 120.25, 0),
    (datetime(2024, 1, 2, 23, 59, 59), 'it\'s,"odd"\\N', 0, 0.1, None, None, 0, 3, 0, 1e-05, 1),
    (datetime(2024, 1, 3), "a\nb\r\0", None, 1e9, 4294967295, 123456.789, None, None, 1, 3.3, None),
    (datetime(2024, 1, 4, 12), "\\N", 7, 0.30000000000000004, 0, 2.5e-308, 1, 1, 0, 1e300, 1),
    (datetime(2024, 1, 5, 6, 7, 8), "", 0, 0.0, 0, 0.0, 0, 0, 0, 0.0, 0),
]


def _special_frame() -> pd.DataFrame:
    """`SPECIAL_ROWS` with the dtypes the stream's simulator gives (nullable integers)."""
    frame = pd.DataFrame(SPECIAL_ROWS, columns=list(CDR_COLUMNS))
    for column in (*COUNT_COLUMNS, LABEL_COLUMN):
        frame[column] = frame[column].astype("Int64")
    return frame


def _loader(settings: Settings, folder: Path, source_id: str = "s1") -> Connection:
    conn = connect(settings, statement_timeout=30.0, allow_local_infile_in_path=str(folder))
    register_source(conn, Source(source_id, "stream", "test", {}, total_batches=2))
    return conn


def test_load_batch_stores_what_write_batch_stores(db_settings: Settings, tmp_path: Path) -> None:
    frame = _special_frame()
    conn = _registered(db_settings, "s1")
    try:
        assert write_batch(conn, "s1", 0, frame_to_rows(frame), chunk_rows=2)
    finally:
        conn.close()
    inserted = table_snapshot(db_settings, "DP_CDR_Data", exclude={"id"})
    stored = _stored(db_settings)
    with transaction(plain := connect(db_settings)) as cursor:
        cursor.execute("TRUNCATE TABLE DP_CDR_Data")
    plain.close()

    loader = _loader(db_settings, tmp_path, "s2")
    try:
        assert load_batch(loader, "s2", 0, frame, tmp_path)
    finally:
        loader.close()

    assert table_snapshot(db_settings, "DP_CDR_Data", exclude={"id"}) == inserted
    assert _stored(db_settings) == stored == [tuple(row) for row in SPECIAL_ROWS]
    assert list(tmp_path.iterdir()) == []  # the batch's file is gone


def test_a_batch_loaded_again_changes_nothing(db_settings: Settings, tmp_path: Path) -> None:
    conn = _loader(db_settings, tmp_path)
    try:
        assert load_batch(conn, "s1", 0, _special_frame(), tmp_path)
        before = [table_snapshot(db_settings, t) for t in ("DP_CDR_Data", "ingest_batches")]

        assert not load_batch(conn, "s1", 0, _special_frame(), tmp_path)
        after = [table_snapshot(db_settings, t) for t in ("DP_CDR_Data", "ingest_batches")]
        assert load_batch(conn, "s1", 1, _special_frame().iloc[:2], tmp_path)
        logged = committed_batches(conn, "s1")
    finally:
        conn.close()

    assert after == before
    assert logged == {0: len(SPECIAL_ROWS), 1: 2}
    assert list(tmp_path.iterdir()) == []


def test_a_refused_row_rolls_back_the_whole_load_and_its_log_row(
    db_settings: Settings, tmp_path: Path
) -> None:
    bad = _special_frame()
    bad.loc[2, "DP_MOC_DURATION"] = -1.0  # the CHECK refuses it; LOAD DATA LOCAL only warns
    conn = _loader(db_settings, tmp_path)
    try:
        with pytest.raises(QueryError, match="stored 4 of 5 rows"):
            load_batch(conn, "s1", 0, bad, tmp_path)
        assert committed_batches(conn, "s1") == {}
        assert _stored(db_settings) == []
        assert list(tmp_path.iterdir()) == []

        assert load_batch(conn, "s1", 0, _special_frame(), tmp_path)
    finally:
        conn.close()
    assert len(_stored(db_settings)) == len(SPECIAL_ROWS)


def test_a_connection_not_allowed_the_folder_cannot_load(
    db_settings: Settings, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    conn = _loader(db_settings, other)
    try:
        with pytest.raises(QueryError):
            load_batch(conn, "s1", 0, _special_frame(), tmp_path)
    finally:
        conn.close()
    assert _stored(db_settings) == []
    assert list(tmp_path.iterdir()) == [other]


def test_recent_rows_read_over_the_pure_client_equal_the_drivers_conversion(
    db_settings: Settings,
) -> None:
    conn = _registered(db_settings, "s1")
    try:
        assert write_batch(conn, "s1", 0, SPECIAL_ROWS, chunk_rows=10)
    finally:
        conn.close()
    window = (datetime(2023, 12, 31), datetime(2024, 1, 4, 12), 10)
    pure = connect(db_settings, statement_timeout=30.0)
    try:
        fast = recent_cdr(pure, *window)
        with transaction(pure) as cursor:
            cursor.execute(
                f"SELECT {', '.join(CDR_COLUMNS)} FROM DP_CDR_Data "
                "WHERE DP_DATE > %s AND DP_DATE <= %s ORDER BY id DESC LIMIT %s",
                window,
            )
            converted = pd.DataFrame(cursor.fetchall(), columns=list(CDR_COLUMNS))
    finally:
        pure.close()

    pd.testing.assert_frame_equal(fast, converted)
    assert fast[SUBSCRIBER_COLUMN].tolist() == [row[1] for row in reversed(SPECIAL_ROWS[:4])]
    assert _recent_in_an_empty_window(db_settings).empty


def _recent_in_an_empty_window(settings: Settings) -> pd.DataFrame:
    conn = connect(settings, statement_timeout=30.0)
    try:
        return recent_cdr(conn, datetime(2030, 1, 1), datetime(2030, 1, 2), 10)
    finally:
        conn.close()


def test_recent_rows_spanning_several_text_chunks_keep_their_order(
    db_settings: Settings,
) -> None:
    rows = [
        (
            datetime(2024, 1, 1) + timedelta(seconds=i),
            f"2771{i:07d}",
            i,
            i / 7,
            None,
            0.1,
            1,
            0,
            2,
            1e-3 * i,
            i % 2,
        )
        for i in range(9_000)
    ]
    conn = _registered(db_settings, "s1")
    try:
        assert write_batch(conn, "s1", 0, rows, chunk_rows=3_000)
    finally:
        conn.close()
    window = (datetime(2023, 12, 31), datetime(2024, 1, 1, 2), 8_500)
    pure = connect(db_settings, statement_timeout=30.0)
    fast = connect(db_settings)  # the C extension's own path, where it is installed
    try:
        via_text = recent_cdr(pure, *window)
        via_driver = recent_cdr(fast, *window)
    finally:
        pure.close()
        fast.close()

    pd.testing.assert_frame_equal(via_text, via_driver)
    assert len(via_text) == 7_201  # rows up to 02:00:00, newest first
    assert via_text[SUBSCRIBER_COLUMN].iloc[0] == "27710007200"
