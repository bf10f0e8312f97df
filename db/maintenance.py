"""Bulk operations for the benchmarks: empty, fingerprint and bulk-load the CDR tables; count
the rows Spark wrote to a staging table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from db.connection import Connection, Cursor, transaction
from db.schema import CDR_COLUMNS, LABEL_COLUMN, USAGE_COLUMNS
from db.staging import STAGING_MARK

# Child table first: `ingest_batches` references `ingest_sources`, which is kept.
_TRUNCATE = ("TRUNCATE TABLE ingest_batches", "TRUNCATE TABLE DP_CDR_Data")
_SUMMED_COLUMNS: tuple[str, ...] = (*USAGE_COLUMNS, LABEL_COLUMN)
_FINGERPRINT = (
    "SELECT COUNT(*), MIN(DP_DATE), MAX(DP_DATE), COUNT(DISTINCT DP_MSISDN), "  # noqa: S608 - constant column names
    + ", ".join(f"SUM({column} IS NULL)" for column in CDR_COLUMNS)
    + ", "
    + ", ".join(f"SUM({column})" for column in _SUMMED_COLUMNS)
    + " FROM DP_CDR_Data"
)
_LOAD_CSV = (
    "LOAD DATA LOCAL INFILE '{path}' INTO TABLE DP_CDR_Data CHARACTER SET utf8mb4 "
    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
    f"({', '.join(CDR_COLUMNS)})"
)
# The path is spliced into a quoted literal: none of these may appear in it.
_UNSAFE_PATH_CHARACTERS = frozenset("'\"`\\")
_STAGING_NAME = re.compile(rf"^[A-Za-z][A-Za-z0-9_]{{0,40}}{STAGING_MARK}[0-9a-f]{{8}}$")


@dataclass(frozen=True)
class CdrFingerprint:
    """Aggregates of `DP_CDR_Data` that change when rows are lost, doubled or altered."""

    rows: int
    first_date: datetime | None
    last_date: datetime | None
    subscribers: int
    # NULLs per column, in `CDR_COLUMNS` order.
    null_counts: tuple[int, ...]
    # Sums of `USAGE_COLUMNS` in that order, then of the label; None where no value is stored.
    sums: tuple[float | None, ...]


def empty_cdr_tables(conn: Connection) -> None:
    """Empty the CDR table and the batch log, resetting AUTO_INCREMENT; sources are kept."""
    with transaction(conn) as cursor:
        for statement in _TRUNCATE:
            cursor.execute(statement)


def cdr_fingerprint(conn: Connection) -> CdrFingerprint:
    """Row count, date range, subscribers, NULLs per column and column sums of `DP_CDR_Data`."""
    with transaction(conn) as cursor:
        cursor.execute(_FINGERPRINT)
        row = cursor.fetchone()
    rows, first_date, last_date, subscribers = row[:4]
    nulls = row[4 : 4 + len(CDR_COLUMNS)]
    sums = row[4 + len(CDR_COLUMNS) :]
    return CdrFingerprint(
        rows=int(rows),
        first_date=first_date,
        last_date=last_date,
        subscribers=int(subscribers),
        # SUM over no rows is NULL: an empty table has no NULLs.
        null_counts=tuple(int(count or 0) for count in nulls),
        sums=tuple(None if total is None else float(total) for total in sums),
    )


def load_cdr_csv(cursor: Cursor, path: Path) -> None:
    """Load a headerless CSV of `CDR_COLUMNS` (``\\N`` for NULL) with LOAD DATA LOCAL INFILE.

    The connection must have been opened with ``allow_local_infile=True``. The rows commit
    with the cursor's transaction; ``cursor.rowcount`` and ``cursor.warning_count`` tell how
    many rows were loaded and how many values the server had to adjust.

    Raises:
        ValueError: ``path`` holds a quote or a backslash.
    """
    text = str(path)
    if _UNSAFE_PATH_CHARACTERS.intersection(text):
        raise ValueError(f"path {text!r} has characters unsafe in a SQL string literal")
    # A file name cannot be a bound parameter of LOAD DATA. The callers pass a temporary
    # path they created themselves, and it was checked above for anything ending the literal.
    cursor.execute(_LOAD_CSV.format(path=text))


def staged_row_count(conn: Connection, staging: str) -> int:
    """Rows in a staging table made by :func:`db.staging.create_staging`.

    Raises:
        ValueError: ``staging`` is not the name of a staging table.
    """
    if not _STAGING_NAME.match(staging):
        raise ValueError(f"{staging!r} is not a staging table")
    with transaction(conn) as cursor:
        # A table name cannot be a bound parameter; this one matched the staging pattern.
        cursor.execute(f"SELECT COUNT(*) FROM `{staging}`")  # noqa: S608
        (rows,) = cursor.fetchone()
    return int(rows)


def server_pid_file(conn: Connection) -> str:
    """The server's pid file (``@@pid_file``): which process serves this connection."""
    with transaction(conn) as cursor:
        cursor.execute("SELECT @@pid_file")
        (path,) = cursor.fetchone()
    return str(path)
