"""The poller's incremental runs against the real database: after a new day of predictions and
labels arriving for an earlier day, it recomputes those chunks only, and what it stores equals
a full recompute, figure by figure."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.monitoring import (
    StoredRun,
    get_label_cutoff,
    get_watermark,
    latest_run,
    stored_results,
)
from monitoring.pipeline.incremental import label_days_between
from monitoring.pipeline.poller import CONSUMER, PollerState, poll_once
from monitoring.pipeline.runner import run_for_model
from tests.monitoring.web.test_service import (
    ANALYSIS_DAYS,
    ANALYSIS_START,
    KNOWN_LABEL_DAYS,
    SUBSCRIBERS,
    TEST_SETTINGS,
    VERSION,
    insert_predictions,
    make_predictions,
    populate,
    stored_figures,
    table_counts,
)

_INSERT_PROCESSED = (
    "INSERT INTO Processed_Data (`Date`, `User`, M_Out_Call_Count, M_Out_Call_Time, "
    "M_In_Call_Count, M_In_Call_Time, M_Out_SMS_Count, M_In_SMS_Count, M_Data_Count, "
    "M_Data_Sum, Record_Count, Churn_Within_Horizon) "
    "VALUES (%s, %s, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0)"
)
NEW_DAY = ANALYSIS_START + timedelta(days=ANALYSIS_DAYS)
# The first analysis day whose label is not known yet after `populate`.
LABELLED_DAY = ANALYSIS_START + timedelta(days=KNOWN_LABEL_DAYS)


@pytest.fixture
def settings(db_settings: Settings) -> Settings:
    """A fresh database, monitored daily with small chunks allowed, reports after every run."""
    return db_settings.model_copy(update={**TEST_SETTINGS, "monitoring_report_interval": 0})


def _processed_reaches(settings: Settings, day: date) -> None:
    """A `Processed_Data` row on ``day``: the labels of the days 14 before it become known."""
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(_INSERT_PROCESSED, (day, "99998"))


def _latest(settings: Settings) -> StoredRun:
    with connection(settings) as conn:
        run = latest_run(conn, VERSION)
    assert run is not None
    return run


def _run_facts(run: StoredRun) -> tuple[object, ...]:
    return (
        run.status,
        run.chunking,
        run.reference_rows,
        run.analysis_rows,
        run.labelled_rows,
        run.chunks,
        run.alerts,
        run.warnings,
        run.verdicts,
    )


def _assert_same_figures(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert len(left) == len(right) > 0
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_an_incremental_poll_stores_what_a_full_recompute_stores(settings: Settings) -> None:
    populate(settings)
    state = PollerState()
    assert poll_once(settings, state=state) is True
    assert state.last is not None and state.last.mode == "full"
    assert len(state.last.recomputed) == ANALYSIS_DAYS
    full_first = state.last.run.result
    first_run_id = state.last.run_id

    # A new day is scored, and Processed_Data moves on a day: the labels of one more day count.
    insert_predictions(
        settings, VERSION, "analysis", make_predictions(np.random.default_rng(21), [NEW_DAY])
    )
    _processed_reaches(settings, LABELLED_DAY + timedelta(days=14))

    assert poll_once(settings, state=state) is True
    polled = state.last
    assert polled.mode == "incremental"
    assert polled.recomputed == (LABELLED_DAY.isoformat(), NEW_DAY.isoformat())
    assert polled.rows_read == 2 * SUBSCRIBERS
    incremental = stored_figures(settings)
    incremental_run = _latest(settings)
    assert incremental_run.trigger == "poller"
    assert incremental_run.chunks == ANALYSIS_DAYS + 1
    assert incremental_run.labelled_rows == (KNOWN_LABEL_DAYS + 1) * SUBSCRIBERS
    # Only the recomputed chunks' rows were written; the others keep the first run's.
    with connection(settings) as conn:
        writers = stored_results(conn, VERSION).groupby("chunk_key")["run_id"].unique()
    assert {key: list(ids) for key, ids in writers.items()} == {
        chunk.key: [polled.run_id if chunk.key in polled.recomputed else first_run_id]
        for chunk in polled.run.result.chunks
    }
    assert polled.run.result.chunks[0] == full_first.chunks[0]

    full = run_for_model(settings, VERSION, trigger="cli")

    _assert_same_figures(incremental, stored_figures(settings))
    assert _run_facts(incremental_run) == _run_facts(_latest(settings))
    assert polled.run.result.metric_rows() == full.run.result.metric_rows()
    assert polled.run.result.drift_rows() == full.run.result.drift_rows()
    assert sorted(polled.run.result.warnings, key=repr) == sorted(
        full.run.result.warnings, key=repr
    )


@pytest.mark.slow
def test_the_watermarks_advance_with_the_run_and_an_idle_poll_runs_nothing(
    settings: Settings,
) -> None:
    populate(settings)
    state = PollerState()
    assert poll_once(settings, state=state) is True
    counts = table_counts(settings)
    with connection(settings) as conn:
        cutoff = get_label_cutoff(conn, CONSUMER)
    assert cutoff == ANALYSIS_START + timedelta(days=KNOWN_LABEL_DAYS - 1)

    assert poll_once(settings, state=state) is False
    assert table_counts(settings) == counts

    # Only the labels move: the chunk of the newly labelled day is recomputed, nothing else.
    _processed_reaches(settings, LABELLED_DAY + timedelta(days=14))
    assert poll_once(settings, state=state) is True
    assert state.last is not None
    assert state.last.mode == "incremental"
    assert state.last.recomputed == (LABELLED_DAY.isoformat(),)
    with connection(settings) as conn:
        assert get_label_cutoff(conn, CONSUMER) == LABELLED_DAY
        assert get_watermark(conn, CONSUMER) == state.last.run.watermark_id
    assert table_counts(settings)["monitoring_runs"] == counts["monitoring_runs"] + 1
    assert table_counts(settings)["monitoring_results"] == counts["monitoring_results"]
    assert poll_once(settings, state=state) is False


@pytest.mark.slow
def test_a_new_state_or_a_changed_setting_recomputes_every_chunk(settings: Settings) -> None:
    populate(settings)
    state = PollerState()
    assert poll_once(settings, state=state) is True
    insert_predictions(
        settings, VERSION, "analysis", make_predictions(np.random.default_rng(22), [NEW_DAY])
    )

    weekly = settings.model_copy(update={"monitoring_chunk_period": "W"})
    assert poll_once(weekly, state=state) is True

    assert state.last is not None
    assert state.last.mode == "full"
    assert _latest(settings).chunking == "period=W"


def test_label_days_between_covers_the_dates_the_cutoff_passed() -> None:
    day = date(2024, 3, 10)
    assert label_days_between(day, day) is None
    assert label_days_between(day, day + timedelta(days=2)) == (
        day + timedelta(days=1),
        day + timedelta(days=2),
    )
    assert label_days_between(day + timedelta(days=2), day) == (
        day + timedelta(days=1),
        day + timedelta(days=2),
    )
    assert label_days_between(None, day) == (date.min, day)
    assert label_days_between(day, None) == (date.min, day)


@pytest.mark.slow
def test_after_a_full_run_with_other_chunks_the_poller_recomputes_every_chunk(
    settings: Settings,
) -> None:
    populate(settings)
    state = PollerState()
    assert poll_once(settings, state=state) is True
    weekly = settings.model_copy(update={"monitoring_chunk_period": "W"})
    run_for_model(weekly, VERSION, trigger="cli")  # stores weekly chunks in place of ours
    insert_predictions(
        settings, VERSION, "analysis", make_predictions(np.random.default_rng(23), [NEW_DAY])
    )

    assert poll_once(settings, state=state) is True

    assert state.last is not None and state.last.mode == "full"
    assert _latest(settings).chunking == "period=D"
    assert table_counts(settings)["monitoring_results"] == 3 * (ANALYSIS_DAYS + 1)
