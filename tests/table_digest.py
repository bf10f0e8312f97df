"""Content snapshots of tables, for tests that re-run a load and check that nothing changed.

A row count stays the same when a re-run replaces a row with a different one; a digest
over every ordered row does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from config.settings import Settings
from db.connection import connection, transaction

# When a row was written, not what it holds: a re-run may move these and change nothing.
BOOKKEEPING_COLUMNS = frozenset(
    {"created_at", "updated_at", "committed_at", "refreshed_at", "scored_at"}
)


@dataclass(frozen=True)
class TableSnapshot:
    """A table's row count and a SHA-256 over its rows, ordered by every column compared."""

    table: str
    rows: int
    sha256: str


def table_snapshot(settings: Settings, table: str, exclude: Iterable[str] = ()) -> TableSnapshot:
    """Snapshot ``table`` over all its columns but the bookkeeping ones and ``exclude``."""
    skipped = BOOKKEEPING_COLUMNS | set(exclude)
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        names = [_text(name) for (name,) in cursor.fetchall()]
        columns = [name for name in names if name not in skipped]
        assert columns, f"{table} has no columns to compare (does it exist?)"
        quoted = ", ".join(f"`{name}`" for name in columns)
        cursor.execute(f"SELECT {quoted} FROM `{table}` ORDER BY {quoted}")
        digest = hashlib.sha256()
        rows = 0
        for row in cursor.fetchall():
            digest.update(repr(tuple(row)).encode())
            digest.update(b"\n")
            rows += 1
    return TableSnapshot(table, rows, digest.hexdigest())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
