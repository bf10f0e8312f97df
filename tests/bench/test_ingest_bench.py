"""The LOAD DATA CSV (the benchmark ceiling's and the stream's) stores what INSERTs store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from bench.ingest import as_batch_frame
from config.settings import Settings
from db.cdr import csv_text, frame_to_rows, insert_cdr_rows
from db.connection import connect, transaction
from db.maintenance import empty_cdr_tables, load_cdr_csv
from db.schema import CDR_COLUMNS

ROWS = [
    (datetime(2024, 1, 1, 0, 0, 1), "27710000001", 3, 5.5, 2, 4.0, 1, 0, 4, 120.25, 0),
    (datetime(2024, 1, 2, 23, 59, 59), 'it\'s,"odd"\\N', 0, 0.1, None, None, 0, 3, 0, 1e-05, 1),
    (datetime(2024, 1, 3), "a\nb\r\0", None, 1e9, 4294967295, 123456.789, None, None, 1, 3.3, None),
]


def _frame() -> pd.DataFrame:
    return as_batch_frame(pd.DataFrame(ROWS, columns=list(CDR_COLUMNS)))


def _stored(settings: Settings) -> list[tuple[object, ...]]:
    conn = connect(settings)
    try:
        with transaction(conn) as cursor:
            cursor.execute(f"SELECT {', '.join(CDR_COLUMNS)} FROM DP_CDR_Data ORDER BY id")
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        conn.close()


def test_csv_text_loads_what_the_insert_path_stores(db_settings: Settings, tmp_path: Path) -> None:
    frame = _frame()
    conn = connect(db_settings)
    try:
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, frame_to_rows(frame), chunk_rows=10)
    finally:
        conn.close()
    inserted = _stored(db_settings)

    path = tmp_path / "batch.csv"
    path.write_text(csv_text(frame), encoding="utf-8")
    loader = connect(db_settings, allow_local_infile=True)
    try:
        empty_cdr_tables(loader)
        with transaction(loader) as cursor:
            load_cdr_csv(cursor, path)
            assert (cursor.rowcount, cursor.warning_count) == (len(ROWS), 0)
    finally:
        loader.close()

    assert _stored(db_settings) == inserted == [tuple(row) for row in ROWS]


def test_csv_text_leaves_plain_fields_bare_and_writes_null_as_backslash_n() -> None:
    plain = _frame().drop(index=2)
    plain.loc[1, "DP_MSISDN"] = "27710000002"

    assert csv_text(plain).splitlines() == [
        "2024-01-01T00:00:01,27710000001,3,5.5,2,4.0,1,0,4,120.25,0",
        r"2024-01-02T23:59:59,27710000002,0,0.1,\N,\N,0,3,0,1e-05,1",
    ]
