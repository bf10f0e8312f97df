"""Reads and writes of the streaming query (`python -m spark_jobs stream`).

Each micro-batch reads the raw rows of the subscriber-days it touches and their recent
`Processed_Data`, then writes in ONE transaction: its `stream_batches` row, the re-aggregated
`Processed_Data` rows and the `model_predictions` rows. A batch that Spark replays after a
crash finds its `stream_batches` row (:func:`batch_committed`) and writes nothing, so every
batch takes effect exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from db.cdr_stream import CDR_STREAM_COLUMNS
from db.connection import Connection, Cursor, transaction
from db.models import PREDICTION_COLUMNS
from db.processed import PROCESSED_COLUMNS

STREAM_BATCHES_TABLE = "stream_batches"
# Keys per statement when reading the raw rows of subscriber-days: each key is one index
# range of `ix_cdr_subscriber_date`; a few hundred keep the range optimiser's plan small.
_KEYS_PER_STATEMENT = 500

_BATCH_COMMITTED = "SELECT 1 FROM stream_batches WHERE query_id = %s AND batch_id = %s"
_INSERT_BATCH = (
    "INSERT INTO stream_batches (query_id, batch_id, first_cdr_id, last_cdr_id, cdr_rows, "
    "subscriber_days, predictions, model_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_SELECT_BATCHES = (
    "SELECT batch_id, first_cdr_id, last_cdr_id, cdr_rows, subscriber_days, predictions, "
    "model_version, committed_at FROM stream_batches WHERE query_id = %s ORDER BY batch_id"
)
_NEWEST_INGEST = "SELECT MAX(committed_at) FROM ingest_batches"
_NOW = "SELECT NOW(3)"

_RAW_SELECT = f"SELECT {', '.join(CDR_STREAM_COLUMNS)} FROM DP_CDR_Data WHERE "  # noqa: S608
_RAW_KEY = "(DP_MSISDN = %s AND DP_DATE >= %s AND DP_DATE < %s)"
_RAW_OUTSIDE = "(id < %s OR id > %s) AND "

_PROCESSED_QUOTED = ", ".join(f"p.`{c}`" for c in PROCESSED_COLUMNS)
_CREATE_USERS = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS stream_touched_users "
    "(`User` VARCHAR(32) NOT NULL PRIMARY KEY) ENGINE = MEMORY"
)
_CLEAR_USERS = "DELETE FROM stream_touched_users"
_INSERT_USER = "INSERT IGNORE INTO stream_touched_users (`User`) VALUES (%s)"
# One pass over the dates' primary-key range, each row checked against the touched users.
_PROCESSED_OF_USERS = (
    f"SELECT {_PROCESSED_QUOTED} FROM Processed_Data p "  # noqa: S608 - constant columns
    "JOIN stream_touched_users u ON u.`User` = p.`User` WHERE p.`Date` BETWEEN %s AND %s"
)

_PROCESSED_NAMES = ", ".join(f"`{c}`" for c in PROCESSED_COLUMNS)
_PROCESSED_UPDATES = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in PROCESSED_COLUMNS[2:])
# Rows per multi-row statement: the driver's `executemany` sends REPLACE (and an upsert
# whose update clause names VALUES()) one row per statement, a round trip each.
_ROWS_PER_STATEMENT = 500
_PROCESSED_ROW = f"({', '.join(['%s'] * len(PROCESSED_COLUMNS))})"
_UPSERT_PROCESSED = (
    f"INSERT INTO Processed_Data ({_PROCESSED_NAMES}) VALUES {{rows}} "  # noqa: S608
    f"ON DUPLICATE KEY UPDATE {_PROCESSED_UPDATES}"
)
# REPLACE deletes the stored row and inserts the new one: the row gets a new `id`, which the
# monitoring poller reads as its watermark, so a re-scored day counts as new.
_REPLACE_PREDICTIONS = "REPLACE INTO model_predictions ({names}) VALUES {{rows}}"


@dataclass(frozen=True)
class StreamBatch:
    """One micro-batch's row of `stream_batches`."""

    query_id: str
    batch_id: int
    first_cdr_id: int | None
    last_cdr_id: int | None
    cdr_rows: int
    subscriber_days: int
    predictions: int
    model_version: str | None
    committed_at: datetime | None = None


def batch_committed(conn: Connection, query_id: str, batch_id: int) -> bool:
    """Whether micro-batch ``batch_id`` of query ``query_id`` has been written."""
    with transaction(conn) as cursor:
        cursor.execute(_BATCH_COMMITTED, (query_id, batch_id))
        return cursor.fetchone() is not None


def committed_batches(conn: Connection, query_id: str) -> list[StreamBatch]:
    """The written micro-batches of ``query_id``, in batch order."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_BATCHES, (query_id,))
        rows = cursor.fetchall()
    return [
        StreamBatch(query_id, int(b), first, last, int(n), int(days), int(p), version, at)
        for b, first, last, n, days, p, version, at in rows
    ]


def newest_ingest_commit(conn: Connection) -> datetime | None:
    """When the newest load into `DP_CDR_Data` committed (`ingest_batches`), if any."""
    with transaction(conn) as cursor:
        cursor.execute(_NEWEST_INGEST)
        (value,) = cursor.fetchone()
    return value


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def raw_rows_of_days(
    conn: Connection,
    keys: Sequence[tuple[str, date]],
    outside: tuple[int, int] | None = None,
) -> list[tuple[bytes | None, ...]]:
    """Every raw row of the (subscriber, day) ``keys``, in `CDR_STREAM_COLUMNS` order, each
    value the server's text (NULL as None), read through `ix_cdr_subscriber_date`.

    ``keys`` name subscribers as stored in `DP_MSISDN`; a day runs from 00:00 to 24:00.
    ``outside``, ``(first, last)``: only the rows whose id is not in [first, last] (the
    rows a micro-batch does not already carry). The index holds the id, so the rows left
    out are never fetched.
    """
    select, bounds = _RAW_SELECT, list[int]()
    if outside is not None:
        select, bounds = _RAW_SELECT + _RAW_OUTSIDE, [outside[0], outside[1]]
    rows: list[tuple[bytes | None, ...]] = []
    # `transaction` translates the driver's errors; the rows come through a raw cursor.
    with transaction(conn):
        raw: Cursor = conn.cursor(raw=True)
        try:
            for chunk in _chunks(keys, _KEYS_PER_STATEMENT):
                params: list[Any] = list(bounds)
                for subscriber, day in chunk:
                    first = datetime.combine(day, datetime.min.time())
                    params += [subscriber, first, first + timedelta(days=1)]
                raw.execute(select + "(" + " OR ".join([_RAW_KEY] * len(chunk)) + ")", params)
                rows.extend(raw.fetchall())
        finally:
            raw.close()
    return rows


def processed_of_subscribers(
    conn: Connection, subscribers: Sequence[str], first: date, last: date
) -> list[tuple[Any, ...]]:
    """The `Processed_Data` rows of ``subscribers`` dated in [first, last], in
    `PROCESSED_COLUMNS` order."""
    with transaction(conn) as cursor:
        return _processed_of_subscribers(cursor, subscribers, first, last)


def processed_text_of_subscribers(
    conn: Connection, subscribers: Sequence[str], first: date, last: date
) -> list[tuple[bytes | None, ...]]:
    """:func:`processed_of_subscribers` with each value the server's text (NULL as None):
    for a caller that parses whole columns at once (a micro-batch reads ~27 rows per
    subscriber it touches, and converting each value in Python costs more than the read)."""
    # `transaction` translates the driver's errors; the rows come through a raw cursor.
    with transaction(conn):
        raw: Cursor = conn.cursor(raw=True)
        try:
            return _processed_of_subscribers(raw, subscribers, first, last)
        finally:
            raw.close()


def _processed_of_subscribers(
    cursor: Cursor, subscribers: Sequence[str], first: date, last: date
) -> list[tuple[Any, ...]]:
    cursor.execute(_CREATE_USERS)
    cursor.execute(_CLEAR_USERS)
    if subscribers:
        cursor.executemany(_INSERT_USER, [(s,) for s in subscribers])
    cursor.execute(_PROCESSED_OF_USERS, (first, last))
    rows = list(cursor.fetchall())
    cursor.execute(_CLEAR_USERS)
    return rows


def write_batch(
    conn: Connection,
    batch: StreamBatch,
    processed: Sequence[Sequence[Any]],
    predictions: Sequence[Sequence[Any]],
    prediction_columns: Sequence[str] = PREDICTION_COLUMNS,
) -> datetime:
    """Write a micro-batch in one transaction: its log row, its subscriber-days and its
    predictions. Returns the server time of the write, just before the commit.

    Args:
        conn: The connection.
        batch: The batch's `stream_batches` row (its key must be new).
        processed: Whole subscriber-days in `PROCESSED_COLUMNS` order: each replaces its
            stored (Date, User) row.
        predictions: Rows of ``prediction_columns``: each replaces the stored row of its
            (model version, date, subscriber).
        prediction_columns: Columns of `PREDICTION_COLUMNS`, in its order; those left
            out are NULL.

    Raises:
        IntegrityConflict: the batch was already written (nothing is written again).
    """
    with transaction(conn) as cursor:
        _execute_rows(cursor, _UPSERT_PROCESSED, _PROCESSED_ROW, processed)
        replace_predictions(cursor, predictions, prediction_columns)
        # Last, so that its `committed_at` is the moment of the commit (the bench's clock).
        cursor.execute(
            _INSERT_BATCH,
            (
                batch.query_id,
                batch.batch_id,
                batch.first_cdr_id,
                batch.last_cdr_id,
                batch.cdr_rows,
                batch.subscriber_days,
                batch.predictions,
                batch.model_version,
            ),
        )
        cursor.execute(_NOW)
        (now,) = cursor.fetchone()
    return now


def replace_predictions(
    cursor: Cursor,
    predictions: Sequence[Sequence[Any]],
    columns: Sequence[str] = PREDICTION_COLUMNS,
) -> None:
    """Store ``predictions`` (rows of ``columns``, some of `PREDICTION_COLUMNS` in its order,
    the others NULL) inside the caller's transaction, each replacing the row of its (model
    version, date, subscriber).

    A model fills a few of the feature slots: leaving the others out of the statement
    spares binding half of each row's parameters, the bulk of a micro-batch's write.

    Raises:
        ValueError: ``columns`` are not in `PREDICTION_COLUMNS` or not in its order.
    """
    known = [name for name in PREDICTION_COLUMNS if name in set(columns)]
    if known != list(columns):
        raise ValueError(f"{list(columns)} are not columns of model_predictions in order")
    names = ", ".join(f"`{name}`" for name in known)
    placeholders = f"({', '.join(['%s'] * len(known))})"
    _execute_rows(cursor, _REPLACE_PREDICTIONS.format(names=names), placeholders, predictions)


def _execute_rows(
    cursor: Cursor, statement: str, placeholders: str, rows: Sequence[Sequence[Any]]
) -> None:
    """Run ``statement`` (its ``{rows}`` the VALUES list) over ``rows``, a few hundred rows
    per statement, every value a bound parameter."""
    for chunk in _chunks(rows, _ROWS_PER_STATEMENT):
        values = ", ".join([placeholders] * len(chunk))
        cursor.execute(statement.format(rows=values), [value for row in chunk for value in row])
