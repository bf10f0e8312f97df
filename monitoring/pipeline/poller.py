"""The poller: monitors the current model whenever `model_predictions` has rows it has not seen.

Each step compares the highest prediction id with the poller's watermark in
`monitoring_watermark`. When there are newer rows it runs `run_for_model` in-process; the run
advances the watermark in the transaction that stores its figures, so a poller stopped or cut
off mid-run monitors the same rows again rather than skipping them, and figures are upserts,
so doing so duplicates nothing. A database outage is waited out with exponential backoff,
capped by ``monitoring_retry_max_backoff``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from config.settings import Settings
from db.connection import connection
from db.errors import DatabaseError
from db.migrate import init_database
from db.monitoring import advance_watermark, get_watermark, max_prediction_id
from monitoring.errors import ModelNotFoundError, MonitoringError, RunInProgressError
from monitoring.pipeline.runner import run_for_model

log = logging.getLogger(__name__)

CONSUMER = "poller"
_INITIAL_BACKOFF = 1.0


def poll_once(settings: Settings, *, consumer: str = CONSUMER) -> bool:
    """Monitor the current model if `model_predictions` has rows newer than the watermark.

    Args:
        settings: The database and the ``monitoring_*`` settings.
        consumer: Whose watermark to read and advance.

    Returns:
        True when a run was made: it stored its figures, or could not monitor the data (no
        model, too few rows, ...; recorded as a failed run) and the watermark moved past
        these rows all the same, since they would fail the same way. False when there was
        nothing new, or another run held the lock (the rows are then seen at the next step).

    Raises:
        DatabaseUnavailable: The database cannot be reached or the connection was lost.
        DatabaseError: A statement failed.
    """
    with connection(settings) as conn:
        newest = max_prediction_id(conn)
        seen = get_watermark(conn, consumer)
    if newest <= seen:
        log.debug("no new predictions (watermark %d)", seen)
        return False
    log.info("new predictions (ids %d..%d): monitoring the current model", seen + 1, newest)
    try:
        completed = run_for_model(settings, None, trigger="poller", consumer=consumer)
    except RunInProgressError:
        log.info("another monitoring run is in progress; looking again at the next poll")
        return False
    except ModelNotFoundError as exc:
        log.warning("cannot monitor the new predictions: %s", exc)
        with connection(settings) as conn:
            advance_watermark(conn, consumer, newest)
        return True
    except MonitoringError as exc:
        log.warning("cannot monitor the new predictions: %s; waiting for newer ones", exc)
        return True
    log.info(
        "run %d of model %s stored: %d chunks, %d alerts; watermark %d",
        completed.run_id,
        completed.run.model_version,
        len(completed.run.result.chunks),
        completed.run.result.total_alerts,
        completed.run.watermark_id,
    )
    return True


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
                poll_once(settings)
            except DatabaseError as exc:
                backoff = _next_backoff(backoff, max_backoff)
                log.warning("database problem: %s; retrying in %.1f s", exc, backoff)
            else:
                if backoff is not None:
                    log.info("the database answers again; polling resumed")
                backoff = None
            stop.wait(interval if backoff is None else backoff)
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
