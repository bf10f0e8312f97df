"""Copying whole tables from another database on the same server (benchmarks reuse history)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from db.connection import Connection, transaction

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def copy_tables(conn: Connection, source_database: str, tables: Sequence[str]) -> dict[str, int]:
    """Append every row of ``tables`` of ``source_database`` to the same tables here.

    Tables are copied in the order given (parents before children, for foreign keys), in one
    transaction. Both databases must have the same schema (`db.migrate.init_database`).

    Returns:
        Rows copied, per table.

    Raises:
        ValueError: A name is not a plain identifier.
        DatabaseError: A statement failed.
    """
    for name in (source_database, *tables):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a plain database or table name")
    copied: dict[str, int] = {}
    with transaction(conn) as cursor:
        for table in tables:
            # Identifiers cannot be bound; both are checked against _IDENTIFIER above.
            cursor.execute(f"INSERT INTO `{table}` SELECT * FROM `{source_database}`.`{table}`")  # noqa: S608
            copied[table] = int(cursor.rowcount)
    return copied
