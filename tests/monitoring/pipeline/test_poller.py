"""The poller against the real database: one run per new data, nothing when nothing is new,
past data it cannot monitor, through a database outage (a TCP proxy cuts the connection) and
out on a stop event or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.monitoring import get_watermark, max_prediction_id
from monitoring.compute.result import MonitoringRun
from monitoring.pipeline.poller import CONSUMER, ReportWriter, poll_forever, poll_once
from monitoring.pipeline.runner import ReportFiles
from monitoring.report.timeline import Timeline
from tests.monitoring.web.test_service import (
    ANALYSIS_DAYS,
    ANALYSIS_START,
    REFERENCE_DAYS,
    REFERENCE_START,
    TEST_SETTINGS,
    VERSION,
    days,
    insert_predictions,
    make_predictions,
    populate,
    register_model,
    stored_figures,
    table_counts,
)
from tests.tcp_proxy import TcpProxy

WAIT_SECONDS = 90.0
FAST_POLLING = {"monitoring_poll_interval": 0.1, "monitoring_retry_max_backoff": 0.2}


@pytest.fixture
def settings(db_settings: Settings) -> Settings:
    """A fresh database of this test's own, monitored daily with small chunks allowed."""
    return db_settings.model_copy(update={**TEST_SETTINGS, **FAST_POLLING})


class _Messages(logging.Handler):
    """Collects the poller's log messages (the tests run without pytest's logging plugin)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def poller_log() -> Iterator[_Messages]:
    logger = logging.getLogger("monitoring.pipeline.poller")
    handler, level = _Messages(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _runs(settings: Settings) -> list[tuple[str, str]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT run_trigger, status FROM monitoring_runs ORDER BY run_id")
        return [(str(trigger), str(status)) for trigger, status in cursor.fetchall()]


def _watermark(settings: Settings) -> int:
    with connection(settings) as conn:
        return get_watermark(conn, CONSUMER)


def _newest(settings: Settings) -> int:
    with connection(settings) as conn:
        return max_prediction_id(conn)


def _score_another_day(settings: Settings, offset: int, seed: int) -> None:
    """Analysis predictions of one more day, as `python -m spark_jobs score` would add."""
    day = ANALYSIS_START + timedelta(days=offset)
    predictions = make_predictions(np.random.default_rng(seed), [day])
    insert_predictions(settings, VERSION, "analysis", predictions)


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS} s")
        time.sleep(0.05)


def test_poll_once_does_nothing_without_predictions(settings: Settings) -> None:
    assert poll_once(settings) is False
    assert _runs(settings) == []
    assert _watermark(settings) == 0


@pytest.mark.slow
def test_poll_once_runs_once_per_new_data_and_advances_the_watermark(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    timelines: list[Timeline] = []

    def recording(run: MonitoringRun, folder: Path, run_id: int, timeline: Timeline) -> ReportFiles:
        timelines.append(timeline)  # the plots themselves: tests/monitoring/report
        return ReportFiles(folder, {})

    monkeypatch.setattr("monitoring.pipeline.poller.write_run_report", recording)
    populate(settings)

    assert poll_once(settings) is True
    # Its report marks the reference on the plots, as a one-off run's does.
    assert [(t.reference_start, t.reference_end, t.stream_start) for t in timelines] == [
        (REFERENCE_START, REFERENCE_START + timedelta(days=REFERENCE_DAYS - 1), None)
    ]
    assert _watermark(settings) == _newest(settings)
    assert _runs(settings) == [("poller", "succeeded")]
    counts = table_counts(settings)
    assert counts["monitoring_results"] == 3 * ANALYSIS_DAYS
    figures = stored_figures(settings)

    assert poll_once(settings) is False  # nothing new: no run
    assert table_counts(settings) == counts
    pd.testing.assert_frame_equal(stored_figures(settings), figures)

    _score_another_day(settings, ANALYSIS_DAYS, seed=11)
    assert poll_once(settings) is True
    assert _watermark(settings) == _newest(settings)
    assert _runs(settings) == [("poller", "succeeded")] * 2
    # One more chunk; the figures of the chunks already stored were updated, not duplicated.
    assert table_counts(settings)["monitoring_results"] == 3 * (ANALYSIS_DAYS + 1)

    assert poll_once(settings) is False
    assert len(_runs(settings)) == 2


def test_poll_once_moves_past_data_it_cannot_monitor(settings: Settings) -> None:
    register_model(settings)
    reference = make_predictions(np.random.default_rng(1), days(REFERENCE_START, REFERENCE_DAYS))
    insert_predictions(settings, VERSION, "reference", reference)

    assert poll_once(settings) is True  # no analysis predictions yet: a failed run

    assert _runs(settings) == [("poller", "failed")]
    assert _watermark(settings) == _newest(settings)
    assert poll_once(settings) is False


def test_poll_once_leaves_the_watermark_while_another_run_holds_the_lock(
    settings: Settings,
) -> None:
    from db.monitoring import acquire_run_lock, release_run_lock, run_lock_name

    register_model(settings)
    insert_predictions(
        settings,
        VERSION,
        "analysis",
        make_predictions(np.random.default_rng(2), days(ANALYSIS_START, 1), subscribers=5),
    )
    lock = run_lock_name(settings.db_name)
    with connection(settings) as conn:
        assert acquire_run_lock(conn, lock, 0)
        try:
            assert poll_once(settings) is False
        finally:
            release_run_lock(conn, lock)

    assert _watermark(settings) == 0
    assert _runs(settings) == []


@pytest.mark.slow
def test_poll_forever_survives_a_database_outage_and_resumes(
    settings: Settings, poller_log: _Messages
) -> None:
    populate(settings)
    with TcpProxy(settings.db_host, settings.db_port, max_seconds=300) as proxy:
        proxied = settings.model_copy(
            update={"db_host": "127.0.0.1", "db_port": proxy.port, "db_connect_timeout": 2}
        )
        stop = threading.Event()
        poller = threading.Thread(target=poll_forever, args=(proxied, stop), daemon=True)
        poller.start()
        try:
            _wait(lambda: _watermark(settings) == _newest(settings), "first run")
            first_runs = len(_runs(settings))

            proxy.outage()
            _score_another_day(settings, ANALYSIS_DAYS, seed=12)
            _wait(lambda: any("retrying in" in m for m in poller_log.messages), "retry")
            time.sleep(0.5)  # several failed polls, with backoff
            assert _watermark(settings) < _newest(settings)
            proxy.restore()

            _wait(lambda: _watermark(settings) == _newest(settings), "run after the outage")
        finally:
            stop.set()
            poller.join(timeout=WAIT_SECONDS)
        assert not poller.is_alive()

    assert first_runs == 1
    assert _runs(settings) == [("poller", "succeeded")] * 2
    assert table_counts(settings)["monitoring_results"] == 3 * (ANALYSIS_DAYS + 1)
    assert any("the database answers again" in m for m in poller_log.messages)
    assert poller_log.messages[-1] == "poller stopped"


def test_poll_forever_stops_on_sigterm_and_restores_the_handler(settings: Settings) -> None:
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        poll_forever(settings)  # main thread, no stop event: stops on SIGTERM
    finally:
        timer.cancel()

    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGTERM) == before


def test_poll_forever_refuses_a_non_positive_interval(settings: Settings) -> None:
    with pytest.raises(ValueError, match="interval"):
        poll_forever(settings, threading.Event(), interval=0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_report_writer_writes_the_latest_run_at_most_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []

    def recording(run: MonitoringRun, folder: Path, run_id: int, timeline: Timeline) -> ReportFiles:
        written.append(run_id)
        return ReportFiles(folder, {})

    monkeypatch.setattr("monitoring.pipeline.poller.write_run_report", recording)
    clock = _Clock()
    writer = ReportWriter(60.0, clock)
    run = cast(MonitoringRun, object())

    writer.submit(run, tmp_path, 1)  # the first is written at once
    writer.flush()
    writer.submit(run, tmp_path, 2)
    writer.submit(run, tmp_path, 3)  # replaces 2, which is never written
    clock.now += 30
    writer.maybe_write()
    assert written == [1]
    clock.now += 31
    writer.maybe_write()
    writer.flush()
    assert written == [1, 3]
    writer.submit(run, tmp_path, 4)
    writer.flush()  # on stop: written whatever the interval
    assert written == [1, 3, 4]
