"""The poller's runs: a version's fitted monitor and last result kept between runs, and only the
chunks that changed recomputed.

`poll_run` is wiring, called with the run lock held. It makes one of two runs:

- **full**, as `runner.run_for_model` does: read every prediction of the current version,
  calculate every chunk (the fit is reused while the version, its reference and the spec are
  unchanged), store every figure. Made when the poller holds no result for the version yet (a
  fresh process, a new version, a new reference, new settings, a failed run before), when
  chunks are cut by number of rows, or when another poller moved the watermark;
- **incremental**: find the chunks that changed since the watermarks (those with predictions
  written past `last_prediction_id`, those whose labels became known as `label_cutoff` moved),
  read their rows only, calculate them with the kept fit, merge them into the kept result
  (`monitoring.compute.incremental.merge_results`), and store the run row (every chunk) with
  the figures of the changed chunks only (`db.monitoring.store_chunks`). The figures equal a
  full recompute's, chunk by chunk.

What the incremental run cannot see: `Processed_Data` rewritten for dates already labelled
without re-scoring them (a batch re-run of the analysis job), and predictions deleted without
new ones written. A full run (``python -m monitoring run``, ``GET /run-monitoring``, or a
restart of the poller) takes them in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from config.settings import Settings
from db.connection import Connection
from db.errors import DatabaseError
from db.models import ANALYSIS, REFERENCE
from db.monitoring import (
    SUCCEEDED,
    PollProbe,
    RunRecord,
    advance_watermark,
    days_written,
    label_cutoff,
    latest_run,
    load_analysis_at,
    load_reference,
    record_failed_run,
    store_chunks,
    store_run,
)
from monitoring.compute.incremental import chunk_days, is_incremental, merge_results
from monitoring.compute.result import MonitoringResult, MonitoringRun
from monitoring.compute.spec import ColumnMapping
from monitoring.errors import ModelNotFoundError, MonitoringError
from monitoring.pipeline.runner import (
    MonitorInputs,
    RunSpec,
    column_mapping,
    failed_record,
    fit,
    fit_key,
    monitor_with,
    reference_switch_day,
    resolve_model,
    utcnow,
    with_reference,
)

if TYPE_CHECKING:
    from monitoring.compute.core import FittedMonitor

log = logging.getLogger(__name__)

RunMode = Literal["full", "incremental"]
_ONE_DAY = timedelta(days=1)


@dataclass
class MonitorState:
    """What the poller keeps of the version it monitors, between runs (mutable, one thread).

    Attributes:
        version: The model version.
        registered_at: Its registry row's time: registering it again (a new reference)
            changes it.
        spec: The settings it was monitored with.
        mapping: Its column roles.
        key: `runner.fit_key` of the fit.
        fitted: The monitor fitted on its reference.
        result: The result of every chunk as last stored; None after a failed run, so that
            the next run is full.
        watermark_id: The prediction watermark ``result`` is at.
        label_cutoff: The label cut-off ``result`` is at.
        reference_switch: The label cut-off from which the fit on the model's reference
            gives way to one on the first ``reference_days`` deployed days (a full run
            refits); None when the fit is already on the reference it keeps.
    """

    version: str
    registered_at: datetime | None
    spec: RunSpec
    mapping: ColumnMapping
    key: tuple[Any, ...]
    fitted: FittedMonitor
    result: MonitoringResult | None
    watermark_id: int
    label_cutoff: date | None
    reference_switch: date | None = None


@dataclass(frozen=True)
class PollRun:
    """A stored run of the poller.

    Attributes:
        run_id: Its `monitoring_runs` id.
        run: What it monitored and found: every chunk, recomputed or kept.
        mode: ``full`` or ``incremental``.
        recomputed: Keys of the chunks calculated by this run (all of them for a full run).
        removed: Keys of the chunks left without predictions, whose figures were deleted.
        rows_read: Analysis predictions read.
        seconds: Wall time per stage: ``find``, ``load``, ``monitor``, ``store``.
    """

    run_id: int
    run: MonitoringRun
    mode: RunMode
    recomputed: tuple[str, ...]
    removed: tuple[str, ...]
    rows_read: int
    seconds: Mapping[str, float] = field(default_factory=dict)


def label_days_between(old: date | None, new: date | None) -> tuple[date, date] | None:
    """The inclusive range of dates whose labels a move of the cut-off from ``old`` to
    ``new`` made known (or, moving back, unknown); None when it did not move."""
    if old == new:
        return None
    if old is None or new is None:
        known = old if new is None else new
        assert known is not None
        return date.min, known
    low, high = sorted((old, new))
    return low + _ONE_DAY, high


def poll_run(
    conn: Connection,
    settings: Settings,
    state: MonitorState | None,
    seen: PollProbe,
    consumer: str,
) -> tuple[PollRun | None, MonitorState | None]:
    """Monitor what changed since ``consumer``'s watermarks; call it with the run lock held.

    Args:
        conn: The connection holding the run lock.
        settings: The ``monitoring_*`` settings.
        state: What the poller kept of its last run; None for none.
        seen: `db.monitoring.probe`, read with the lock held.
        consumer: Whose watermarks to read and advance.

    Returns:
        The stored run (None when nothing the current version monitors had changed: the
        watermarks moved, no run was stored), and the state to keep for the next run.

    Raises:
        ModelNotFoundError: No current model (the watermarks moved past the predictions).
        MonitoringError: The data cannot be monitored; recorded as a failed run, the
            watermarks moved past it.
        DatabaseError: A statement failed.
    """
    spec = RunSpec.from_settings(settings)
    cutoff = label_cutoff(seen.last_processed, spec.label_delay_days)
    if _can_increment(state, seen, spec, cutoff) and _stored_alike(conn, state):
        assert state is not None and state.result is not None
        clock = time.perf_counter()
        written = [
            day
            for day in days_written(conn, seen.watermark_id, seen.newest_id)
            if day.model_version == state.version
        ]
        if not any(day.period == REFERENCE for day in written):
            new_days = {day.as_of_date for day in written if day.period == ANALYSIS}
            found = time.perf_counter() - clock
            return _incremental(conn, state, state.result, seen, consumer, new_days, cutoff, found)
    return _full(conn, state, seen, spec, consumer, cutoff)


def _can_increment(
    state: MonitorState | None, seen: PollProbe, spec: RunSpec, cutoff: date | None
) -> bool:
    return (
        state is not None
        and state.result is not None
        and state.version == seen.current_version
        and state.registered_at == seen.registered_at
        and state.spec == spec
        and is_incremental(spec.chunking)
        and state.watermark_id == seen.watermark_id
        and state.label_cutoff == seen.label_cutoff
        # Until the deployed reference is labelled, a new label cut-off may complete it.
        and (state.reference_switch is None or cutoff is None or cutoff < state.reference_switch)
    )


def _stored_alike(conn: Connection, state: MonitorState | None) -> bool:
    # A full run with other settings (`monitoring run --chunk-period W`) replaced the stored
    # chunks with its own: only a full run puts ours back.
    assert state is not None and state.result is not None
    stored = latest_run(conn, state.version, SUCCEEDED)
    return stored is None or stored.chunking == _chunking(state.result)


def _chunking(result: MonitoringResult) -> str:
    return ",".join(f"{key}={value}" for key, value in result.chunking.describe().items())


def _incremental(
    conn: Connection,
    state: MonitorState,
    previous: MonitoringResult,
    seen: PollProbe,
    consumer: str,
    new_days: set[date],
    cutoff: date | None,
    found_seconds: float,
) -> tuple[PollRun | None, MonitorState | None]:
    started_at = utcnow()
    seconds: dict[str, float] = {}
    clock = time.perf_counter() - found_seconds
    days = set(new_days)
    labelled = label_days_between(state.label_cutoff, cutoff)
    if labelled is not None:
        first, last = labelled
        # A chunk's days are [start, end): it has some in [first, last] when it starts by
        # `last` and ends after `first`.
        days |= {
            chunk.start.date()
            for chunk in previous.chunks
            if chunk.start.date() <= last and chunk.end.date() > first
        }
    spans = chunk_days(days, state.spec.chunking)
    seconds["find"] = time.perf_counter() - clock
    if not spans:
        advance_watermark(conn, consumer, seen.newest_id, label_cutoff=cutoff)
        state.watermark_id, state.label_cutoff = seen.newest_id, cutoff
        return None, state
    clock = time.perf_counter()
    mapping = state.mapping
    analysis = load_analysis_at(
        conn, state.version, mapping.continuous, mapping.categorical, cutoff, spans
    )
    seconds["load"] = time.perf_counter() - clock
    clock = time.perf_counter()
    starts = {first for first, _ in spans}
    replaced = [chunk for chunk in previous.chunks if chunk.start.date() in starts]
    try:
        update = None if analysis.empty else state.fitted.calculate(analysis)
    except MonitoringError as exc:
        state.result = None
        record = failed_record(state.version, "poller", started_at, seen.newest_id, None)
        _record_failure(conn, record, exc, consumer, cutoff)
        raise
    recomputed = [chunk.key for chunk in replaced]
    if update is not None:
        recomputed += [chunk.key for chunk in update.chunks if chunk.key not in recomputed]
    merged = merge_results(previous, update, recomputed, state.fitted.thresholds.calibration_change)
    kept = {chunk.key for chunk in merged.chunks}
    removed = [chunk for chunk in replaced if chunk.key not in kept]
    run = MonitoringRun(
        model_version=state.version,
        trigger="poller",
        started_at=started_at,
        finished_at=utcnow(),
        watermark_id=seen.newest_id,
        result=merged,
    )
    seconds["monitor"] = time.perf_counter() - clock
    clock = time.perf_counter()
    run_id = store_chunks(
        conn,
        run,
        update,
        [chunk.start.to_pydatetime() for chunk in removed],
        consumer,
        cutoff,
    )
    seconds["store"] = time.perf_counter() - clock
    state.result, state.watermark_id, state.label_cutoff = merged, seen.newest_id, cutoff
    polled = PollRun(
        run_id,
        run,
        "incremental",
        tuple(sorted(recomputed)),
        tuple(chunk.key for chunk in removed),
        len(analysis),
        seconds,
    )
    return polled, state


def _full(
    conn: Connection,
    state: MonitorState | None,
    seen: PollProbe,
    spec: RunSpec,
    consumer: str,
    cutoff: date | None,
) -> tuple[PollRun | None, MonitorState | None]:
    started_at = utcnow()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        model = resolve_model(conn, None)
    except ModelNotFoundError:
        advance_watermark(conn, consumer, seen.newest_id, label_cutoff=cutoff)
        raise
    registered_at = seen.registered_at if model.version == seen.current_version else None
    inputs = None
    try:
        mapping = column_mapping(model)
        reference = load_reference(conn, model.version, mapping.continuous, mapping.categorical)
        analysis = load_analysis_at(
            conn, model.version, mapping.continuous, mapping.categorical, cutoff
        )
        inputs = with_reference(
            MonitorInputs(model.version, mapping, reference, analysis, seen.newest_id), spec
        )
        seconds["load"] = time.perf_counter() - clock
        clock = time.perf_counter()
        key = fit_key(inputs, spec)
        if state is not None and state.key == key:
            fitted = state.fitted
        else:
            state = None  # its fit is of another version, reference or spec
            fitted = fit(inputs, spec)
        run = monitor_with(fitted, inputs, trigger="poller", started_at=started_at)
        seconds["monitor"] = time.perf_counter() - clock
    except MonitoringError as exc:
        if state is not None:
            state.result = None
        record = failed_record(model.version, "poller", started_at, seen.newest_id, inputs)
        _record_failure(conn, record, exc, consumer, cutoff)
        raise
    clock = time.perf_counter()
    run_id = store_run(conn, run, consumer, label_cutoff=cutoff)
    seconds["store"] = time.perf_counter() - clock
    kept = MonitorState(
        version=model.version,
        registered_at=registered_at,
        spec=spec,
        mapping=mapping,
        key=key,
        fitted=fitted,
        result=run.result,
        watermark_id=seen.newest_id,
        label_cutoff=cutoff,
        reference_switch=reference_switch_day(reference, inputs, spec),
    )
    keys = tuple(chunk.key for chunk in run.result.chunks)
    return PollRun(run_id, run, "full", keys, (), len(analysis), seconds), kept


def _record_failure(
    conn: Connection,
    record: RunRecord,
    exc: MonitoringError,
    consumer: str,
    cutoff: date | None,
) -> None:
    try:
        run_id = record_failed_run(conn, record, str(exc), consumer, label_cutoff=cutoff)
    except DatabaseError as db_exc:
        log.warning("could not record the failed run of model %s: %s", record.model_version, db_exc)
        return
    log.warning("monitoring run %d of model %s failed: %s", run_id, record.model_version, exc)
