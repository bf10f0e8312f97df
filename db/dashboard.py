"""The dashboard's reads: which versions have runs, where the reference period and the stream
lie in time, and a bounded sample of one feature's stored values for a drill-down.

Every statement runs in `db.connection.transaction`, so callers see our `DatabaseError`
hierarchy only. Column names come from `db.models`' slot constants, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from db.connection import Connection, transaction
from db.models import ANALYSIS, REFERENCE, feature_columns

# Rows a drill-down reads per side at most: a histogram needs no more, and a request must
# not pull a whole table through the web service.
DRILLDOWN_MAX_ROWS = 100_000

_VERSIONS_WITH_RUNS = (
    "SELECT model_version, MAX(run_id) AS last_run FROM monitoring_runs "
    "GROUP BY model_version ORDER BY last_run DESC LIMIT %s"
)
_RUN_STATE = (
    "SELECT run_id, status, finished_at FROM monitoring_runs WHERE model_version = %s "
    "ORDER BY run_id DESC LIMIT 1"
)
_REFERENCE_SPAN = (
    "SELECT MIN(as_of_date), MAX(as_of_date) FROM model_predictions "
    "WHERE model_version = %s AND period = %s"
)
# The ingest service's streams declare their first simulated day; the streaming job logs
# the CDR ids of each batch it scored. The earlier of the two is where the stream begins.
_STREAM_ANCHOR = "SELECT MIN(anchor_date) FROM ingest_sources WHERE kind = 'stream'"
_FIRST_STREAMED_CDR = (
    "SELECT DP_DATE FROM DP_CDR_Data WHERE id = (SELECT MIN(first_cdr_id) FROM stream_batches)"
)
# `{column}`: a slot column constant of db.models.
_VALUES_OF_PERIOD = (
    "SELECT {column} FROM model_predictions WHERE model_version = %s AND period = %s LIMIT %s"
)
_VALUES_OF_SPAN = (
    "SELECT {column} FROM model_predictions WHERE model_version = %s AND period = %s "
    "AND as_of_date >= %s AND as_of_date {end_op} %s LIMIT %s"
)
_MAX_VERSIONS = 200


@dataclass(frozen=True)
class RunState:
    """The newest run of a version, what the page polls to know it is stale.

    Attributes:
        run_id: The run's id.
        status: ``succeeded`` or ``failed``.
        finished_at: When it ended (UTC, naive).
    """

    run_id: int
    status: str
    finished_at: datetime


@dataclass(frozen=True)
class FeatureValues:
    """A bounded sample of one feature's values in the reference and in one chunk.

    Attributes:
        reference: The reference rows' values (None for NULL).
        chunk: The chunk rows' values.
        truncated: A side had more than `DRILLDOWN_MAX_ROWS` rows and was cut there.
    """

    reference: list[Any]
    chunk: list[Any]
    truncated: bool


def monitored_versions(conn: Connection) -> list[str]:
    """Model versions with at least one stored run, the most recently run first."""
    with transaction(conn) as cursor:
        cursor.execute(_VERSIONS_WITH_RUNS, (_MAX_VERSIONS,))
        rows = cursor.fetchall()
    return [str(version) for version, _ in rows]


def latest_run_state(conn: Connection, version: str) -> RunState | None:
    """The newest run of ``version`` (any status), or None when it has none."""
    with transaction(conn) as cursor:
        cursor.execute(_RUN_STATE, (version,))
        row = cursor.fetchone()
    if row is None:
        return None
    run_id, status, finished_at = row
    return RunState(int(run_id), str(status), finished_at)


def reference_span(conn: Connection, version: str) -> tuple[date, date] | None:
    """The first and last day of ``version``'s reference predictions, or None without any."""
    with transaction(conn) as cursor:
        cursor.execute(_REFERENCE_SPAN, (version, REFERENCE))
        first, last = cursor.fetchone()
    if first is None or last is None:
        return None
    return _as_date(first), _as_date(last)


def first_streamed_day(conn: Connection) -> date | None:
    """The first day of streamed data, or None when nothing was ever streamed.

    It is the earlier of a stream source's declared first simulated day (`ingest_sources`)
    and the day of the first record the streaming job scored (`stream_batches`).
    """
    with transaction(conn) as cursor:
        cursor.execute(_STREAM_ANCHOR)
        (anchor,) = cursor.fetchone()
        cursor.execute(_FIRST_STREAMED_CDR)
        row = cursor.fetchone()
    days = [_as_date(value) for value in (anchor, row[0] if row else None) if value is not None]
    return min(days) if days else None


def feature_values(
    conn: Connection,
    version: str,
    continuous: list[str],
    categorical: list[str],
    feature: str,
    chunk_start: datetime,
    chunk_end: datetime,
    *,
    end_inclusive: bool = False,
    limit: int = DRILLDOWN_MAX_ROWS,
) -> FeatureValues:
    """One feature's stored values: every reference row and the analysis rows of one chunk,
    each side cut at ``limit`` rows.

    Args:
        conn: The connection.
        version: The model version.
        continuous: Its continuous features in registry order (they name the slot columns).
        categorical: Its categorical features likewise.
        feature: One of them.
        chunk_start: The chunk's first day.
        chunk_end: Its end: excluded for a period chunk, included for a size chunk.
        end_inclusive: ``chunk_end`` is included (size chunks).
        limit: Rows per side at most.

    Raises:
        ValueError: ``feature`` is not one of the model's features.
    """
    slots = feature_columns(continuous, categorical)
    if feature not in slots:
        raise ValueError(f"{feature!r} is not a feature of model version {version!r}")
    column = slots[feature]
    by_period = _VALUES_OF_PERIOD.format(column=column)
    by_span = _VALUES_OF_SPAN.format(column=column, end_op="<=" if end_inclusive else "<")
    with transaction(conn, prepared=True) as cursor:
        cursor.execute(by_period, (version, REFERENCE, limit + 1))
        reference = [value for (value,) in cursor.fetchall()]
        cursor.execute(by_span, (version, ANALYSIS, chunk_start, chunk_end, limit + 1))
        chunk = [value for (value,) in cursor.fetchall()]
    truncated = len(reference) > limit or len(chunk) > limit
    return FeatureValues(reference[:limit], chunk[:limit], truncated)


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
