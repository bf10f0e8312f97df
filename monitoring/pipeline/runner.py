"""Monitoring a model version from the database: read its predictions, monitor, store, report.

`run_for_model` is the database mode shared by ``python -m monitoring run`` and the service's
``GET /run-monitoring``: a full recompute of every chunk (the poller recomputes only what
changed, `monitoring.pipeline.incremental`, from the same steps). It is wiring only, under a
server-side lock so that runs of one database never overlap, whichever process starts them:

- `load_inputs` reads the version's declared features and its predictions (`MonitorInputs`);
- `monitor` is pure: the inputs and a `RunSpec` in, a `MonitoringRun` out;
- `store` writes the run and its figures in one transaction;
- `write_run_report` writes the report files under `report_folder`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import pandas as pd
from pydantic import ValidationError

from config.settings import Settings
from config.web import validation_error
from db.connection import Connection, connection
from db.dashboard import first_streamed_day, reference_span
from db.errors import DatabaseError
from db.models import ModelRecord, current_model, get_model
from db.monitoring import (
    DECISION,
    LABEL,
    PREDICTION_FRAME_COLUMNS,
    PREDICTION_ID,
    SCORE,
    TIMESTAMP,
    RunRecord,
    acquire_run_lock,
    load_analysis,
    load_reference,
    max_prediction_id,
    record_failed_run,
    release_run_lock,
    run_lock_name,
    store_run,
)
from monitoring.compute.result import MonitoringRun, RunTrigger
from monitoring.compute.spec import MIN_CHUNK_ROWS, AlertPolicy, Chunking, ColumnMapping
from monitoring.errors import (
    InputError,
    InsufficientDataError,
    ModelNotFoundError,
    MonitoringError,
    RunInProgressError,
)
from monitoring.report.timeline import NO_TIMELINE, Timeline

if TYPE_CHECKING:
    from monitoring.compute.core import FittedMonitor

log = logging.getLogger(__name__)

# Model versions name a folder under OUTPUT_DIR: letters, digits, '_', '.', '-', no '/'.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
REPORT_SUBDIR = "monitoring"
STAGES = ("load", "monitor", "store", "report")
_VERSION = re.compile(VERSION_PATTERN)
_FEATURE_TYPES = ("continuous", "categorical")

# The fitted monitors of the latest versions, by `fit_key`: most of a run's cost (CBPE's
# calibration and the bootstrap of the thresholds) depends on the reference only, so the
# service fits a version once (the poller keeps its own, `incremental.MonitorState`). An
# entry is taken out while a run uses it: a NannyML calculator must not serve two threads at
# once.
_FITTED: OrderedDict[tuple[Any, ...], FittedMonitor] = OrderedDict()
_FITTED_LOCK = threading.Lock()
_FITTED_MAX = 4

Detail = Literal["compact", "full"]
DETAILS: tuple[str, ...] = get_args(Detail)


@dataclass(frozen=True)
class RunSpec:
    """How to monitor: the chunking, the smallest reliable chunk and the label delay.

    Attributes:
        chunking: How to cut the chunks.
        min_chunk_rows: Smaller chunks get a warning; the reference needs this many rows.
        label_delay_days: Days `Processed_Data` must reach past a prediction for its label
            to count as known.
        policy: How alert thresholds are set (direction, false-alarm rates).
        reference_days: See `monitoring.compute.core.deployed_reference`; 0: the model's.
    """

    chunking: Chunking = field(default_factory=Chunking)
    min_chunk_rows: int = MIN_CHUNK_ROWS
    label_delay_days: int = 14
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    reference_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunSpec:
        """The ``monitoring_*`` settings: ``monitoring_chunk_size`` rows if set, else the
        period."""
        if settings.monitoring_chunk_size is not None:
            chunking = Chunking(size=settings.monitoring_chunk_size)
        else:
            chunking = Chunking(period=settings.monitoring_chunk_period)
        return cls(
            chunking=chunking,
            min_chunk_rows=settings.monitoring_min_chunk_rows,
            label_delay_days=settings.monitoring_label_delay_days,
            policy=AlertPolicy(direction=settings.monitoring_alert_direction),
            reference_days=settings.monitoring_reference_days,
        )


@dataclass(frozen=True, eq=False)
class MonitorInputs:
    """What a run of one model version reads from the database.

    Attributes:
        model_version: The version.
        mapping: Its prediction frames' column roles, features as its registry declares.
        reference: Its labelled reference predictions (`db.monitoring.load_reference`).
        analysis: Its analysis predictions with the labels known so far.
        watermark_id: The highest `model_predictions.id` before they were read.
    """

    model_version: str
    mapping: ColumnMapping
    reference: pd.DataFrame
    analysis: pd.DataFrame
    watermark_id: int


@dataclass(frozen=True)
class ReportFiles:
    """Where a run's report went.

    Attributes:
        folder: The report folder; None when it could not be written.
        files: Every file written, by name (see `monitoring.report.write_report`).
        error: Why the report is missing, for people; None when it was written.
    """

    folder: Path | None
    files: Mapping[str, Path]
    error: str | None = None


@dataclass(frozen=True)
class CompletedRun:
    """A stored monitoring run: what `run_for_model` returns.

    Attributes:
        run_id: Its `monitoring_runs` id.
        run: What it monitored and found.
        seconds: Wall time per stage: ``load``, ``monitor``, ``store``, ``report``.
        report: Its report files.
    """

    run_id: int
    run: MonitoringRun
    seconds: Mapping[str, float]
    report: ReportFiles

    def to_json(self, output_dir: Path, detail: Detail = "full") -> dict[str, Any]:
        """The run as JSON data, for the HTTP and CLI edges.

        Keys: ``run_id``, ``model_version``, ``run`` (trigger, times, watermark, stage
        seconds), ``report`` (files relative to ``output_dir``), then the result's: with
        ``detail="compact"`` `MonitoringResult.to_compact_json` (verdicts, alert counts,
        latest metrics, only the drift and data-quality statistics that alerted), with
        ``"full"`` `MonitoringResult.to_json` (every figure of every chunk).
        """
        report: dict[str, Any] = {
            "folder": None
            if self.report.folder is None
            else _relative(self.report.folder, output_dir),
            "files": {
                name: _relative(path, output_dir) for name, path in self.report.files.items()
            },
        }
        if self.report.error is not None:
            report["error"] = self.report.error
        result = self.run.result
        return {
            "run_id": self.run_id,
            "model_version": self.run.model_version,
            "run": {
                "trigger": self.run.trigger,
                "started_at": _iso(self.run.started_at),
                "finished_at": _iso(self.run.finished_at),
                "watermark_id": self.run.watermark_id,
                "seconds": {stage: round(value, 3) for stage, value in self.seconds.items()},
            },
            "report": report,
            **(result.to_json() if detail == "full" else result.to_compact_json()),
        }


def run_for_model(
    settings: Settings,
    version: str | None = None,
    *,
    trigger: RunTrigger = "cli",
    consumer: str | None = None,
    lock_timeout: float = 0.0,
) -> CompletedRun:
    """Monitor a model version's stored predictions, store the figures and write the report.

    Figures are upserts: monitoring the same data again changes no stored row. The report
    (CSV, PNG, HTML) goes to `report_folder`.

    Args:
        settings: The database, the output folder and the ``monitoring_*`` settings.
        version: The model version; None for the current one.
        trigger: Who asks, recorded with the run: ``api``, ``poller`` or ``cli``.
        consumer: A watermark to advance, in the storing transaction, to the highest
            prediction id the run saw (the poller's); None to leave watermarks alone.
        lock_timeout: Seconds to wait for a run in progress to end before giving up.

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
    started_at = utcnow()
    with connection(settings) as conn:
        lock = run_lock_name(settings.db_name)
        if not acquire_run_lock(conn, lock, lock_timeout):
            raise RunInProgressError(
                "another monitoring run is in progress; try again when it has finished"
            )
        try:
            return _run_locked(conn, settings, version, trigger, consumer, started_at)
        finally:
            _release(conn, lock)


def _run_locked(
    conn: Connection,
    settings: Settings,
    version: str | None,
    trigger: RunTrigger,
    consumer: str | None,
    started_at: datetime,
) -> CompletedRun:
    spec = RunSpec.from_settings(settings)
    model = resolve_model(conn, version)
    watermark = max_prediction_id(conn)
    seconds: dict[str, float] = {}
    inputs = None
    try:
        folder = report_folder(settings, model.version)
        with _timed(seconds, "load"):
            inputs = load_inputs(conn, model, watermark, spec.label_delay_days)
        with _timed(seconds, "monitor"):
            run = monitor(inputs, spec, trigger=trigger, started_at=started_at)
    except MonitoringError as exc:
        failed = failed_record(model.version, trigger, started_at, watermark, inputs)
        _record_failure(conn, failed, exc, consumer)
        raise
    with _timed(seconds, "store"):
        run_id = store(conn, run, consumer)
    with _timed(seconds, "report"):
        report = write_run_report(run, folder, run_id, read_timeline(conn, model.version))
    completed = CompletedRun(run_id, run, seconds, report)
    _log_run(completed)
    return completed


def resolve_model(conn: Connection, version: str | None) -> ModelRecord:
    """The registry row of ``version``, or of the current model when it is None.

    Raises:
        ModelNotFoundError: No model registered, or no such version.
    """
    model = current_model(conn) if version is None else get_model(conn, version)
    if model is not None:
        return model
    if version is None:
        raise ModelNotFoundError(
            "no model has been trained yet: run `python -m spark_jobs model` first"
        )
    raise ModelNotFoundError(f"model version {version!r} is not registered")


def load_inputs(
    conn: Connection, model: ModelRecord, watermark_id: int, label_delay_days: int
) -> MonitorInputs:
    """Read what a run of ``model`` monitors: its reference and analysis predictions.

    Args:
        conn: The connection.
        model: The registry row of the version.
        watermark_id: `max_prediction_id` read before, recorded with the run: predictions
            written meanwhile are then seen again by the next run rather than skipped.
        label_delay_days: See `RunSpec`.

    Raises:
        InputError: The registry row declares unusable features.
        DatabaseError: A read failed.
    """
    mapping = column_mapping(model)
    continuous, categorical = mapping.continuous, mapping.categorical
    reference = load_reference(conn, model.version, continuous, categorical)
    analysis = load_analysis(conn, model.version, continuous, categorical, label_delay_days)
    return MonitorInputs(model.version, mapping, reference, analysis, watermark_id)


def monitor(
    inputs: MonitorInputs,
    spec: RunSpec,
    *,
    trigger: RunTrigger,
    started_at: datetime,
    clock: Callable[[], datetime] | None = None,
) -> MonitoringRun:
    """Monitor the inputs: pure, no I/O.

    Args:
        inputs: What `load_inputs` read.
        spec: The chunking and the minimum chunk size.
        trigger: Who asked, recorded with the run.
        started_at: When the run began.
        clock: Gives ``finished_at``; default the UTC wall clock.

    Raises:
        InsufficientDataError: No reference or analysis predictions, a single-class
            reference, too few rows or reference chunks.
        InputError: Unusable values (e.g. scores outside [0, 1]).
    """
    inputs = with_reference(inputs, spec)
    key = fit_key(inputs, spec)
    with _FITTED_LOCK:
        fitted = _FITTED.pop(key, None)
    if fitted is None:
        fitted = fit(inputs, spec)
    else:
        check_inputs(inputs)
    run = monitor_with(fitted, inputs, trigger=trigger, started_at=started_at, clock=clock)
    with _FITTED_LOCK:
        _FITTED[key] = fitted
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.popitem(last=False)
    return run


def with_reference(inputs: MonitorInputs, spec: RunSpec) -> MonitorInputs:
    """``inputs`` with the reference to fit on: the model's, or its first
    ``spec.reference_days`` deployed days once they are all labelled (pure)."""
    if not spec.reference_days:
        return inputs
    from monitoring.compute.core import deployed_reference

    reference = deployed_reference(
        inputs.reference, inputs.analysis, inputs.mapping, spec.reference_days
    )
    return replace(inputs, reference=reference)


def reference_switch_day(
    model_reference: pd.DataFrame, inputs: MonitorInputs, spec: RunSpec
) -> date | None:
    """The label cut-off at which `with_reference` will switch ``inputs`` from the model's
    reference to the deployed days' (their last day): None when it has switched, or never
    will (``reference_days`` 0)."""
    if not spec.reference_days or inputs.reference is not model_reference:
        return None
    if inputs.analysis.empty:
        return None
    first: date = pd.to_datetime(inputs.analysis[inputs.mapping.timestamp]).min().date()
    return first + timedelta(days=spec.reference_days - 1)


def fit(inputs: MonitorInputs, spec: RunSpec) -> FittedMonitor:
    """The monitor of ``inputs``' model version, fitted on its reference: pure.

    Raises:
        InsufficientDataError: No reference or analysis predictions, a single-class
            reference, too few rows or reference chunks.
        InputError: Unusable values.
    """
    check_inputs(inputs)
    # NannyML takes seconds to import: pay for it on the first run, not on import.
    from monitoring.compute.core import fit_monitor
    from monitoring.compute.prepare import check_analysis

    check_analysis(inputs.analysis, inputs.mapping)
    return fit_monitor(
        inputs.reference,
        inputs.mapping,
        spec.chunking,
        min_chunk_rows=spec.min_chunk_rows,
        policy=spec.policy,
    )


def monitor_with(
    fitted: FittedMonitor,
    inputs: MonitorInputs,
    *,
    trigger: RunTrigger,
    started_at: datetime,
    clock: Callable[[], datetime] | None = None,
) -> MonitoringRun:
    """Monitor ``inputs.analysis`` with a monitor already fitted on their version: pure.

    Raises:
        InsufficientDataError: No analysis predictions.
        InputError: Unusable values.
    """
    result = fitted.calculate(inputs.analysis)
    return MonitoringRun(
        model_version=inputs.model_version,
        trigger=trigger,
        started_at=started_at,
        finished_at=(clock or utcnow)(),
        watermark_id=inputs.watermark_id,
        result=result,
    )


def fit_key(inputs: MonitorInputs, spec: RunSpec) -> tuple[Any, ...]:
    """What a fitted monitor depends on: the version, its reference rows, mapping and spec."""
    # The reference of a model version does not change, but the key says so rather than
    # trusting it: a hash of its rows costs milliseconds, a fit seconds.
    digest = int(pd.util.hash_pandas_object(inputs.reference, index=False).sum())
    return (
        inputs.model_version,
        digest,
        inputs.mapping.model_dump_json(),
        spec.chunking,
        spec.min_chunk_rows,
        spec.policy,
    )


def store(conn: Connection, run: MonitoringRun, consumer: str | None = None) -> int:
    """Store ``run`` in one transaction (see `db.monitoring.store_run`); return its run id."""
    return store_run(conn, run, consumer=consumer)


def read_timeline(conn: Connection, version: str) -> Timeline:
    """The reference span of ``version`` and the first streamed day, marked on the plots."""
    return Timeline.of(reference_span(conn, version), first_streamed_day(conn))


def write_run_report(
    run: MonitoringRun, folder: Path, run_id: int, timeline: Timeline = NO_TIMELINE
) -> ReportFiles:
    """Write the report of ``run`` into ``folder``, ``timeline`` marked on its plots.

    A folder that cannot be written is logged and said in the result, not raised: the
    figures are stored and the dashboard reads them; the next run writes the files.
    """
    from monitoring.report import write_report  # plotly and kaleido: only when reporting

    try:
        written = write_report(run.result, folder, timeline)
    except OSError as exc:
        log.error("monitoring run %d: cannot write the report to %s: %s", run_id, folder, exc)
        return ReportFiles(None, {}, "the report files could not be written")
    return ReportFiles(folder, written)


def check_inputs(inputs: MonitorInputs) -> None:
    """Refuse inputs without reference or analysis predictions.

    Raises:
        InsufficientDataError: Naming the command that writes the missing predictions.
    """
    version = inputs.model_version
    if inputs.reference.empty:
        raise InsufficientDataError(
            f"model {version} has no reference predictions: `python -m spark_jobs model` "
            "stores them when it registers a model"
        )
    if inputs.analysis.empty:
        raise InsufficientDataError(
            f"model {version} has no analysis predictions yet: score newer dates with "
            "`python -m spark_jobs score`"
        )


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
            f"model {model.version} declares unusable features: {validation_error(exc).message}"
        ) from exc


def report_folder(settings: Settings, version: str) -> Path:
    """Where the report of ``version`` is written: ``OUTPUT_DIR/monitoring/<DB_NAME>/<version>``.

    One folder per database, so runs on two databases never overwrite each other's reports.

    Raises:
        InputError: ``version`` cannot name a folder.
    """
    if not _VERSION.match(version):
        raise InputError(f"model version {version!r} cannot name a report folder")
    return settings.output_dir / REPORT_SUBDIR / settings.db_name / version


def failed_record(
    version: str,
    trigger: RunTrigger,
    started_at: datetime,
    watermark_id: int,
    inputs: MonitorInputs | None,
    finished_at: datetime | None = None,
) -> RunRecord:
    """The `monitoring_runs` row of a run that could not monitor its data: what it had read."""
    return RunRecord(
        model_version=version,
        trigger=trigger,
        started_at=started_at,
        finished_at=finished_at or utcnow(),
        watermark_id=watermark_id,
        reference_rows=None if inputs is None else len(inputs.reference),
        analysis_rows=None if inputs is None else len(inputs.analysis),
    )


def utcnow() -> datetime:
    """Now, in UTC, naive: how the monitoring tables store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _record_failure(
    conn: Connection, record: RunRecord, exc: MonitoringError, consumer: str | None
) -> None:
    try:
        run_id = record_failed_run(conn, record, str(exc), consumer=consumer)
    except DatabaseError as db_exc:
        log.warning("could not record the failed run of model %s: %s", record.model_version, db_exc)
        return
    log.warning("monitoring run %d of model %s failed: %s", run_id, record.model_version, exc)


def _release(conn: Connection, lock: str) -> None:
    with suppress(DatabaseError):  # a lost session has released the lock already
        release_run_lock(conn, lock)


def _log_run(completed: CompletedRun) -> None:
    run, result, seconds = completed.run, completed.run.result, completed.seconds
    log.info(
        "monitoring run %d of model %s (%s): %d reference and %d analysis predictions "
        "(%d labelled), %d chunks, %d alerts; %s",
        completed.run_id,
        run.model_version,
        run.trigger,
        result.reference_rows,
        result.analysis_rows,
        result.labelled_rows,
        len(result.chunks),
        result.total_alerts,
        ", ".join(f"{stage} {seconds[stage]:.1f} s" for stage in STAGES if stage in seconds),
    )


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
