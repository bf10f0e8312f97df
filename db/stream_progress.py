"""Reads that follow streamed days through the pipeline, for the closed-loop demo.

A streamed day's rows land in `DP_CDR_Data` through `ingest_batches`, are scored by the
streaming query (`stream_batches`) into `model_predictions`, and are judged by the monitoring
poller (`monitoring_runs.verdicts`). Each function here reads one of those tables; joining
them into one day's story is the caller's (pure) business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from db.connection import Connection, transaction

_DAYS_FROM = (
    "SELECT DATE(DP_DATE) AS day, COUNT(*), MIN(id), MAX(id) FROM DP_CDR_Data "
    "WHERE DP_DATE >= %s GROUP BY day ORDER BY day"
)
_INGEST_BATCHES = (
    "SELECT batch_no, row_count, committed_at FROM ingest_batches "
    "WHERE source_id = %s ORDER BY batch_no"
)
_STREAM_BATCHES_AFTER = (
    "SELECT query_id, batch_id, first_cdr_id, last_cdr_id, predictions, committed_at "
    "FROM stream_batches WHERE last_cdr_id > %s ORDER BY committed_at, batch_id"
)
_PREDICTIONS_FROM = (
    "SELECT as_of_date, COUNT(*), MAX(id) FROM model_predictions "
    "WHERE model_version = %s AND period = 'analysis' AND as_of_date >= %s "
    "GROUP BY as_of_date ORDER BY as_of_date"
)
_RUNS_AFTER = (
    "SELECT run_id, model_version, status, finished_at, watermark_id, verdicts, error_message "
    "FROM monitoring_runs WHERE run_id > %s ORDER BY run_id"
)


@dataclass(frozen=True)
class RawDay:
    """The raw rows of one `DP_DATE` day: how many, and their lowest and highest `id`."""

    day: date
    rows: int
    first_id: int
    last_id: int


@dataclass(frozen=True)
class IngestBatch:
    """One committed batch of an ingest source, in its source's order."""

    batch_no: int
    rows: int
    committed_at: datetime


@dataclass(frozen=True)
class ScoringBatch:
    """One micro-batch of the streaming query: the raw ids it read and when it committed."""

    query_id: str
    batch_id: int
    first_id: int | None
    last_id: int | None
    predictions: int
    committed_at: datetime


@dataclass(frozen=True)
class DayPredictions:
    """A model version's analysis predictions of one day."""

    day: date
    rows: int
    max_id: int


@dataclass(frozen=True)
class RunVerdicts:
    """One monitoring run: its status, the predictions it had seen and its chunks' verdicts.

    Attributes:
        verdicts: ``{"chunk", "verdict", "reasons"}`` per chunk, as stored by the run.
    """

    run_id: int
    model_version: str
    status: str
    finished_at: datetime
    watermark_id: int
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    error_message: str | None = None


def raw_days_from(conn: Connection, first: date) -> list[RawDay]:
    """The raw rows per day of `DP_CDR_Data` from ``first`` on, oldest day first."""
    with transaction(conn) as cursor:
        cursor.execute(_DAYS_FROM, (datetime.combine(first, datetime.min.time()),))
        rows = cursor.fetchall()
    return [RawDay(day, int(n), int(low), int(high)) for day, n, low, high in rows]


def ingest_batches_of(conn: Connection, source_id: str) -> list[IngestBatch]:
    """The committed batches of the ingest source ``source_id``, in batch order."""
    with transaction(conn) as cursor:
        cursor.execute(_INGEST_BATCHES, (source_id,))
        rows = cursor.fetchall()
    return [IngestBatch(int(no), int(n), at) for no, n, at in rows]


def scoring_batches_after(conn: Connection, after_id: int) -> list[ScoringBatch]:
    """The streaming query's micro-batches that read a raw row above ``after_id``, by commit."""
    with transaction(conn) as cursor:
        cursor.execute(_STREAM_BATCHES_AFTER, (after_id,))
        rows = cursor.fetchall()
    return [
        ScoringBatch(
            str(query_id),
            int(batch_id),
            None if first is None else int(first),
            None if last is None else int(last),
            int(predictions),
            at,
        )
        for query_id, batch_id, first, last, predictions, at in rows
    ]


def predictions_from(conn: Connection, model_version: str, first: date) -> list[DayPredictions]:
    """``model_version``'s analysis predictions per day from ``first`` on, oldest first."""
    with transaction(conn) as cursor:
        cursor.execute(_PREDICTIONS_FROM, (model_version, first))
        rows = cursor.fetchall()
    return [DayPredictions(day, int(n), int(max_id)) for day, n, max_id in rows]


def runs_after(conn: Connection, after_run_id: int) -> list[RunVerdicts]:
    """The monitoring runs stored after run ``after_run_id``, oldest first."""
    with transaction(conn) as cursor:
        cursor.execute(_RUNS_AFTER, (after_run_id,))
        rows = cursor.fetchall()
    return [
        RunVerdicts(
            int(run_id),
            str(version),
            str(status),
            finished,
            int(watermark),
            json.loads(verdicts) if verdicts else [],
            error,
        )
        for run_id, version, status, finished, watermark, verdicts, error in rows
    ]
