"""What a new stream continues: the simulated timeline and the loads behind it.

Realtime streams stamp rows with the wall clock, so their rows (dated today) must not move
the simulated clock: it continues after the latest row *outside* every realtime stream's
time window (its start minus the jitter to its end plus the jitter; still open while it runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from db.connection import Connection, transaction

# Realtime stamps fall within now +- 300 s (ingest.simulator.REALTIME_JITTER_S), `now` floored
# to the second, while the source's timestamps carry milliseconds.
_JITTER = timedelta(seconds=302)
_SELECT_REALTIME_WINDOWS = (
    "SELECT created_at, updated_at, state FROM ingest_sources "
    "WHERE kind = 'stream' AND JSON_UNQUOTE(JSON_EXTRACT(params, '$.clock')) = 'realtime'"
)
_SELECT_LATEST = "SELECT MAX(DP_DATE) FROM DP_CDR_Data"
_OUTSIDE_WINDOW = "NOT (DP_DATE >= %s AND DP_DATE <= %s)"
_SELECT_LOADS = (
    "SELECT kind, params FROM ingest_sources WHERE kind IN ('generator', 'csv', 'gcs') "
    "ORDER BY created_at, source_id"
)


@dataclass(frozen=True)
class HistoryLoad:
    """A seeding load: the generator (its parameters) or a file."""

    kind: str
    params: dict[str, Any]


def latest_simulated_date(conn: Connection) -> datetime | None:
    """The latest `DP_DATE` not stamped by a realtime stream, or None for an empty table."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_REALTIME_WINDOWS)
        windows = cursor.fetchall()
        far_future = datetime.max - _JITTER
        bounds: list[Any] = []
        for created, updated, state in windows:
            end = far_future if state == "running" else updated + _JITTER
            bounds.extend((created - _JITTER, end))
        conditions = " AND ".join([_OUTSIDE_WINDOW] * len(windows))
        # Only placeholders are composed here; every value is bound.
        sql = _SELECT_LATEST + (f" WHERE {conditions}" if conditions else "")
        cursor.execute(sql, tuple(bounds))
        (latest,) = cursor.fetchone()
    return latest


def history_loads(conn: Connection) -> list[HistoryLoad]:
    """Every seeding load (generator, csv, gcs), oldest first."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_LOADS)
        rows = cursor.fetchall()
    return [HistoryLoad(str(kind), json.loads(params) if params else {}) for kind, params in rows]
