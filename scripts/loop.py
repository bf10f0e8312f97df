"""The closed loop: CDRs streamed through the ingest API, scored as they land, monitored.

:func:`start_scoring` and :func:`start_services` start the four long-running processes as
children (the streaming query; the monitoring poller, the monitoring service and the ingest
service); :func:`follow_stream` sends one stream through `POST /start_stream` and prints each
day as it is scored and as its chunk is judged, reading the tables each stage writes
(:mod:`db.stream_progress`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from config.settings import Settings
from db.connection import connection
from db.stream_progress import (
    RunVerdicts,
    ingest_batches_of,
    predictions_from,
    raw_days_from,
    runs_after,
    scoring_batches_after,
)
from ingest.client import ClientError, call, describe_error, wait_until_healthy
from scripts.children import Child, Children
from scripts.days import DayStatus, describe_monitored, describe_scored, follow_days
from scripts.stages import max_cdr_id

Printer = Callable[[str], None]

# The stream's states after which no batch comes (`ingest.client.FINAL_STATES`).
_ENDED = frozenset({"completed", "stopped", "failed"})


@dataclass(frozen=True)
class LoopOptions:
    """How the loop's processes run.

    Attributes:
        trigger_seconds: The streaming query's trigger interval.
        poll_seconds: The monitoring poller's interval.
        ready_seconds: How long to wait for a service's `/health`.
    """

    trigger_seconds: float = 2.0
    poll_seconds: float = 2.0
    ready_seconds: float = 120.0


def service_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def clear_stale_checkpoint(checkpoint: Path, max_cdr_id: int) -> bool:
    """Remove a streaming checkpoint that points past the table's last row; True if removed.

    A checkpoint's offset is the highest `DP_CDR_Data.id` its query admitted. Beyond the
    table's highest id, it belongs to an earlier database of that name (dropped and created
    again): kept, it would skip every new row up to that id.
    """
    offsets = checkpoint / "offsets"
    if not offsets.is_dir():
        return False
    batches = [p for p in offsets.iterdir() if p.name.isdigit()]
    if not batches:
        return False
    latest = max(batches, key=lambda p: int(p.name))
    try:
        offset = json.loads(latest.read_text(encoding="utf-8").splitlines()[-1])
        admitted = int(offset["id"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    if admitted <= max_cdr_id:
        return False
    shutil.rmtree(checkpoint)
    return True


def start_scorer(children: Children, options: LoopOptions, after_id: int) -> Child:
    """Start `python -m spark_jobs stream` from the rows after ``after_id`` (unless its
    checkpoint says where it is): not "latest", which the query reads only once its JVM is
    up, by when a stream may have begun."""
    return children.start(
        "stream-scorer",
        [
            "-m",
            "spark_jobs",
            "stream",
            "--trigger-seconds",
            str(options.trigger_seconds),
            "--starting-id",
            str(after_id),
        ],
    )


def start_poller(children: Children, options: LoopOptions) -> Child:
    """Start `python -m monitoring poll` with the loop's interval."""
    return children.start(
        "poller", ["-m", "monitoring", "poll", "--interval", str(options.poll_seconds)]
    )


def start_service(children: Children, module: str, url: str, options: LoopOptions) -> Child:
    """Start ``python -m <module> serve`` and wait until it is the one answering on ``url``.

    The service gets a fresh ``INSTANCE_ID``: a port held by another process fails with that
    said, instead of the demo talking to it.
    """
    nonce = secrets.token_hex(8)
    child = children.start(f"{module}-service", ["-m", module, "serve"], {"INSTANCE_ID": nonce})
    deadline = time.monotonic() + options.ready_seconds
    while True:
        child.check()
        try:
            wait_until_healthy(url, timeout=2, instance_id=nonce)
            return child
        except ClientError:
            if time.monotonic() > deadline:
                raise


def start_services(children: Children, settings: Settings, options: LoopOptions) -> str:
    """The poller, the monitoring service and the ingest service; the ingest API's URL."""
    start_poller(children, options)
    monitoring = service_url(settings.monitoring_host, settings.monitoring_port)
    start_service(children, "monitoring", monitoring, options)
    ingest = service_url(settings.ingest_host, settings.ingest_port)
    start_service(children, "ingest", ingest, options)
    print(f"  monitoring poller every {options.poll_seconds:g} s; dashboard at {monitoring}/")
    print(f"  ingest API at {ingest}/")
    return ingest


def start_scoring(children: Children, settings: Settings, options: LoopOptions) -> None:
    """The streaming query, from the rows committed now (a stale checkpoint is removed)."""
    after_id = max_cdr_id(settings)
    if clear_stale_checkpoint(settings.stream_checkpoint, after_id):
        print(f"  removed a checkpoint of an earlier database: {settings.stream_checkpoint}")
    child = start_scorer(children, options, after_id)
    print(
        f"  python -m spark_jobs stream (checkpoint {settings.stream_checkpoint}; log {child.log})"
    )


@dataclass
class DayWatcher:
    """Reads one stream's days from the database and reports each step once."""

    settings: Settings
    source_id: str
    first_day: date
    model_version: str
    drift_from: int | None = None
    runs: list[RunVerdicts] = field(default_factory=list)
    scored: set[date] = field(default_factory=set)
    monitored: set[date] = field(default_factory=set)
    days: list[DayStatus] = field(default_factory=list)

    def refresh(self, stream_ended: bool) -> list[str]:
        """Read the tables again; the lines of the steps taken since the last call."""
        with connection(self.settings) as conn:
            raw = raw_days_from(conn, self.first_day)
            ingested = ingest_batches_of(conn, self.source_id)
            scoring = scoring_batches_after(conn, raw[0].first_id - 1) if raw else []
            predictions = predictions_from(conn, self.model_version, self.first_day)
            self.runs.extend(runs_after(conn, self.runs[-1].run_id if self.runs else 0))
        self.days = follow_days(
            raw, ingested, scoring, predictions, self.runs, stream_ended=stream_ended
        )
        lines = []
        for status in self.days:
            if status.scored and status.day not in self.scored:
                self.scored.add(status.day)
                lines.append(describe_scored(status, self.drift_from))
            if status.verdict is not None and status.day not in self.monitored:
                self.monitored.add(status.day)
                lines.append(describe_monitored(status, self.drift_from))
        return lines

    def settled(self) -> bool:
        """Every complete day is scored and monitored."""
        done = [s for s in self.days if s.complete]
        return bool(done) and all(s.scored and s.verdict is not None for s in done)


def follow_stream(
    settings: Settings,
    ingest_url: str,
    request: dict[str, Any],
    children: Children,
    out: Printer,
    *,
    model_version: str,
    drift_from: int | None = None,
    settle_seconds: float = 600.0,
    token: str | None = None,
) -> DayWatcher:
    """Send ``request`` to `POST /start_stream` and report its days until each complete day
    is scored and monitored (or ``settle_seconds`` after the stream's end).

    Raises:
        ClientError: the ingest API refused the stream or became unreachable.
        ChildFailed: a child process exited meanwhile.
    """
    from db.ingest_log import get_source

    started = call(ingest_url, "POST", "/start_stream", request, token=token)
    stream_id = str(started["stream_id"])
    with connection(settings) as conn:
        source = get_source(conn, stream_id)
    if source is None or source.anchor_date is None:
        raise ClientError(f"stream {stream_id} has no simulated first day")
    watcher = DayWatcher(settings, stream_id, source.anchor_date.date(), model_version, drift_from)
    ended_at: float | None = None
    state = ""
    while True:
        children.check()
        status = call(ingest_url, "GET", "/stream_status")
        if status.get("state") != state:
            state = str(status.get("state"))
            if state in _ENDED:
                out(describe_stream_end(status))
        ended = state in _ENDED
        for line in watcher.refresh(stream_ended=ended):
            out(line)
        if ended:
            ended_at = ended_at or time.monotonic()
            if watcher.settled() or time.monotonic() - ended_at > settle_seconds:
                return watcher
        time.sleep(1.0)


def describe_stream_end(status: dict[str, Any]) -> str:
    """One line for a stream's final `/stream_status`."""
    line = (
        f"  [stream {status.get('stream_id')}] {status.get('state')}: "
        f"{status.get('rows_done', 0):,} rows in {status.get('batches_done', 0)} batches"
    )
    if status.get("batches_skipped"):
        line += f" ({status['batches_skipped']} batches written by an earlier run)"
    error = describe_error(status.get("last_error"))
    return line + (f"; last error: {error}" if error else "")


def latencies(days: Sequence[DayStatus]) -> list[float]:
    """The scored days' seconds from their last raw row to their predictions."""
    return [s.latency for s in days if s.scored and s.latency is not None]
