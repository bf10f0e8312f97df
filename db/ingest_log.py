"""The log of ingest sources and their batches, and the one-transaction batch write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import mysql.connector.errors as mysql_errors

from db.cdr import Row, insert_cdr_rows
from db.connection import Connection, transaction

SourceKind = Literal["stream", "generator", "csv", "gcs"]
SourceState = Literal["running", "completed", "stopped", "failed"]

_DUPLICATE_KEY = 1062
_SELECT_SOURCE = (
    "SELECT source_id, kind, description, params, total_batches, anchor_date, state, last_error "
    "FROM ingest_sources WHERE source_id = %s"
)
_INSERT_SOURCE = (
    "INSERT INTO ingest_sources (source_id, kind, description, params, total_batches, anchor_date) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_UPDATE_STATE = (
    "UPDATE ingest_sources SET state = %s, last_error = %s, total_batches = %s WHERE source_id = %s"
)
_SELECT_BATCHES = "SELECT batch_no, row_count FROM ingest_batches WHERE source_id = %s"
_INSERT_BATCH = "INSERT INTO ingest_batches (source_id, batch_no, row_count) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Source:
    """A registered load: a stream, a generated history or a file."""

    source_id: str
    kind: SourceKind
    description: str
    params: dict[str, Any]
    total_batches: int
    anchor_date: datetime | None = None
    state: SourceState = "running"
    last_error: str | None = None


def get_source(conn: Connection, source_id: str) -> Source | None:
    """The source registered under ``source_id``, if any."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_SOURCE, (source_id,))
        row = cursor.fetchone()
    if row is None:
        return None
    sid, kind, description, params, total, anchor, state, error = row
    return Source(
        source_id=str(sid),
        kind=kind,
        description=str(description),
        params=json.loads(params) if params else {},
        total_batches=int(total),
        anchor_date=anchor,
        state=state,
        last_error=error,
    )


def register_source(conn: Connection, source: Source) -> Source:
    """Record ``source`` unless one with its id exists; return the stored one either way.

    Returning the stored source lets a resumed load keep its original anchor date.
    """
    existing = get_source(conn, source.source_id)
    if existing is not None:
        return existing
    with transaction(conn) as cursor:
        cursor.execute(
            _INSERT_SOURCE,
            (
                source.source_id,
                source.kind,
                source.description[:1024],
                json.dumps(source.params, default=str),
                source.total_batches,
                source.anchor_date,
            ),
        )
    return source


def set_source_state(
    conn: Connection,
    source_id: str,
    state: SourceState,
    total_batches: int,
    last_error: str | None = None,
) -> None:
    """Record how a source's load ended (or that it runs again)."""
    with transaction(conn) as cursor:
        error = last_error[:1024] if last_error else None
        cursor.execute(_UPDATE_STATE, (state, error, total_batches, source_id))


def committed_batches(conn: Connection, source_id: str) -> dict[int, int]:
    """Batch number -> row count of the batches of ``source_id`` already committed."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_BATCHES, (source_id,))
        return {int(n): int(c) for n, c in cursor.fetchall()}


def write_batch(
    conn: Connection, source_id: str, batch_no: int, rows: Sequence[Row], chunk_rows: int
) -> bool:
    """Insert ``rows`` and their batch-log row in one transaction.

    Returns False, inserting nothing, when the batch was committed before: a retry after a
    commit whose acknowledgement was lost must not insert the rows twice.
    """
    with transaction(conn) as cursor:
        try:
            cursor.execute(_INSERT_BATCH, (source_id, batch_no, len(rows)))
        except mysql_errors.IntegrityError as exc:
            if exc.errno == _DUPLICATE_KEY:
                return False
            raise
        insert_cdr_rows(conn, cursor, rows, chunk_rows)
    return True
