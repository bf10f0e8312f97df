"""The reads that follow streamed days: raw days, ingest and scoring batches, monitoring runs."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from config.settings import Settings
from db.connection import connection, transaction
from db.stream_progress import (
    IngestBatch,
    RawDay,
    ingest_batches_of,
    raw_days_from,
    runs_after,
    scoring_batches_after,
)


def _execute(settings: Settings, sql: str, rows: list[tuple[Any, ...]]) -> None:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.executemany(sql, rows)


def test_raw_days_count_rows_and_bound_ids_per_day_from_the_first_day(
    db_settings: Settings,
) -> None:
    _execute(
        db_settings,
        "INSERT INTO DP_CDR_Data (id, DP_DATE, DP_MSISDN) VALUES (%s, %s, %s)",
        [
            (1, datetime(2024, 3, 31, 9), "a"),  # before the first day
            (2, datetime(2024, 4, 1, 0), "a"),
            (3, datetime(2024, 4, 1, 23, 59), "b"),
            (7, datetime(2024, 4, 2, 12), "a"),
        ],
    )

    with connection(db_settings) as conn:
        days = raw_days_from(conn, date(2024, 4, 1))

    assert days == [RawDay(date(2024, 4, 1), 2, 2, 3), RawDay(date(2024, 4, 2), 1, 7, 7)]


def test_ingest_and_scoring_batches_come_in_their_order(db_settings: Settings) -> None:
    _execute(
        db_settings,
        "INSERT INTO ingest_sources (source_id, kind, description, total_batches) "
        "VALUES (%s, 'stream', '', 2)",
        [("s1",), ("s2",)],
    )
    _execute(
        db_settings,
        "INSERT INTO ingest_batches (source_id, batch_no, row_count, committed_at) "
        "VALUES (%s, %s, %s, %s)",
        [
            ("s1", 2, 5, datetime(2026, 1, 1, 0, 0, 2)),
            ("s1", 1, 4, datetime(2026, 1, 1, 0, 0, 1)),
            ("s2", 1, 9, datetime(2026, 1, 1, 0, 0, 3)),
        ],
    )
    _execute(
        db_settings,
        "INSERT INTO stream_batches (query_id, batch_id, first_cdr_id, last_cdr_id, cdr_rows, "
        "subscriber_days, predictions, model_version, committed_at) "
        "VALUES (%s, %s, %s, %s, 1, 1, %s, 'v', %s)",
        [
            ("q", 1, 1, 10, 3, datetime(2026, 1, 1, 0, 0, 5)),
            ("q", 2, 11, 20, 4, datetime(2026, 1, 1, 0, 0, 6)),
        ],
    )

    with connection(db_settings) as conn:
        batches = ingest_batches_of(conn, "s1")
        scoring = scoring_batches_after(conn, 10)

    assert batches == [
        IngestBatch(1, 4, datetime(2026, 1, 1, 0, 0, 1)),
        IngestBatch(2, 5, datetime(2026, 1, 1, 0, 0, 2)),
    ]
    assert [(b.query_id, b.batch_id, b.first_id, b.last_id, b.predictions) for b in scoring] == [
        ("q", 2, 11, 20, 4)
    ]


def test_runs_after_read_the_verdicts_of_later_runs(db_settings: Settings) -> None:
    verdicts = [{"chunk": "2024-04-01", "verdict": "healthy", "reasons": []}]
    _execute(
        db_settings,
        "INSERT INTO monitoring_runs (run_id, model_version, run_trigger, status, started_at, "
        "finished_at, watermark_id, verdicts) VALUES (%s, 'v', 'poller', %s, %s, %s, %s, %s)",
        [
            (1, "succeeded", datetime(2026, 1, 1), datetime(2026, 1, 1), 10, None),
            (2, "failed", datetime(2026, 1, 1), datetime(2026, 1, 1), 20, None),
            (3, "succeeded", datetime(2026, 1, 1), datetime(2026, 1, 1), 30, json.dumps(verdicts)),
        ],
    )

    with connection(db_settings) as conn:
        runs = runs_after(conn, 1)

    assert [(r.run_id, r.status, r.watermark_id) for r in runs] == [
        (2, "failed", 20),
        (3, "succeeded", 30),
    ]
    assert runs[0].verdicts == []
    assert runs[1].verdicts == verdicts
