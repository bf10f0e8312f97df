"""Monitoring a model version from the database: read its predictions, monitor, store, report.

`run_for_model` is the database mode shared by ``python -m monitoring run``, the service's
``GET /run-monitoring`` and the poller. It wires settings -> connection -> reads -> the pure
monitoring core -> one storing transaction -> the report files, and holds a server-side lock
meanwhile, so runs of one database never overlap, whichever process starts them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from config.settings import Settings
from db.connection import Connection, connection
from db.models import ModelRecord, current_model, get_model
from db.monitoring import (
    DECISION,
    LABEL,
    PREDICTION_FRAME_COLUMNS,
    PREDICTION_ID,
    SCORE,
    TIMESTAMP,
    RunRecord,
    RunTrigger,
    acquire_run_lock,
    database_errors,
    load_analysis,
    load_reference,
    max_prediction_id,
    record_failed_run,
    release_run_lock,
    run_lock_name,
    store_run,
)
from monitoring.errors import InputError, InsufficientDataError, MonitoringError
from monitoring.spec import Chunking, ColumnMapping, validation_message

if TYPE_CHECKING:
    from monitoring.result import MonitoringResult

log = logging.getLogger(__name__)

# Model versions name a folder under OUTPUT_DIR: letters, digits, '_', '.', '-', no '/'.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
REPORT_SUBDIR = "monitoring"
_VERSION = re.compile(VERSION_PATTERN)
_FEATURE_TYPES = ("continuous", "categorical")


class ModelNotFoundError(MonitoringError):
    """No model has been trained yet, or the requested model version is not registered."""


class RunInProgressError(MonitoringError):
    """Another monitoring run of the same database holds the run lock."""


def run_for_model(
    settings: Settings,
    version: str | None = None,
    *,
    trigger: RunTrigger = "cli",
    consumer: str | None = None,
    lock_timeout: float = 0.0,
) -> tuple[int, dict[str, Any]]:
    """Monitor a model version's stored predictions and store the figures.

    Reads the version's reference and analysis predictions (analysis labels joined from
    `Processed_Data` once `monitoring_label_delay_days` have passed), runs the monitoring core
    with the registry's declared features and the configured chunking, stores the figures in
    one transaction (upserts: monitoring the same data again changes no row count) and writes
    the report (CSV, PNG, HTML) to ``OUTPUT_DIR/monitoring/<version>/``.

    Args:
        settings: The database, the output folder and the ``monitoring_*`` settings.
        version: The model version; None for the current one.
        trigger: Who asks, recorded with the run: ``api``, ``poller`` or ``cli``.
        consumer: A watermark to advance, in the storing transaction, to the highest
            prediction id the run saw (the poller's); None to leave watermarks alone.
        lock_timeout: Seconds to wait for a run in progress to end before giving up.

    Returns:
        The run id, and the result as JSON data: ``run_id``, ``model_version``, ``run``
        (trigger, times, watermark, stage seconds), ``report`` (files relative to
        ``OUTPUT_DIR``), then `MonitoringResult.to_json`'s ``summary``, ``metrics``, ``drift``,
        ``data_quality``, ``alerts`` and ``warnings``.

    Raises:
        ModelNotFoundError: No current model, or ``version`` is not registered.
        RunInProgressError: Another run held the lock for ``lock_timeout`` seconds.
        InsufficientDataError: No reference or analysis predictions, a single-class
            reference, too few rows or reference chunks. Recorded as a failed run.
        InputError: The registry or the stored predictions are unusable (e.g. an unknown
            feature type, scores outside [0, 1]). Recorded as a failed run.
        DatabaseUnavailable: The database cannot be reached or the connection was lost.
        DatabaseError: A statement failed.
    """
    started_at = _utcnow()
    with connection(settings) as conn:
        lock = run_lock_name(settings.db_name)
        with database_errors():
            acquired = acquire_run_lock(conn, lock, lock_timeout)
        if not acquired:
            raise RunInProgressError(
                "another monitoring run is in progress; try again when it has finished"
            )
        try:
            return _run_locked(conn, settings, version, trigger, consumer, started_at)
        finally:
            with suppress(Exception):  # a lost session has released the lock already
                release_run_lock(conn, lock)


def resolve_model(conn: Connection, version: str | None) -> ModelRecord:
    """The registry row of ``version``, or of the current model when it is None.

    Raises:
        ModelNotFoundError: No model registered, or no such version.
    """
    with database_errors():
        model = current_model(conn) if version is None else get_model(conn, version)
    if model is not None:
        return model
    if version is None:
        raise ModelNotFoundError(
            "no model has been trained yet: run `python -m spark_jobs model` first"
        )
    raise ModelNotFoundError(f"model version {version!r} is not registered")


def column_mapping(model: ModelRecord) -> ColumnMapping:
    """The column roles of a version's prediction frames, features as its registry declares.

    Raises:
        InputError: The registry row declares no features, a feature twice, a feature of an
            unknown type, or one named like a prediction column.
    """
    names: list[str] = []
    categorical: list[str] = []
    for feature in model.features:
        name, kind = feature.get("name"), feature.get("type")
        if not isinstance(name, str) or kind not in _FEATURE_TYPES:
            raise InputError(
                f"model {model.version} declares a feature {feature!r}: each needs a name and "
                f"a type of {' or '.join(_FEATURE_TYPES)}"
            )
        names.append(name)
        if kind == "categorical":
            categorical.append(name)
    clashes = sorted(set(names) & set(PREDICTION_FRAME_COLUMNS))
    if clashes:
        raise InputError(
            f"model {model.version} declares features named like prediction columns: {clashes}"
        )
    try:
        return ColumnMapping(
            y_true=LABEL,
            y_pred_proba=SCORE,
            y_pred=DECISION,
            timestamp=TIMESTAMP,
            id=PREDICTION_ID,
            features=names,
            categorical=categorical,
        )
    except ValidationError as exc:
        raise InputError(
            f"model {model.version} declares unusable features: {validation_message(exc)}"
        ) from exc


def chunking_of(settings: Settings) -> Chunking:
    """The configured chunking: ``monitoring_chunk_size`` rows if set, else the period."""
    if settings.monitoring_chunk_size is not None:
        return Chunking(size=settings.monitoring_chunk_size)
    return Chunking(period=settings.monitoring_chunk_period)


def report_folder(settings: Settings, version: str) -> Path:
    """Where the report of ``version`` is written: ``OUTPUT_DIR/monitoring/<version>``."""
    if not _VERSION.match(version):
        raise InputError(f"model version {version!r} cannot name a report folder")
    return settings.output_dir / REPORT_SUBDIR / version


def _run_locked(
    conn: Connection,
    settings: Settings,
    version: str | None,
    trigger: RunTrigger,
    consumer: str | None,
    started_at: datetime,
) -> tuple[int, dict[str, Any]]:
    model = resolve_model(conn, version)
    seconds: dict[str, float] = {}
    with database_errors():
        watermark = max_prediction_id(conn)
    record = RunRecord(
        model_version=model.version,
        trigger=trigger,
        started_at=started_at,
        finished_at=started_at,
        watermark_id=watermark,
    )
    try:
        folder = report_folder(settings, model.version)
        mapping = column_mapping(model)
        chunking = chunking_of(settings)
        with _timed(seconds, "load"), database_errors():
            continuous, categorical = mapping.continuous, mapping.categorical
            reference = load_reference(conn, model.version, continuous, categorical)
            analysis = load_analysis(
                conn, model.version, continuous, categorical, settings.monitoring_label_delay_days
            )
        record = replace(record, reference_rows=len(reference), analysis_rows=len(analysis))
        _check_inputs(model.version, len(reference), len(analysis))
        with _timed(seconds, "monitor"):
            result = _monitor(reference, analysis, mapping, chunking, settings)
    except MonitoringError as exc:
        _record_failure(conn, record, exc, consumer)
        raise
    summary = result.to_json()
    record = replace(
        record,
        finished_at=_utcnow(),
        chunking=",".join(f"{key}={value}" for key, value in chunking.describe().items()),
        reference_rows=result.reference_rows,
        analysis_rows=summary["summary"]["analysis_rows"],
        labelled_rows=summary["summary"]["labelled_rows"],
        chunks=len(result.chunks),
        alerts=result.alert_counts(),
        warnings=len(result.warnings),
    )
    with _timed(seconds, "store"), database_errors():
        run_id = store_run(
            conn,
            record,
            result.metric_rows(),
            [*result.drift_rows(), *result.quality_rows()],
            consumer=consumer,
        )
    with _timed(seconds, "report"):
        report = _write_report(result, folder, settings.output_dir, run_id)
    log.info(
        "monitoring run %d of model %s (%s): %d reference and %d analysis predictions "
        "(%d labelled), %d chunks, %d alerts; load %.1f s, monitor %.1f s, store %.1f s, "
        "report %.1f s",
        run_id,
        model.version,
        trigger,
        record.reference_rows,
        record.analysis_rows,
        record.labelled_rows,
        record.chunks,
        result.alert_counts()["total"],
        seconds["load"],
        seconds["monitor"],
        seconds["store"],
        seconds["report"],
    )
    return run_id, {
        "run_id": run_id,
        "model_version": model.version,
        "run": {
            "trigger": trigger,
            "started_at": _iso(started_at),
            "finished_at": _iso(record.finished_at),
            "watermark_id": watermark,
            "seconds": {stage: round(value, 3) for stage, value in seconds.items()},
        },
        "report": report,
        **summary,
    }


def _check_inputs(version: str, reference_rows: int, analysis_rows: int) -> None:
    if reference_rows == 0:
        raise InsufficientDataError(
            f"model {version} has no reference predictions: `python -m spark_jobs model` "
            "stores them when it registers a model"
        )
    if analysis_rows == 0:
        raise InsufficientDataError(
            f"model {version} has no analysis predictions yet: score later dates with "
            "`python -m spark_jobs score`"
        )


def _monitor(
    reference: Any, analysis: Any, mapping: ColumnMapping, chunking: Chunking, settings: Settings
) -> MonitoringResult:
    # NannyML takes seconds to import: pay for it on the first run, not on import.
    from monitoring.core import run_monitoring

    return run_monitoring(
        reference,
        analysis,
        mapping,
        chunking,
        min_chunk_rows=settings.monitoring_min_chunk_rows,
    )


def _write_report(
    result: MonitoringResult, folder: Path, output_dir: Path, run_id: int
) -> dict[str, Any]:
    from monitoring.report import write_report  # plotly and kaleido: only when reporting

    try:
        written = write_report(result, folder)
    except OSError as exc:
        # The figures are stored and the dashboard reads them; the files wait for a later run.
        log.error("monitoring run %d: cannot write the report to %s: %s", run_id, folder, exc)
        return {"folder": None, "files": {}, "error": "the report files could not be written"}
    return {
        "folder": _relative(folder, output_dir),
        "files": {name: _relative(path, output_dir) for name, path in written.items()},
    }


def _record_failure(
    conn: Connection, record: RunRecord, exc: MonitoringError, consumer: str | None
) -> None:
    failed = replace(record, finished_at=_utcnow())
    try:
        with database_errors():
            run_id = record_failed_run(conn, failed, str(exc), consumer=consumer)
    except Exception:
        log.warning("could not record the failed run of model %s", record.model_version)
        return
    log.warning("monitoring run %d of model %s failed: %s", run_id, record.model_version, exc)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
