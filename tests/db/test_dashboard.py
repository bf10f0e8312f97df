"""The dashboard's reads: versions with runs, the reference span, where the stream begins and a
bounded sample of one feature's values."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.dashboard import (
    feature_values,
    first_streamed_day,
    latest_run_state,
    monitored_versions,
    reference_span,
)
from db.monitoring import RunRecord, record_failed_run
from tests.monitoring.web.test_service import (
    ANALYSIS_START,
    CATEGORICAL,
    CONTINUOUS,
    REFERENCE_DAYS,
    REFERENCE_START,
    VERSION,
    days,
    insert_predictions,
    make_predictions,
    register_model,
)

_INSERT_SOURCE = (
    "INSERT INTO ingest_sources (source_id, kind, description, total_batches, anchor_date) "
    "VALUES (%s, %s, 'test', 1, %s)"
)
_INSERT_CDR = "INSERT INTO DP_CDR_Data (DP_DATE, DP_MSISDN) VALUES (%s, '0001')"
_INSERT_BATCH = (
    "INSERT INTO stream_batches (query_id, batch_id, first_cdr_id, last_cdr_id, cdr_rows, "
    "subscriber_days, predictions) VALUES ('q', %s, %s, %s, 1, 1, 0)"
)


def _execute(settings: Settings, sql: str, params: tuple[object, ...]) -> int:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return int(cursor.lastrowid or 0)


def _failed_run(settings: Settings, version: str) -> int:
    now = datetime(2024, 3, 1, 12)
    with connection(settings) as conn:
        return record_failed_run(conn, RunRecord(version, "cli", now, now, 0), "broken")


def test_nothing_streamed_is_no_stream_start(db_settings: Settings) -> None:
    _execute(db_settings, _INSERT_SOURCE, ("generator", "generator", None))

    with connection(db_settings) as conn:
        assert first_streamed_day(conn) is None


def test_the_stream_begins_on_the_earlier_of_the_ingest_anchor_and_the_first_scored_record(
    db_settings: Settings,
) -> None:
    _execute(db_settings, _INSERT_CDR, (datetime(2024, 1, 5, 8),))  # history, never streamed
    streamed = _execute(db_settings, _INSERT_CDR, (datetime(2024, 4, 2, 9),))
    _execute(db_settings, _INSERT_CDR, (datetime(2024, 3, 30, 9),))  # later id, earlier day
    _execute(db_settings, _INSERT_BATCH, (0, streamed, streamed + 1))
    with connection(db_settings) as conn:
        from_batches = first_streamed_day(conn)

    _execute(db_settings, _INSERT_SOURCE, ("stream-1", "stream", datetime(2024, 4, 1)))
    with connection(db_settings) as conn:
        from_anchor = first_streamed_day(conn)

    assert from_batches == date(2024, 4, 2)
    assert from_anchor == date(2024, 4, 1)


def test_versions_with_runs_come_most_recent_first(db_settings: Settings) -> None:
    register_model(db_settings, "v-old", current=False)
    register_model(db_settings, "v-new")
    register_model(db_settings, "v-idle", current=False)
    first = _failed_run(db_settings, "v-old")
    _failed_run(db_settings, "v-new")
    last = _failed_run(db_settings, "v-old")

    with connection(db_settings) as conn:
        versions = monitored_versions(conn)
        state = latest_run_state(conn, "v-old")
        idle = latest_run_state(conn, "v-idle")

    assert versions == ["v-old", "v-new"]
    assert state is not None and state.run_id == last > first and state.status == "failed"
    assert idle is None


def test_reference_span_and_a_bounded_sample_of_one_feature(db_settings: Settings) -> None:
    rng = np.random.default_rng(5)
    register_model(db_settings)
    reference = make_predictions(rng, days(REFERENCE_START, REFERENCE_DAYS), subscribers=10)
    analysis = make_predictions(rng, days(ANALYSIS_START, 3), subscribers=10)
    insert_predictions(db_settings, VERSION, "reference", reference)
    insert_predictions(db_settings, VERSION, "analysis", analysis)
    day = datetime.combine(ANALYSIS_START + timedelta(days=1), datetime.min.time())
    feature = CONTINUOUS[4]

    with connection(db_settings) as conn:
        span = reference_span(conn, VERSION)
        missing = reference_span(conn, "no-such-version")
        one_day = feature_values(
            conn, VERSION, list(CONTINUOUS), list(CATEGORICAL), feature, day, day + timedelta(1)
        )
        two_days = feature_values(
            conn, VERSION, list(CONTINUOUS), list(CATEGORICAL), feature, day,
            day + timedelta(1), end_inclusive=True,
        )  # fmt: skip
        bounded = feature_values(
            conn, VERSION, list(CONTINUOUS), list(CATEGORICAL), CATEGORICAL[0], day,
            day + timedelta(1), limit=7,
        )  # fmt: skip
        with pytest.raises(ValueError, match="not a feature"):
            feature_values(conn, VERSION, list(CONTINUOUS), [], "usage_profile", day, day)

    assert span == (REFERENCE_START, REFERENCE_START + timedelta(days=REFERENCE_DAYS - 1))
    assert missing is None
    assert len(one_day.reference) == REFERENCE_DAYS * 10 and not one_day.truncated
    expected = sorted(f[feature] for f, d in zip(analysis.features, analysis.dates, strict=True)
                      if d == day.date())  # fmt: skip
    assert sorted(one_day.chunk) == pytest.approx(expected)
    assert len(two_days.chunk) == 20
    assert len(bounded.reference) == len(bounded.chunk) == 7 and bounded.truncated
    assert set(bounded.chunk) <= {"data", "mixed", "voice"}
