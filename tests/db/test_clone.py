"""Copying tables between two databases of one server."""

from __future__ import annotations

import pytest

from config.settings import Settings
from db.clone import copy_tables
from db.connection import connection, transaction


def _rows(settings: Settings) -> list[tuple[object, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT `Date`, `User`, Record_Count FROM Processed_Data ORDER BY `User`")
        return list(cursor.fetchall())


def test_copy_tables_appends_every_row(db_settings: Settings, module_db_settings: Settings) -> None:
    with connection(module_db_settings) as conn, transaction(conn) as cursor:
        cursor.execute("DELETE FROM Processed_Data")
        cursor.executemany(
            "INSERT INTO Processed_Data VALUES (%s, %s, 1, 2.0, 3, 4.0, 5, 6, 7, 8.0, 9, %s)",
            [("2024-01-01", "a", 0), ("2024-01-01", "b", None)],
        )
    with connection(db_settings) as conn:
        copied = copy_tables(conn, module_db_settings.db_name, ["Processed_Data"])
    assert copied == {"Processed_Data": 2}
    assert _rows(db_settings) == _rows(module_db_settings)


def test_copy_tables_refuses_names_that_are_not_identifiers(db_settings: Settings) -> None:
    with connection(db_settings) as conn, pytest.raises(ValueError, match="plain"):
        copy_tables(conn, "x`; DROP DATABASE y", ["Processed_Data"])
