"""Bounded stream connections: statements limited in time, rows bound as the C extension does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from config.settings import Settings
from db.cdr import insert_cdr_rows
from db.connection import connect, connection, transaction
from db.schema import CDR_COLUMNS

ROWS: list[tuple[Any, ...]] = [
    (datetime(2024, 2, 1, 8, 30, 15), "2771234567", 3, 4.5, 2, 1.25, 1, 0, 2, 30.0, 0),
    (datetime(2024, 2, 1), 'it\'s \\ "odd"\n\x00 é 📞', None, None, 0, 0.0, None, 1, None, None, 1),
    (
        datetime(2024, 2, 2, 23, 59, 59),
        "'; DROP TABLE x; --",
        2**31,
        1e-300,
        7,
        123456.789,
        0,
        0,
        0,
        0.1,
        None,
    ),
    (datetime(2024, 2, 3), "2779", True, 1 / 3, False, 2.5e10, 5, 6, 7, 8.0, 0),
]


def _stored(settings: Settings, since: datetime) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(
            f"SELECT {', '.join(CDR_COLUMNS)} FROM DP_CDR_Data WHERE DP_DATE >= %s ORDER BY id",
            (since,),
        )
        return list(cursor.fetchall())


@pytest.mark.parametrize("bounded", [False, True], ids=["c-extension", "bounded-pure"])
def test_rows_are_stored_exactly_by_either_client(db_settings: Settings, bounded: bool) -> None:
    conn = connect(db_settings, statement_timeout=5 if bounded else None)
    try:
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, ROWS, chunk_rows=3)
    finally:
        conn.close()

    expected = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in ROWS]
    assert _stored(db_settings, datetime(2024, 1, 1)) == expected


def test_a_bounded_connection_uses_the_pure_client_with_a_socket_timeout(
    db_settings: Settings,
) -> None:
    conn: Any = connect(db_settings, statement_timeout=2.5)
    try:
        assert type(conn).__name__ == "MySQLConnection"
        assert conn._socket.sock.gettimeout() == 2.5
    finally:
        conn.close()
