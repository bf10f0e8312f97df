"""Staging tables: Spark writes a job's rows to a copy of the target table, then one
transaction moves them in, so a re-run replaces its range and a failed run changes nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from db.connection import Connection, transaction

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")
STAGING_MARK = "__stg_"


def _checked(table: str) -> str:
    # Table names cannot be bound parameters; these come from constants and a random suffix.
    if not _IDENTIFIER.match(table.replace(STAGING_MARK, "_")):
        raise ValueError(f"not a table name this module creates: {table!r}")
    return table


def create_staging(conn: Connection, table: str, columns: Sequence[str] = ()) -> str:
    """Create an empty copy of ``table``'s columns (all, or ``columns``) and return its name.

    The copy has no keys or indexes: Spark appends to it about twice as fast, and the
    move-in statement checks the target's keys once. Name ``columns`` to leave out those
    the target fills itself (an AUTO_INCREMENT id, a default timestamp).
    """
    staging = f"{_checked(table)}{STAGING_MARK}{secrets.token_hex(4)}"
    selected = ", ".join(f"`{_checked(column)}`" for column in columns) or "*"
    with transaction(conn) as cursor:
        cursor.execute(
            f"CREATE TABLE `{_checked(staging)}` SELECT {selected} FROM `{table}` LIMIT 0"  # noqa: S608
        )
    return staging


def drop_staging(conn: Connection, staging: str) -> None:
    """Drop a table made by :func:`create_staging`."""
    if STAGING_MARK not in staging:
        raise ValueError(f"{staging!r} is not a staging table")
    with transaction(conn) as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS `{_checked(staging)}`")
