"""Background streams of simulated CDR batches into `DP_CDR_Data`.

A :class:`StreamManager` (one per app) owns at most one running :class:`StreamRunner`.
The runner writes each batch in one transaction together with its (stream id, batch
number) row in `ingest_batches`, so a batch retried after a lost connection is never
inserted twice; an outage is retried with exponential backoff and shown in the status.

- **One writer per stream.** The service holds the stream's lease in `stream_leases`; every
  batch's transaction checks and renews it, and so does the wait between batches. A second
  service asking for the same stream gets a conflict; a lease left to expire (its service
  crashed) is taken over, and its old writer stops at its next batch.
- **No hang.** The stream's connections bound every statement (``STREAM_STATEMENT_TIMEOUT``)
  and use the pure client, whose socket waits release the GIL, so a hung server makes the
  stream `retrying` and leaves the service's views answering.
- **Bulk loads.** Each batch goes in with LOAD DATA LOCAL INFILE from a CSV file in a folder
  private to the service (in RAM where /dev/shm exists), removed after every batch; the
  connection may read local files from that folder only. A server that refuses local files
  (``local_infile=OFF``) gets multi-row INSERTs instead; both store the same rows.
- **No driver text.** ``last_error`` is a stable code and a plain message; the log has the rest.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from config.settings import Settings
from db.cdr import frame_to_rows
from db.connection import Connection, close_quietly, connect
from db.errors import DatabaseError, QueryError, is_transient
from db.history import latest_simulated_date
from db.ingest_log import (
    LeaseHeld,
    LeaseLost,
    Source,
    SourceState,
    acquire_lease,
    committed_batches,
    end_leased_source,
    load_batch,
    register_source,
    release_lease,
    renew_lease,
    set_source_state,
    write_batch,
)
from ingest.scenario import Scenario
from ingest.simulator import BatchClock, ClockMode, StreamBase, build_batch, simulated_anchor
from ingest.sources import stream_base

log = logging.getLogger(__name__)

# The server refuses LOAD DATA LOCAL INFILE: MariaDB/MySQL with local_infile=OFF, MySQL 8.
_LOCAL_INFILE_REFUSED = frozenset({1148, 3948})

StreamState = Literal["running", "retrying", "stopping", "completed", "stopped", "failed"]
_FINAL_STATES = frozenset({"completed", "stopped", "failed"})


@dataclass(frozen=True)
class StreamErrorInfo:
    """What went wrong with a stream, for clients: a stable code and a plain message.

    The driver's own text (which names the server and user) goes to the log only.
    """

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class StreamError(Exception):
    """A stream cannot be started or stopped; the message is safe to show to a client."""


class StreamConflict(StreamError):
    """The request conflicts with the current state (a stream runs, none runs, no history)."""


@dataclass(frozen=True)
class StreamSpec:
    """What a client asked for, already validated."""

    batch_size: int
    num_batches: int
    interval: float
    seed: int
    clock: ClockMode
    scenario: Scenario
    stream_id: str


@dataclass
class StreamProgress:
    """Mutable progress of one stream, read by the status endpoint under the runner's lock."""

    state: StreamState = "running"
    batches_done: int = 0
    batches_skipped: int = 0
    rows_done: int = 0
    insert_seconds: float = 0.0
    retries: int = 0
    current_batch: int | None = None
    last_error: StreamErrorInfo | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=datetime.now)
    finished_at: datetime | None = None


class StreamMetrics:
    """Prometheus instruments of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rows = Counter("ingest_rows", "CDR rows inserted by streams", registry=self.registry)
        self.batches = Counter(
            "ingest_batches", "batches committed by streams", registry=self.registry
        )
        self.errors = Counter(
            "ingest_errors", "failed batch insert attempts", ["kind"], registry=self.registry
        )
        self.insert_latency = Histogram(
            "ingest_batch_insert_seconds",
            "time to insert and commit one batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.running = Gauge(
            "ingest_stream_running", "1 while a stream runs", registry=self.registry
        )


ConnectionFactory = Callable[[], Connection]


class StreamRunner:
    """Writes the batches of one stream from a background thread."""

    def __init__(
        self,
        spec: StreamSpec,
        base: StreamBase,
        clock: BatchClock,
        settings: Settings,
        metrics: StreamMetrics,
        connect_db: ConnectionFactory,
        already_done: dict[int, int] | None = None,
        owner: str | None = None,
        load_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.owner = owner
        self._load_dir = load_dir
        self._base = base
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self._connect = connect_db
        self._done = dict(already_done or {})
        self._stop = threading.Event()
        self._end_recorded = threading.Event()
        self._lock = threading.Lock()
        self.progress = StreamProgress()
        self._thread = threading.Thread(
            target=self._run, name=f"stream-{spec.stream_id}", daemon=True
        )

    def start(self) -> None:
        self._metrics.running.set(1)
        self._thread.start()

    def request_stop(self) -> None:
        """Stop after the batch being written (or retried) now."""
        with self._lock:
            if self.progress.state not in _FINAL_STATES:
                self.progress.state = "stopping"
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; return whether it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.progress.state in _FINAL_STATES

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the stream's progress."""
        with self._lock:
            p = self.progress
            elapsed = max((time.monotonic() - p.started), 1e-9)
            return {
                "stream_id": self.spec.stream_id,
                "state": p.state,
                "clock": self.spec.clock,
                "batch_size": self.spec.batch_size,
                "batches_total": self.spec.num_batches,
                "batches_done": p.batches_done,
                "batches_skipped": p.batches_skipped,
                "rows_done": p.rows_done,
                "rows_per_second": round(p.rows_done / elapsed, 1),
                "insert_rows_per_second": (
                    round(p.rows_done / p.insert_seconds, 1) if p.insert_seconds else None
                ),
                "current_batch": p.current_batch,
                "retries": p.retries,
                "last_error": p.last_error.to_json() if p.last_error else None,
                "started_at": p.started_at.isoformat(timespec="seconds"),
                "finished_at": p.finished_at.isoformat(timespec="seconds")
                if p.finished_at
                else None,
            }

    def _run(self) -> None:
        conn: Connection | None = None
        final: SourceState = "completed"
        try:
            for batch_index in range(self.spec.num_batches):
                if self._stop.is_set():
                    final = "stopped"
                    break
                if batch_index in self._done:
                    with self._lock:
                        self.progress.batches_skipped += 1
                    continue
                with self._lock:
                    self.progress.current_batch = batch_index
                frame = build_batch(
                    self._base,
                    batch_index,
                    self.spec.batch_size,
                    self.spec.seed,
                    self._clock,
                    datetime.now(),
                    self.spec.scenario,
                )
                conn, written = self._write_with_retry(conn, batch_index, frame)
                if not written:
                    final = "stopped" if self._stop.is_set() else "failed"
                    break
                if batch_index < self.spec.num_batches - 1:
                    conn, stopped = self._pause(conn, self.spec.interval)
                    if stopped:
                        final = "stopped"
                        break
        except LeaseLost as exc:
            log.error("stream %s: %s; stopping", self.spec.stream_id, exc)
            final = "failed"
            with self._lock:
                self.progress.last_error = describe_error(exc)
        except Exception as exc:  # the thread's edge: record, never die silently
            log.exception("stream %s failed", self.spec.stream_id)
            final = "failed"
            with self._lock:
                self.progress.last_error = describe_error(exc)
        finally:
            self._finish(conn, final)

    def _pause(self, conn: Connection | None, seconds: float) -> tuple[Connection | None, bool]:
        """Wait ``seconds`` between batches, keeping the lease; return whether to stop.

        Raises:
            LeaseLost: another service took the stream over meanwhile.
        """
        deadline = time.monotonic() + seconds
        renew_every = self._settings.stream_lease_seconds / 3
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return conn, False
            if self._stop.wait(min(left, renew_every)):
                return conn, True
            if self.owner is None or time.monotonic() >= deadline:
                continue
            try:
                conn = conn or self._connect()
                renew_lease(
                    conn, self.spec.stream_id, self.owner, self._settings.stream_lease_seconds
                )
            except LeaseLost:
                raise
            except DatabaseError as exc:
                # The next batch retries through the outage; a lease that lapsed meanwhile
                # shows up there as LeaseLost.
                log.warning("stream %s: could not renew its lease: %s", self.spec.stream_id, exc)
                if conn is not None:
                    close_quietly(conn)
                    conn = None

    def _write(self, conn: Connection, batch_index: int, frame: pd.DataFrame) -> bool:
        """Write one batch with its log row; False if it was committed before."""
        lease = None if self.owner is None else (self.owner, self._settings.stream_lease_seconds)
        if self._load_dir is not None:
            try:
                return load_batch(
                    conn, self.spec.stream_id, batch_index, frame, self._load_dir, lease=lease
                )
            except QueryError as exc:
                if exc.errno not in _LOCAL_INFILE_REFUSED:
                    raise
                log.warning(
                    "stream %s: the server refuses LOAD DATA LOCAL INFILE (%s); "
                    "writing with INSERTs",
                    self.spec.stream_id,
                    exc,
                )
                self._load_dir = None
        rows = frame_to_rows(frame)
        return write_batch(
            conn,
            self.spec.stream_id,
            batch_index,
            rows,
            self._settings.insert_chunk_rows,
            lease=lease,
        )

    def _write_with_retry(
        self, conn: Connection | None, batch_index: int, frame: pd.DataFrame
    ) -> tuple[Connection | None, bool]:
        """Write one batch, retrying through outages; return the connection and success."""
        backoff = self._settings.stream_retry_initial_backoff
        deadline = time.monotonic() + self._settings.stream_retry_max_seconds
        failed_before = False
        while True:
            try:
                if conn is None:
                    conn = self._connect()
                started = time.perf_counter()
                inserted = self._write(conn, batch_index, frame)
                seconds = time.perf_counter() - started
            except LeaseLost:
                raise
            except DatabaseError as exc:
                failed_before = True
                transient = is_transient(exc)
                self._metrics.errors.labels("outage" if transient else "error").inc()
                with self._lock:
                    self.progress.last_error = describe_error(exc)
                    self.progress.retries += int(transient)
                    if transient and self.progress.state == "running":
                        self.progress.state = "retrying"
                if conn is not None:
                    close_quietly(conn)
                    conn = None
                if not transient or time.monotonic() + backoff > deadline:
                    log.error(
                        "stream %s: batch %s failed: %s", self.spec.stream_id, batch_index, exc
                    )
                    return None, False
                log.warning(
                    "stream %s: batch %s: %s; retrying in %.1f s",
                    self.spec.stream_id,
                    batch_index,
                    exc,
                    backoff,
                )
                if self._stop.wait(backoff):
                    return None, False
                backoff = min(backoff * 2, self._settings.stream_retry_max_backoff)
                continue
            # Found committed after our own failed attempt: that attempt's commit went
            # through and only its acknowledgement was lost, so these rows are ours.
            ours = inserted or failed_before
            with self._lock:
                if self.progress.state == "retrying":
                    self.progress.state = "running"
                self.progress.batches_done += 1
                if ours:
                    self.progress.rows_done += len(frame)
                else:
                    self.progress.batches_skipped += 1
                if inserted:
                    self.progress.insert_seconds += seconds
            if ours:
                self._metrics.rows.inc(len(frame))
                self._metrics.batches.inc()
            if inserted:
                self._metrics.insert_latency.observe(seconds)
            return conn, True

    def _finish(self, conn: Connection | None, final: SourceState) -> None:
        with self._lock:
            self.progress.state = final
            self.progress.current_batch = None
            self.progress.finished_at = datetime.now()
        self._metrics.running.set(0)
        log.info("stream %s %s", self.spec.stream_id, final)
        # The outage that failed a stream may still be on: keep trying to record its end
        # for a while (the manager records it too, at the next start, if we give up).
        backoff = self._settings.stream_retry_initial_backoff
        deadline = time.monotonic() + max(self._settings.stream_retry_max_seconds, 60.0)
        while True:
            try:
                conn = conn or self._connect()
                self.record_end(conn)
                break
            except DatabaseError as exc:
                if conn is not None:
                    close_quietly(conn)
                    conn = None
                if not is_transient(exc) or time.monotonic() + backoff > deadline:
                    log.warning("stream %s: could not record its end: %s", self.spec.stream_id, exc)
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, self._settings.stream_retry_max_backoff)
        if conn is not None:
            close_quietly(conn)

    @property
    def end_recorded(self) -> bool:
        return self._end_recorded.is_set()

    def record_end(self, conn: Connection) -> None:
        """Write the stream's final state (and its error, if it failed) to `ingest_sources`."""
        with self._lock:
            state = self.progress.state
            failure = self.progress.last_error if state == "failed" else None
        if state not in _FINAL_STATES:
            raise StreamError(f"stream {self.spec.stream_id} has not ended")
        error = f"{failure.code}: {failure.message}" if failure else None
        if self.owner is None:
            set_source_state(conn, self.spec.stream_id, state, self.spec.num_batches, error)  # type: ignore[arg-type]
        elif not end_leased_source(
            conn,
            self.spec.stream_id,
            self.owner,
            state,  # type: ignore[arg-type]
            self.spec.num_batches,
            error,
        ):
            log.info("stream %s: taken over by another service", self.spec.stream_id)
        self._end_recorded.set()


class StreamManager:
    """Starts, stops and reports the app's one stream.

    Its connections bound every statement (``STREAM_STATEMENT_TIMEOUT``) and use the pure
    client, whose waits release the GIL: a hung server then makes the stream retry, and never
    freezes the service's other threads (the status, health and metrics views). They may
    load local files from :attr:`load_dir` only, a folder of the manager's own (removed with
    the manager) where each batch's CSV file lives while it is loaded.

    Args:
        settings: The settings.
        connect_db: Opens the stream's connections; by default bounded ones, allowed to load
            files from :attr:`load_dir`. One given here must allow that too, or pass
            ``bulk_load=False``.
        owner: This service's name on the streams' leases.
        bulk_load: Write batches with LOAD DATA LOCAL INFILE rather than INSERTs.
    """

    def __init__(
        self,
        settings: Settings,
        connect_db: ConnectionFactory | None = None,
        owner: str | None = None,
        *,
        bulk_load: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = StreamMetrics()
        self.owner = owner or secrets.token_hex(8)
        self.load_dir = _private_folder() if bulk_load else None
        if self.load_dir is not None:
            weakref.finalize(self, shutil.rmtree, self.load_dir, ignore_errors=True)
        infile: dict[str, Any] = (
            {} if self.load_dir is None else {"allow_local_infile_in_path": str(self.load_dir)}
        )
        self._connect = connect_db or (
            lambda: connect(settings, statement_timeout=settings.stream_statement_timeout, **infile)
        )
        self._lock = threading.Lock()
        self._runner: StreamRunner | None = None
        self._starting = False

    def start(
        self,
        *,
        batch_size: int,
        num_batches: int,
        interval: float,
        seed: int | None,
        clock: ClockMode,
        scenario: Scenario,
        stream_id: str | None,
    ) -> StreamRunner:
        """Start a stream, or resume ``stream_id`` from its first uncommitted batch.

        Raises:
            StreamConflict: a stream runs already (here or, for ``stream_id``, in another
                service), or there is no history to sample.
            DatabaseError: the database cannot be read.
        """
        with self._lock:
            self._check_idle()
            previous = self._runner
            self._starting = True
        try:
            stream_id = stream_id or f"s-{datetime.now():%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
            seed = seed if seed is not None else secrets.randbelow(2**31)
            spec = StreamSpec(batch_size, num_batches, interval, seed, clock, scenario, stream_id)
            conn = self._connect()
            try:
                if previous is not None and not previous.end_recorded:
                    previous.record_end(conn)
                runner = self._prepare(conn, spec)
            finally:
                close_quietly(conn)
            with self._lock:
                self._runner = runner
                runner.start()
            return runner
        finally:
            with self._lock:
                self._starting = False

    def _check_idle(self) -> None:
        if self._starting:
            raise StreamConflict("a stream is starting; wait until it runs")
        if self._runner is not None and not self._runner.finished:
            raise StreamConflict(
                f"stream {self._runner.spec.stream_id} is running; "
                "stop it (POST /stop_stream) or wait until it ends"
            )

    def _prepare(self, conn: Connection, spec: StreamSpec) -> StreamRunner:
        latest = latest_simulated_date(conn)
        if latest is None:
            raise StreamConflict("DP_CDR_Data is empty: seed it first (python -m ingest seed)")
        try:
            acquire_lease(conn, spec.stream_id, self.owner, self.settings.stream_lease_seconds)
        except LeaseHeld as exc:
            raise StreamConflict(
                f"stream {spec.stream_id} is being written by another ingest service; "
                "stop it there or wait until it ends"
            ) from exc
        try:
            return self._resume(conn, spec, latest)
        except BaseException:
            with suppress(Exception):
                release_lease(conn, spec.stream_id, self.owner)
            raise

    def _resume(self, conn: Connection, spec: StreamSpec, latest: datetime) -> StreamRunner:
        params = {
            # The history a stream samples from ends here, also when it is resumed after
            # its own batches were written.
            "base_until": latest.isoformat(),
            "batch_size": spec.batch_size,
            "num_batches": spec.num_batches,
            "interval": spec.interval,
            "seed": spec.seed,
            "clock": spec.clock,
            "scenario": spec.scenario.model_dump(exclude_none=True),
        }
        stored = register_source(
            conn,
            Source(
                source_id=spec.stream_id,
                kind="stream",
                description=f"stream of {spec.num_batches} x {spec.batch_size} rows",
                params=params,
                total_batches=spec.num_batches,
                anchor_date=simulated_anchor(latest) if spec.clock == "simulated" else None,
            ),
        )
        if stored.kind != "stream":
            raise StreamConflict(f"{spec.stream_id} names a {stored.kind} load, not a stream")
        # A resumed stream keeps its original size, seed, clock and scenario, so its
        # remaining batches are the ones it would have written; only the pace may change.
        original = stored.params
        spec = StreamSpec(
            batch_size=int(original["batch_size"]),
            num_batches=int(original["num_batches"]),
            interval=spec.interval,
            seed=int(original["seed"]),
            clock=original["clock"],
            scenario=Scenario.model_validate(original.get("scenario", {})),
            stream_id=spec.stream_id,
        )
        done = committed_batches(conn, spec.stream_id)
        if stored.state != "running":
            set_source_state(conn, spec.stream_id, "running", spec.num_batches)
        base_until = datetime.fromisoformat(original.get("base_until", latest.isoformat()))
        base = stream_base(conn, base_until, self.settings.stream_base_max_rows)
        anchor = stored.anchor_date or latest
        return StreamRunner(
            spec,
            base,
            BatchClock(spec.clock, anchor),
            self.settings,
            self.metrics,
            self._connect,
            already_done=done,
            owner=self.owner,
            load_dir=self.load_dir,
        )

    def stop(self) -> StreamRunner:
        """Ask the running stream to stop after its current batch.

        Raises:
            StreamConflict: no stream is running.
        """
        with self._lock:
            runner = self._runner
            if runner is None or runner.finished:
                raise StreamConflict("no stream is running")
            runner.request_stop()
            return runner

    def current(self) -> StreamRunner | None:
        return self._runner

    def shutdown(self, timeout: float = 30) -> None:
        """Stop any stream and wait for it (used when the server exits and by tests)."""
        runner = self._runner
        if runner is not None and not runner.finished:
            runner.request_stop()
        if runner is not None:
            runner.join(timeout)


def _private_folder() -> Path:
    """A new folder only this process uses, in RAM (/dev/shm) where the machine has one."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    # mkdtemp makes it readable by its owner only; its name has no quote for LOAD DATA to trip on.
    return Path(tempfile.mkdtemp(prefix="cdringest_", dir=parent))


def describe_error(exc: BaseException) -> StreamErrorInfo:
    """A client-safe code and message for ``exc``; its own text is for the log only."""
    if is_transient(exc):
        return StreamErrorInfo(
            "database_unavailable", "the database is unavailable or did not answer in time"
        )
    if isinstance(exc, DatabaseError):
        return StreamErrorInfo(exc.code, exc.public_message)
    return StreamErrorInfo("internal_error", "the stream failed; see the service log")
