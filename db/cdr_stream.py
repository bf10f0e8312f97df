"""Reads behind the streaming CDR source: the committed id watermark and id-range slices.

The streaming source (`spark_jobs/cdr_source.py`) admits `DP_CDR_Data` rows by `id`. Two
facts from here let it do that without losing a row:

* :func:`max_cdr_id`, the highest *committed* id, read in READ COMMITTED;
* :func:`id_window`, the highest committed id and the row count after an id, in one read:
  when they match, no id below that maximum is missing, so none can still commit;
* :func:`open_writers`, the transactions that are writing anywhere in the server. Under
  concurrent writers auto-increment ids commit out of order (a transaction can hold ids
  below another's committed ones), so a committed maximum is only final once every
  transaction that was writing when it was read has ended.
"""

from __future__ import annotations

from collections.abc import Iterator

import mysql.connector.errors as mysql_errors

from db.connection import Connection, Cursor
from db.errors import DatabaseError, DatabaseUnavailable, is_transient
from db.schema import CDR_COLUMNS

CDR_STREAM_COLUMNS: tuple[str, ...] = ("id", *CDR_COLUMNS)

_MAX_ID = "SELECT COALESCE(MAX(id), 0) FROM DP_CDR_Data"
_ID_WINDOW = "SELECT MAX(id), COUNT(*) FROM DP_CDR_Data WHERE id > %s AND id <= %s"
_MAX_UNSIGNED_BIGINT = 2**64 - 1
# Writers only: a transaction that inserts takes an intention lock on its table first, so
# it shows `trx_tables_locked > 0` before it holds an id. Plain readers (autocommit off,
# idle after a SELECT) hold no table lock and must not stall the stream.
_OPEN_WRITERS = (
    "SELECT trx_id, trx_mysql_thread_id FROM information_schema.INNODB_TRX "
    "WHERE trx_tables_locked > 0 AND trx_mysql_thread_id <> CONNECTION_ID()"
)
_SELECT_RANGE = (
    f"SELECT {', '.join(CDR_STREAM_COLUMNS)} FROM DP_CDR_Data "  # noqa: S608 - constant columns
    "WHERE id > %s AND id <= %s"
)
# 1227: "Access denied; you need the PROCESS privilege" (information_schema.INNODB_TRX).
_ACCESS_DENIED = frozenset({1227, 1142, 1044})


class WriterCheckDenied(DatabaseError):
    """The account may not read `information_schema.INNODB_TRX` (it needs PROCESS)."""


def _translate(exc: Exception) -> DatabaseError:
    if is_transient(exc):
        return DatabaseUnavailable("the connection to the database was lost")
    errno = getattr(exc, "errno", None)
    return DatabaseError(f"a database statement failed (error {errno})")


def read_committed(conn: Connection) -> None:
    """Make each of ``conn``'s next statements see every transaction committed before it."""
    try:
        cursor: Cursor = conn.cursor()
        try:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        finally:
            cursor.close()
    except mysql_errors.Error as exc:
        raise _translate(exc) from exc


def max_cdr_id(conn: Connection) -> int:
    """The highest committed `DP_CDR_Data.id`, 0 for an empty table."""
    try:
        cursor: Cursor = conn.cursor()
        try:
            cursor.execute(_MAX_ID)
            (value,) = cursor.fetchone()
        finally:
            cursor.close()
        conn.commit()
    except mysql_errors.Error as exc:
        raise _translate(exc) from exc
    return int(value)


def id_window(conn: Connection, after: int, until: int | None = None) -> tuple[int, int]:
    """The highest committed id in ``(after, until]`` (``after`` when none) and how many
    committed rows that range holds, both from one snapshot.
    """
    try:
        cursor: Cursor = conn.cursor()
        try:
            cursor.execute(_ID_WINDOW, (after, _MAX_UNSIGNED_BIGINT if until is None else until))
            highest, count = cursor.fetchone()
        finally:
            cursor.close()
        conn.commit()
    except mysql_errors.Error as exc:
        raise _translate(exc) from exc
    return (after if highest is None else int(highest)), int(count)


def open_writers(conn: Connection) -> frozenset[int]:
    """Ids of the transactions, other than ``conn``'s, that are writing right now.

    InnoDB refreshes this view at most every 0.1 s: a transaction may still be listed up
    to 0.1 s after it ended, and one that began less than 0.1 s ago may not be listed yet.

    Raises:
        WriterCheckDenied: the account lacks the PROCESS privilege this view needs.
    """
    try:
        cursor: Cursor = conn.cursor()
        try:
            cursor.execute(_OPEN_WRITERS)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        conn.commit()
    except mysql_errors.Error as exc:
        if getattr(exc, "errno", None) in _ACCESS_DENIED:
            raise WriterCheckDenied(
                "the database account may not read information_schema.INNODB_TRX (grant it "
                "PROCESS, or set the source option writerCheck=none for a single writer)"
            ) from exc
        raise _translate(exc) from exc
    return frozenset(int(trx_id) for trx_id, _ in rows)


def cdr_text_rows_between(
    conn: Connection, after: int, until: int, chunk_rows: int
) -> Iterator[list[tuple[bytes | None, ...]]]:
    """Rows with ``after < id <= until`` in `CDR_STREAM_COLUMNS` order, each value the text
    the server sent (NULL as None), in lists of at most ``chunk_rows`` rows, streamed from
    the server (no client-side buffer).

    Undecoded: the caller parses whole columns at once (Arrow does it in C++), which halves
    the fetch time of turning each value into a Python object here.
    """
    try:
        cursor: Cursor = conn.cursor(buffered=False, raw=True)
        try:
            cursor.execute(_SELECT_RANGE, (after, until))
            while chunk := cursor.fetchmany(chunk_rows):
                yield chunk
        finally:
            cursor.close()
        conn.commit()
    except mysql_errors.Error as exc:
        raise _translate(exc) from exc
