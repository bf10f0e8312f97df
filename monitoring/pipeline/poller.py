"""The poller: monitors the current model whenever its predictions or their labels change.

Each step is one cheap query (`db.monitoring.probe`): the highest prediction id, the latest
`Processed_Data` date (which sets which labels are known), the poller's watermarks in
`monitoring_watermark` and the current model. When there are newer predictions, or the label
cut-off moved, it runs in-process under the run lock (`monitoring.pipeline.incremental`):
with a `PollerState` kept between steps (as `poll_forever` does) it recomputes only the chunks
that changed, with the version's fitted monitor kept; without one, or when the version, its
reference or the settings changed, it recomputes every chunk. The run advances the watermarks
in the transaction that stores its figures, so a poller stopped or cut off mid-run monitors
the same rows again rather than skipping them, and figures are upserts, so doing so
duplicates nothing. A database outage is waited out with exponential backoff, capped by
``monitoring_retry_max_backoff``.

The report files (plots) are not part of a step: they are written in a background thread at
most every ``monitoring_report_interval`` seconds, from the latest run, and when the poller
stops.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from config.settings import Settings
from db.connection import Connection, connection
from db.errors import DatabaseError
from db.migrate import init_database
from db.monitoring import (
    PollProbe,
    acquire_run_lock,
    label_cutoff,
    probe,
    release_run_lock,
    run_lock_name,
)
from monitoring.compute.result import MonitoringRun
from monitoring.errors import InputError, ModelNotFoundError, MonitoringError
from monitoring.pipeline.incremental import MonitorState, PollRun, poll_run
from monitoring.pipeline.runner import read_timeline, report_folder, write_run_report
from monitoring.report.timeline import NO_TIMELINE, Timeline

log = logging.getLogger(__name__)

CONSUMER = "poller"
_INITIAL_BACKOFF = 1.0


class ReportWriter:
    """Writes the report of the latest run, at most every ``interval`` seconds, off the loop.

    A run's report replaces the one still waiting; one thread writes at a time. Used by one
    thread (the poller's) plus the writer thread it starts.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Write at most every ``interval`` seconds (0: after every run) by ``clock``."""
        self.interval = interval
        self._clock = clock
        self._pending: tuple[MonitoringRun, Path, int, Timeline] | None = None
        self._thread: threading.Thread | None = None
        self._last_started: float | None = None

    def submit(
        self, run: MonitoringRun, folder: Path, run_id: int, timeline: Timeline = NO_TIMELINE
    ) -> None:
        """Make ``run`` the one to report next, then write it if it is time."""
        self._pending = (run, folder, run_id, timeline)
        self.maybe_write()

    def maybe_write(self) -> None:
        """Start writing the waiting report if the interval has passed and no write runs."""
        if self._pending is None or (self._thread is not None and self._thread.is_alive()):
            return
        now = self._clock()
        if self._last_started is not None and now - self._last_started < self.interval:
            return
        pending, self._pending, self._last_started = self._pending, None, now
        self._thread = threading.Thread(
            target=_write_report, args=pending, name="monitoring-report", daemon=True
        )
        self._thread.start()

    def flush(self) -> None:
        """Wait for the write in progress, then write the waiting report here."""
        if self._thread is not None:
            self._thread.join()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            _write_report(*pending)


def _write_report(run: MonitoringRun, folder: Path, run_id: int, timeline: Timeline) -> None:
    written = write_run_report(run, folder, run_id, timeline)
    if written.error is None:
        log.debug("report of run %d written to %s", run_id, folder)


@dataclass
class PollerState:
    """What a poller keeps between its steps.

    Attributes:
        monitor: The current version's fitted monitor and last result; None before the first
            successful run.
        reports: The report writer; None writes each run's report in the step (a one-off
            `poll_once`).
        last: The latest stored run, for callers that time or inspect it.
    """

    monitor: MonitorState | None = None
    reports: ReportWriter | None = None
    last: PollRun | None = field(default=None, repr=False)


def poll_once(
    settings: Settings, *, consumer: str = CONSUMER, state: PollerState | None = None
) -> bool:
    """Monitor the current model if its predictions or their known labels changed.

    Args:
        settings: The database and the ``monitoring_*`` settings.
        consumer: Whose watermarks to read and advance.
        state: What the previous steps kept; with it a step recomputes only the chunks that
            changed. None for a one-off step, which recomputes every chunk.

    Returns:
        True when a run was made: it stored its figures, or could not monitor the data (no
        model, too few rows, ...; recorded as a failed run) and the watermarks moved past
        these rows all the same, since they would fail the same way. False when there was
        nothing new, or another run held the lock (the rows are then seen at the next step).

    Raises:
        DatabaseUnavailable: The database cannot be reached or the connection was lost.
        DatabaseError: A statement failed.
    """
    state = state if state is not None else PollerState()
    with connection(settings) as conn:
        seen = probe(conn, consumer)
        if _idle(seen, state, settings):
            log.debug("nothing new (watermark %d)", seen.watermark_id)
            return False
        lock = run_lock_name(settings.db_name)
        if not acquire_run_lock(conn, lock, 0.0):
            log.info("another monitoring run is in progress; looking again at the next poll")
            return False
        try:
            return _run_locked(conn, settings, consumer, state)
        finally:
            with suppress(DatabaseError):  # a lost session has released the lock already
                release_run_lock(conn, lock)


def _idle(seen: PollProbe, state: PollerState, settings: Settings) -> bool:
    cutoff = label_cutoff(seen.last_processed, settings.monitoring_label_delay_days)
    if seen.newest_id > seen.watermark_id or cutoff != seen.label_cutoff:
        return False
    monitor = state.monitor
    # A model made current without new predictions (an older version brought back).
    return monitor is None or monitor.result is None or monitor.version == seen.current_version


def _run_locked(conn: Connection, settings: Settings, consumer: str, state: PollerState) -> bool:
    seen = probe(conn, consumer)  # again: another run may have moved on while we waited
    if _idle(seen, state, settings):
        return False
    log.info(
        "new predictions (ids %d..%d) or labels: monitoring the current model",
        seen.watermark_id + 1,
        seen.newest_id,
    )
    try:
        polled, state.monitor = poll_run(conn, settings, state.monitor, seen, consumer)
    except ModelNotFoundError as exc:
        state.monitor = None
        log.warning("cannot monitor the new predictions: %s", exc)
        return True
    except MonitoringError as exc:
        log.warning("cannot monitor the new predictions: %s; waiting for newer ones", exc)
        return True
    if polled is None:
        log.info("no chunk of the current model changed; watermark %d", seen.newest_id)
        return False
    state.last = polled
    _report(settings, state, polled)
    result = polled.run.result
    log.info(
        "run %d of model %s stored (%s: %d of %d chunks recomputed, %d rows read), %d alerts; "
        "watermark %d; %s",
        polled.run_id,
        polled.run.model_version,
        polled.mode,
        len(polled.recomputed),
        len(result.chunks),
        polled.rows_read,
        result.total_alerts,
        polled.run.watermark_id,
        ", ".join(f"{stage} {value:.2f} s" for stage, value in polled.seconds.items()),
    )
    return True


def _report(settings: Settings, state: PollerState, polled: PollRun) -> None:
    try:
        folder = report_folder(settings, polled.run.model_version)
    except InputError as exc:
        log.warning("run %d: no report: %s", polled.run_id, exc)
        return
    # The reference and the stream's start, marked on the plots as a one-off run marks them.
    timeline = NO_TIMELINE
    try:
        with connection(settings) as conn:
            timeline = read_timeline(conn, polled.run.model_version)
    except DatabaseError as exc:
        log.warning("run %d: the report's plots go unmarked: %s", polled.run_id, exc)
    if state.reports is None:
        write_run_report(polled.run, folder, polled.run_id, timeline)
    else:
        state.reports.submit(polled.run, folder, polled.run_id, timeline)


def poll_forever(
    settings: Settings,
    stop_event: threading.Event | None = None,
    *,
    interval: float | None = None,
) -> None:
    """Poll until ``stop_event`` is set (or, without one, until SIGTERM or SIGINT).

    The schema is brought up to date first. Database errors are logged and retried after
    1 s, 2 s, 4 s, ... up to ``monitoring_retry_max_backoff``; data that cannot be monitored
    is recorded as a failed run (see `poll_once`). Anything else is a bug and stops the
    poller with its traceback, for its supervisor to restart it. A run in progress when the
    stop comes is finished (and stored) before returning.

    Args:
        settings: The database and the ``monitoring_*`` settings.
        stop_event: Set it to stop; None to stop on SIGTERM / SIGINT (main thread only).
        interval: Seconds between polls; default ``monitoring_poll_interval``.
    """
    interval = settings.monitoring_poll_interval if interval is None else interval
    if interval <= 0:
        raise ValueError(f"the poll interval must be positive, not {interval}")
    stop = stop_event or threading.Event()
    state = PollerState(reports=ReportWriter(settings.monitoring_report_interval))
    max_backoff = settings.monitoring_retry_max_backoff
    backoff: float | None = None
    schema_ready = False
    with _stop_on_signals(stop, enabled=stop_event is None):
        log.info("polling model_predictions every %.1f s", interval)
        while not stop.is_set():
            try:
                if not schema_ready:
                    init_database(settings)
                    schema_ready = True
                poll_once(settings, state=state)
            except DatabaseError as exc:
                backoff = _next_backoff(backoff, max_backoff)
                log.warning("database problem: %s; retrying in %.1f s", exc, backoff)
            else:
                if backoff is not None:
                    log.info("the database answers again; polling resumed")
                backoff = None
            if state.reports is not None:
                state.reports.maybe_write()
            stop.wait(interval if backoff is None else backoff)
        if state.reports is not None:
            state.reports.flush()
    log.info("poller stopped")


def _next_backoff(current: float | None, maximum: float) -> float:
    if current is None:
        return min(_INITIAL_BACKOFF, maximum)
    return min(current * 2, maximum)


@contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        stop.set()

    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        previous[stop_signal] = signal.signal(stop_signal, handle)
    try:
        yield
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)
