"""Monitoring's reads and writes: prediction frames with their late labels, stored runs and
figures, the poller's watermark and the lock that keeps runs apart.

A run's figures, its `monitoring_runs` row and (for the poller) the watermarks are written in
one transaction: a reader sees all of a run or none of it, and a poller that dies before the
commit monitors the same predictions again instead of skipping them. Figures are upserted by
(model version, chunk, metric) and (model version, chunk, feature, method). A full run
recomputes every chunk of its version, so rows its chunks no longer cover are pruned in the
same commit; the poller's incremental run (`store_chunks`) recomputes only the chunks that
changed and leaves the others' rows as they are, while its run row still describes every chunk.

Every statement runs in `db.connection.transaction`, so callers see our `DatabaseError`
hierarchy only, never the driver's errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd

from db.connection import Connection, Cursor, transaction
from db.models import ANALYSIS, REFERENCE, feature_columns

if TYPE_CHECKING:
    from monitoring.compute.result import MonitoringResult, MonitoringRun

# Columns of the prediction frames; the model's features follow, one column each.
PREDICTION_ID = "prediction_id"
SUBSCRIBER = "subscriber"
TIMESTAMP = "as_of_date"
SCORE = "probability_1"
DECISION = "prediction"
LABEL = "label"
PREDICTION_FRAME_COLUMNS: tuple[str, ...] = (
    PREDICTION_ID,
    SUBSCRIBER,
    TIMESTAMP,
    SCORE,
    DECISION,
    LABEL,
)

_F = TypeVar("_F", bound=Callable[..., Any])

RunTrigger = Literal["api", "poller", "cli"]
RunStatus = Literal["succeeded", "failed"]
SUCCEEDED: RunStatus = "succeeded"
FAILED: RunStatus = "failed"

# Server-side named locks are limited to 64 characters.
_LOCK_NAME_MAX = 64
_ERROR_MAX = 1024

_MAX_ID = "SELECT COALESCE(MAX(id), 0) FROM model_predictions"
_LAST_PROCESSED = "SELECT MAX(`Date`) FROM Processed_Data"
# The poller's idle check, one round trip: each subquery is one index lookup (the unique key
# on id, the first column of Processed_Data's primary key, the watermark's primary key and
# the registry's ix_registry_current).
_PROBE = (
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM model_predictions), "
    "(SELECT MAX(`Date`) FROM Processed_Data), "
    "w.last_prediction_id, w.label_cutoff, "
    "(SELECT version FROM model_registry WHERE is_current = 1 "
    "ORDER BY created_at DESC LIMIT 1), "
    "(SELECT created_at FROM model_registry WHERE is_current = 1 "
    "ORDER BY created_at DESC LIMIT 1) "
    "FROM (SELECT 1) AS one LEFT JOIN monitoring_watermark AS w ON w.consumer = %s"
)
# Covered by ux_predictions_id for the version and date (InnoDB keeps the primary key in
# every secondary index); the period costs one primary-key lookup per new row.
_DAYS_WRITTEN = (
    "SELECT DISTINCT model_version, period, as_of_date FROM model_predictions "
    "WHERE id > %s AND id <= %s"
)
# `{features}`: the slot columns of the features asked for (`_feature_select`).
_SELECT_REFERENCE = (
    "SELECT id, subscriber, as_of_date, probability_1, prediction, label{features} "
    "FROM model_predictions WHERE model_version = %s AND period = %s "
    "ORDER BY as_of_date, subscriber"
)
# A label counts once Processed_Data reaches `delay` days past the prediction's date: the
# caller binds that cut-off date. A label written onto the prediction itself always counts.
# `{days}`: nothing, or the date ranges asked for (`_day_ranges`), each a range of the
# primary key (model_version, as_of_date, subscriber).
_SELECT_ANALYSIS = (
    "SELECT p.id, p.subscriber, p.as_of_date, p.probability_1, p.prediction, "
    "COALESCE(p.label, d.Churn_Within_Horizon){features} "
    "FROM model_predictions AS p "
    "LEFT JOIN Processed_Data AS d "
    "ON d.`Date` = p.as_of_date AND d.`User` = p.subscriber AND p.as_of_date <= %s "
    "WHERE p.model_version = %s AND p.period = %s{days} "
    "ORDER BY p.as_of_date, p.subscriber"
)
_DAY_RANGE = "p.as_of_date BETWEEN %s AND %s"
_INSERT_RUN = (
    "INSERT INTO monitoring_runs (model_version, run_trigger, status, started_at, finished_at, "
    "chunking, reference_rows, analysis_rows, labelled_rows, chunks, watermark_id, alerts, "
    "verdicts, warnings, error_message) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_RUN_COLUMNS = (
    "run_id, model_version, run_trigger, status, started_at, finished_at, chunking, "
    "reference_rows, analysis_rows, labelled_rows, chunks, watermark_id, alerts, warnings, "
    "error_message, verdicts"
)
_SELECT_LATEST_RUN = (
    f"SELECT {_RUN_COLUMNS} FROM monitoring_runs "  # noqa: S608 - constant column list
    "WHERE model_version = %s ORDER BY run_id DESC LIMIT 1"
)
_SELECT_LATEST_RUN_WITH_STATUS = (
    f"SELECT {_RUN_COLUMNS} FROM monitoring_runs "  # noqa: S608 - constant column list
    "WHERE model_version = %s AND status = %s ORDER BY run_id DESC LIMIT 1"
)
_SELECT_LAST_VERSION = (
    "SELECT model_version FROM monitoring_runs WHERE status = 'succeeded' "
    "ORDER BY run_id DESC LIMIT 1"
)
_UPSERT_RESULT = (
    "INSERT INTO monitoring_results (model_version, chunk_start, chunk_end, metric, chunk_key, "
    "estimate, lower_bound, upper_bound, sampling_error, realized, lower_threshold, "
    "upper_threshold, alert, realized_alert, estimate_realized_alert, ece, chunk_rows, "
    "labelled_rows, run_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE chunk_key = VALUES(chunk_key), estimate = VALUES(estimate), "
    "lower_bound = VALUES(lower_bound), upper_bound = VALUES(upper_bound), "
    "sampling_error = VALUES(sampling_error), realized = VALUES(realized), "
    "lower_threshold = VALUES(lower_threshold), upper_threshold = VALUES(upper_threshold), "
    "alert = VALUES(alert), realized_alert = VALUES(realized_alert), "
    "estimate_realized_alert = VALUES(estimate_realized_alert), ece = VALUES(ece), "
    "chunk_rows = VALUES(chunk_rows), labelled_rows = VALUES(labelled_rows), "
    "run_id = VALUES(run_id), updated_at = CURRENT_TIMESTAMP(3)"
)
_UPSERT_DRIFT = (
    "INSERT INTO monitoring_drift (model_version, chunk_start, chunk_end, feature, method, kind, "
    "chunk_key, value, sampling_error, lower_threshold, upper_threshold, alert, run_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE kind = VALUES(kind), chunk_key = VALUES(chunk_key), "
    "value = VALUES(value), sampling_error = VALUES(sampling_error), "
    "lower_threshold = VALUES(lower_threshold), upper_threshold = VALUES(upper_threshold), "
    "alert = VALUES(alert), run_id = VALUES(run_id), updated_at = CURRENT_TIMESTAMP(3)"
)
_PRUNE_RESULTS = "DELETE FROM monitoring_results WHERE model_version = %s AND run_id <> %s"
_PRUNE_DRIFT = "DELETE FROM monitoring_drift WHERE model_version = %s AND run_id <> %s"
_DELETE_CHUNK_RESULTS = (
    "DELETE FROM monitoring_results WHERE model_version = %s AND chunk_start = %s"
)
_DELETE_CHUNK_DRIFT = "DELETE FROM monitoring_drift WHERE model_version = %s AND chunk_start = %s"
RESULT_COLUMNS: tuple[str, ...] = (
    "chunk_key",
    "chunk_start",
    "chunk_end",
    "metric",
    "estimate",
    "lower_bound",
    "upper_bound",
    "sampling_error",
    "realized",
    "lower_threshold",
    "upper_threshold",
    "alert",
    "realized_alert",
    "estimate_realized_alert",
    "ece",
    "chunk_rows",
    "labelled_rows",
    "run_id",
)
DRIFT_COLUMNS: tuple[str, ...] = (
    "chunk_key",
    "chunk_start",
    "chunk_end",
    "kind",
    "feature",
    "method",
    "value",
    "sampling_error",
    "lower_threshold",
    "upper_threshold",
    "alert",
    "run_id",
)
_SELECT_RESULTS = (
    f"SELECT {', '.join(RESULT_COLUMNS)} FROM monitoring_results "  # noqa: S608 - constants
    "WHERE model_version = %s ORDER BY metric, chunk_start, chunk_end"
)
_SELECT_DRIFT = (
    f"SELECT {', '.join(DRIFT_COLUMNS)} FROM monitoring_drift "  # noqa: S608 - constants
    "WHERE model_version = %s ORDER BY kind, feature, method, chunk_start, chunk_end"
)
_SELECT_WATERMARK = "SELECT last_prediction_id FROM monitoring_watermark WHERE consumer = %s"
_SELECT_LABEL_CUTOFF = "SELECT label_cutoff FROM monitoring_watermark WHERE consumer = %s"
# Never moves back: a slow run finishing after a faster, later one keeps the later position.
# The label cut-off goes with the run that saw it (assignments apply left to right, so the
# IFs compare with the stored id before it is updated).
_ADVANCE_WATERMARK = (
    "INSERT INTO monitoring_watermark (consumer, last_prediction_id, label_cutoff, run_id) "
    "VALUES (%s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE "
    "run_id = IF(VALUES(last_prediction_id) >= last_prediction_id, VALUES(run_id), run_id), "
    "label_cutoff = IF(VALUES(last_prediction_id) >= last_prediction_id, "
    "VALUES(label_cutoff), label_cutoff), "
    "last_prediction_id = GREATEST(last_prediction_id, VALUES(last_prediction_id))"
)


@dataclass(frozen=True)
class RunRecord:
    """What a monitoring run did, as stored in `monitoring_runs`.

    Attributes:
        model_version: The model version monitored.
        trigger: ``api``, ``poller`` or ``cli``.
        started_at: When the run began (UTC, naive).
        finished_at: When it ended (UTC, naive).
        watermark_id: The highest `model_predictions.id` when the run read its inputs.
        chunking: E.g. ``period=D``; None when the run failed before choosing one.
        reference_rows: Reference predictions read.
        analysis_rows: Analysis predictions read.
        labelled_rows: Analysis predictions whose label was known.
        chunks: Analysis chunks.
        alerts: Chunks in alert per kind of alert (`MonitoringResult.alert_counts`).
        warnings: Warnings the run reported.
        verdicts: Each chunk's ``{"chunk", "verdict", "reasons"}`` (`ChunkVerdict.to_json`).
    """

    model_version: str
    trigger: RunTrigger
    started_at: datetime
    finished_at: datetime
    watermark_id: int
    chunking: str | None = None
    reference_rows: int | None = None
    analysis_rows: int | None = None
    labelled_rows: int | None = None
    chunks: int | None = None
    alerts: Mapping[str, int] | None = None
    warnings: int | None = None
    verdicts: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class StoredRun:
    """One row of `monitoring_runs`."""

    run_id: int
    model_version: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime
    chunking: str | None
    reference_rows: int | None
    analysis_rows: int | None
    labelled_rows: int | None
    chunks: int | None
    watermark_id: int
    alerts: dict[str, int]
    warnings: int | None
    error_message: str | None
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> StoredRun:
        (run_id, version, trigger, status, started, finished, chunking, reference, analysis,
         labelled, chunks, watermark, alerts, warnings, error, verdicts) = row  # fmt: skip
        return cls(
            run_id=int(run_id),
            model_version=str(version),
            trigger=str(trigger),
            status=str(status),
            started_at=started,
            finished_at=finished,
            chunking=chunking,
            reference_rows=_optional_int(reference),
            analysis_rows=_optional_int(analysis),
            labelled_rows=_optional_int(labelled),
            chunks=_optional_int(chunks),
            watermark_id=int(watermark),
            alerts=json.loads(alerts) if alerts else {},
            warnings=_optional_int(warnings),
            error_message=error,
            verdicts=json.loads(verdicts) if verdicts else [],
        )


@dataclass(frozen=True)
class PollProbe:
    """What the poller checks on every step, read in one statement (`probe`).

    Attributes:
        newest_id: The highest `model_predictions.id` (0 without predictions).
        last_processed: The latest `Processed_Data` date, which sets the label cut-off.
        watermark_id: The consumer's last monitored prediction id (0 when it never ran).
        label_cutoff: The label cut-off of the consumer's last run (None: none recorded).
        current_version: The current model version, if any.
        registered_at: When it was registered; registering it again (new reference rows)
            changes it.
    """

    newest_id: int
    last_processed: date | None
    watermark_id: int
    label_cutoff: date | None
    current_version: str | None
    registered_at: datetime | None


@dataclass(frozen=True, order=True)
class WrittenDay:
    """A date of one model version and period with predictions written past a watermark."""

    model_version: str
    period: str
    as_of_date: date


def probe(conn: Connection, consumer: str) -> PollProbe:
    """Everything the poller needs to tell whether anything changed, in one round trip."""
    with transaction(conn) as cursor:
        cursor.execute(_PROBE, (consumer,))
        newest, processed, watermark, cutoff, version, registered = cursor.fetchone()
    return PollProbe(
        newest_id=int(newest),
        last_processed=processed,
        watermark_id=0 if watermark is None else int(watermark),
        label_cutoff=cutoff,
        current_version=None if version is None else str(version),
        registered_at=registered,
    )


def days_written(conn: Connection, after_id: int, up_to_id: int) -> list[WrittenDay]:
    """The (model version, period, date) of the predictions with ids in (after_id, up_to_id].

    Reads the new rows only, through the unique key on `id`: a day of new predictions costs
    its own rows, whatever the table holds.
    """
    with transaction(conn) as cursor:
        cursor.execute(_DAYS_WRITTEN, (after_id, up_to_id))
        rows = cursor.fetchall()
    return sorted(WrittenDay(str(version), str(period), day) for version, period, day in rows)


def last_processed_date(conn: Connection) -> date | None:
    """The latest `Processed_Data` date (None when it is empty)."""
    with transaction(conn) as cursor:
        cursor.execute(_LAST_PROCESSED)
        (value,) = cursor.fetchone()
    return value


def max_prediction_id(conn: Connection) -> int:
    """The highest `model_predictions.id` (0 when there are none); grows with every write."""
    with transaction(conn) as cursor:
        cursor.execute(_MAX_ID)
        (value,) = cursor.fetchone()
    return int(value)


def load_reference(
    conn: Connection, version: str, continuous: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """The reference predictions of ``version`` with their labels, features as columns.

    Args:
        conn: The connection.
        version: The model version.
        continuous: Its continuous features, in the order its registry row declares them
            (which places each in its slot column, see `db.models.feature_columns`).
        categorical: Its categorical features, likewise.

    Returns:
        A frame with `PREDICTION_FRAME_COLUMNS` (``as_of_date`` as ``datetime64[ns]``,
        ``label`` as float) followed by ``continuous`` (float64, NULL as NaN) and
        ``categorical`` (object) features, in date and subscriber order.
    """
    sql = _SELECT_REFERENCE.format(features=_feature_select(continuous, categorical, ""))
    # The binary protocol: ~30 doubles a row are not formatted as text and parsed back.
    with transaction(conn, prepared=True) as cursor:
        cursor.execute(sql, (version, REFERENCE))
        rows = cursor.fetchall()
    return _prediction_frame(rows, continuous, categorical)


def load_analysis(
    conn: Connection,
    version: str,
    continuous: Sequence[str],
    categorical: Sequence[str],
    label_delay_days: int,
) -> pd.DataFrame:
    """The analysis predictions of ``version``, with the labels known so far.

    A prediction (subscriber, date) takes its label from `Processed_Data` (same user and date)
    once `Processed_Data` reaches ``label_delay_days`` days past that date; before that its
    label is unknown (NaN), even when the row is there, since the label looks ahead.

    Returns:
        A frame shaped like :func:`load_reference`'s.
    """
    sql = _SELECT_ANALYSIS.format(features=_feature_select(continuous, categorical, "p."), days="")
    with transaction(conn, prepared=True) as cursor:
        cursor.execute(_LAST_PROCESSED)
        (last_processed,) = cursor.fetchone()
        cutoff = label_cutoff(last_processed, label_delay_days)
        cursor.execute(sql, (cutoff, version, ANALYSIS))
        rows = cursor.fetchall()
    return _prediction_frame(rows, continuous, categorical)


def load_analysis_at(
    conn: Connection,
    version: str,
    continuous: Sequence[str],
    categorical: Sequence[str],
    cutoff: date | None,
    days: Sequence[tuple[date, date]] | None = None,
) -> pd.DataFrame:
    """Like :func:`load_analysis`, with the label cut-off given and, optionally, only some days.

    Args:
        conn: The connection.
        version: The model version.
        continuous: Its continuous features, in registry order.
        categorical: Its categorical features, likewise.
        cutoff: Labels from `Processed_Data` count for predictions dated up to this day
            (`label_cutoff`); None: none do.
        days: Inclusive (first, last) date ranges to read, each a range of the primary key;
            None for every analysis prediction of ``version``. An empty list reads nothing.

    Returns:
        A frame shaped like :func:`load_reference`'s.
    """
    if days is not None and not days:
        return _prediction_frame([], continuous, categorical)
    ranges = "" if days is None else " AND (" + " OR ".join([_DAY_RANGE] * len(days)) + ")"
    # Only placeholders are formatted in; every value is bound.
    sql = _SELECT_ANALYSIS.format(
        features=_feature_select(continuous, categorical, "p."), days=ranges
    )
    params: list[Any] = [cutoff, version, ANALYSIS]
    for first, last in days or ():
        params += [first, last]
    with transaction(conn, prepared=True) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _prediction_frame(rows, continuous, categorical)


def label_cutoff(last_processed: date | None, label_delay_days: int) -> date | None:
    """The latest prediction date whose label is known, given `Processed_Data`'s last date."""
    if last_processed is None:
        return None
    return last_processed - timedelta(days=label_delay_days)


def _feature_select(continuous: Sequence[str], categorical: Sequence[str], table: str) -> str:
    clashes = sorted(set(PREDICTION_FRAME_COLUMNS) & {*continuous, *categorical})
    if clashes:
        raise ValueError(f"feature names {clashes} clash with the prediction columns")
    # Slot names are db.models' constants, never input; the feature names only pick them.
    slots = feature_columns(continuous, categorical)
    return "".join(f", {table}{slots[name]}" for name in (*continuous, *categorical))


def _prediction_frame(
    rows: Sequence[Sequence[Any]], continuous: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(
        rows, columns=[*PREDICTION_FRAME_COLUMNS, *continuous, *categorical], nrows=len(rows)
    )
    frame[PREDICTION_ID] = frame[PREDICTION_ID].astype(np.int64)
    frame[SUBSCRIBER] = frame[SUBSCRIBER].astype(object)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP]).astype("datetime64[ns]")
    frame[SCORE] = frame[SCORE].astype(np.float64)
    frame[DECISION] = frame[DECISION].astype(np.int8)
    frame[LABEL] = pd.to_numeric(frame[LABEL]).astype(np.float64)
    for name in continuous:
        frame[name] = frame[name].astype(np.float64)
    for name in categorical:
        frame[name] = frame[name].astype(object)
    return frame


def store_run(
    conn: Connection,
    run: MonitoringRun,
    consumer: str | None = None,
    *,
    label_cutoff: date | None = None,
) -> int:
    """Store a successful run in one transaction and return its run id.

    Inserts the run row, upserts its figures (`MonitoringResult.metric_rows`, `drift_rows` and
    `quality_rows`, whose keys are this table's column names), removes the version's figures of
    chunks this run did not produce, and advances ``consumer``'s watermark to the run's
    ``watermark_id`` (and its label cut-off to ``label_cutoff``) when one is named.
    """
    version = run.model_version
    result = run.result
    drift_rows = [*result.drift_rows(), *result.quality_rows()]
    with transaction(conn) as cursor:
        run_id = _insert_run(cursor, _run_record(run), SUCCEEDED, None)
        cursor.executemany(
            _UPSERT_RESULT, [_result_params(version, row, run_id) for row in result.metric_rows()]
        )
        cursor.executemany(
            _UPSERT_DRIFT, [_drift_params(version, row, run_id) for row in drift_rows]
        )
        cursor.execute(_PRUNE_RESULTS, (version, run_id))
        cursor.execute(_PRUNE_DRIFT, (version, run_id))
        if consumer is not None:
            cursor.execute(_ADVANCE_WATERMARK, (consumer, run.watermark_id, label_cutoff, run_id))
    return run_id


def store_chunks(
    conn: Connection,
    run: MonitoringRun,
    changed: MonitoringResult | None,
    removed: Sequence[datetime],
    consumer: str,
    label_cutoff: date | None,
) -> int:
    """Store an incremental run in one transaction and return its run id.

    The run row describes ``run.result``, every chunk of the version; only the figures of
    ``changed`` (the recomputed chunks; None for none) are upserted, and those of the chunks
    starting at ``removed`` (left without predictions) deleted. The other chunks keep their
    stored rows, which a full recompute would have written the same. ``consumer``'s watermark
    and label cut-off advance in the same transaction.
    """
    version = run.model_version
    metric_rows = [] if changed is None else changed.metric_rows()
    drift_rows = [] if changed is None else [*changed.drift_rows(), *changed.quality_rows()]
    with transaction(conn) as cursor:
        run_id = _insert_run(cursor, _run_record(run), SUCCEEDED, None)
        cursor.executemany(
            _UPSERT_RESULT, [_result_params(version, row, run_id) for row in metric_rows]
        )
        cursor.executemany(
            _UPSERT_DRIFT, [_drift_params(version, row, run_id) for row in drift_rows]
        )
        for start in removed:
            cursor.execute(_DELETE_CHUNK_RESULTS, (version, start))
            cursor.execute(_DELETE_CHUNK_DRIFT, (version, start))
        cursor.execute(_ADVANCE_WATERMARK, (consumer, run.watermark_id, label_cutoff, run_id))
    return run_id


def _run_record(run: MonitoringRun) -> RunRecord:
    result = run.result
    return RunRecord(
        model_version=run.model_version,
        trigger=run.trigger,
        started_at=run.started_at,
        finished_at=run.finished_at,
        watermark_id=run.watermark_id,
        chunking=run.chunking,
        reference_rows=result.reference_rows,
        analysis_rows=result.analysis_rows,
        labelled_rows=result.labelled_rows,
        chunks=len(result.chunks),
        alerts=result.alert_counts(),
        warnings=len(result.warnings),
        verdicts=[verdict.to_json() for verdict in result.verdicts()],
    )


def record_failed_run(
    conn: Connection,
    run: RunRecord,
    error_message: str,
    consumer: str | None = None,
    *,
    label_cutoff: date | None = None,
) -> int:
    """Record a run that could not monitor its data (stored figures stay as they were).

    Advances ``consumer``'s watermark (and label cut-off) too when one is named: the same
    predictions would fail the same way, so the poller waits for new ones. Returns the run id.
    """
    with transaction(conn) as cursor:
        run_id = _insert_run(cursor, run, FAILED, error_message[:_ERROR_MAX])
        if consumer is not None:
            cursor.execute(_ADVANCE_WATERMARK, (consumer, run.watermark_id, label_cutoff, run_id))
    return run_id


def _insert_run(cursor: Cursor, run: RunRecord, status: RunStatus, error: str | None) -> int:
    cursor.execute(
        _INSERT_RUN,
        (
            run.model_version,
            run.trigger,
            status,
            run.started_at,
            run.finished_at,
            run.chunking,
            run.reference_rows,
            run.analysis_rows,
            run.labelled_rows,
            run.chunks,
            run.watermark_id,
            None if run.alerts is None else json.dumps(dict(run.alerts)),
            None if run.verdicts is None else json.dumps([dict(v) for v in run.verdicts]),
            run.warnings,
            error,
        ),
    )
    return int(cursor.lastrowid)


def _result_params(version: str, row: Mapping[str, Any], run_id: int) -> tuple[Any, ...]:
    return (
        version,
        row["chunk_start"],
        row["chunk_end"],
        row["metric"],
        row["chunk_key"],
        _finite(row["estimate"]),
        _finite(row["lower_bound"]),
        _finite(row["upper_bound"]),
        _finite(row["sampling_error"]),
        _finite(row["realized"]),
        _finite(row["lower_threshold"]),
        _finite(row["upper_threshold"]),
        bool(row["alert"]),
        _optional_bool(row["realized_alert"]),
        _optional_bool(row["estimate_realized_alert"]),
        _finite(row["ece"]),
        int(row["chunk_rows"]),
        int(row["labelled_rows"]),
        run_id,
    )


def _drift_params(version: str, row: Mapping[str, Any], run_id: int) -> tuple[Any, ...]:
    return (
        version,
        row["chunk_start"],
        row["chunk_end"],
        row["feature"],
        row["method"],
        row["kind"],
        row["chunk_key"],
        _finite(row["value"]),
        _finite(row["sampling_error"]),
        _finite(row["lower_threshold"]),
        _finite(row["upper_threshold"]),
        bool(row["alert"]),
        run_id,
    )


def latest_run(conn: Connection, version: str, status: RunStatus | None = None) -> StoredRun | None:
    """The most recent run of ``version`` (of that ``status`` when given), or None."""
    with transaction(conn) as cursor:
        if status is None:
            cursor.execute(_SELECT_LATEST_RUN, (version,))
        else:
            cursor.execute(_SELECT_LATEST_RUN_WITH_STATUS, (version, status))
        row = cursor.fetchone()
    return None if row is None else StoredRun._from_row(row)


def last_monitored_version(conn: Connection) -> str | None:
    """The model version of the most recent successful run, or None."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_LAST_VERSION)
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def stored_results(conn: Connection, version: str) -> pd.DataFrame:
    """The stored figures of ``version``, one row per metric and chunk (`RESULT_COLUMNS`),
    by metric then chunk; missing figures are NaN, flags are booleans or None."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_RESULTS, (version,))
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS), nrows=len(rows))
    for name in ("estimate", "lower_bound", "upper_bound", "sampling_error", "realized"):
        frame[name] = pd.to_numeric(frame[name]).astype(np.float64)
    for name in ("lower_threshold", "upper_threshold", "ece"):
        frame[name] = pd.to_numeric(frame[name]).astype(np.float64)
    frame["alert"] = frame["alert"].astype(bool)
    for name in ("realized_alert", "estimate_realized_alert"):
        frame[name] = [None if value is None else bool(value) for value in frame[name]]
    return frame


def stored_drift(conn: Connection, version: str) -> pd.DataFrame:
    """The stored drift and data-quality figures of ``version``, one row per statistic and
    chunk (`DRIFT_COLUMNS`), by kind, feature, method then chunk."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_DRIFT, (version,))
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=list(DRIFT_COLUMNS), nrows=len(rows))
    for name in ("value", "sampling_error", "lower_threshold", "upper_threshold"):
        frame[name] = pd.to_numeric(frame[name]).astype(np.float64)
    frame["alert"] = frame["alert"].astype(bool)
    return frame


def get_watermark(conn: Connection, consumer: str) -> int:
    """The last `model_predictions.id` ``consumer`` has monitored (0 when it never ran)."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_WATERMARK, (consumer,))
        row = cursor.fetchone()
    return 0 if row is None else int(row[0])


def get_label_cutoff(conn: Connection, consumer: str) -> date | None:
    """The label cut-off of ``consumer``'s last run (None when none was recorded)."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_LABEL_CUTOFF, (consumer,))
        row = cursor.fetchone()
    return None if row is None else row[0]


def advance_watermark(
    conn: Connection,
    consumer: str,
    prediction_id: int,
    run_id: int | None = None,
    *,
    label_cutoff: date | None = None,
) -> int:
    """Move ``consumer``'s watermark forward to ``prediction_id`` (never back), with its label
    cut-off; return the watermark."""
    with transaction(conn) as cursor:
        cursor.execute(_ADVANCE_WATERMARK, (consumer, prediction_id, label_cutoff, run_id))
        cursor.execute(_SELECT_WATERMARK, (consumer,))
        (value,) = cursor.fetchone()
    return int(value)


def run_lock_name(db_name: str) -> str:
    """The server-wide lock name that serialises the monitoring runs of database ``db_name``."""
    return f"monitoring_run.{db_name}"[:_LOCK_NAME_MAX]


def acquire_run_lock(conn: Connection, name: str, timeout: float) -> bool:
    """Take the named lock on ``conn``'s session, waiting up to ``timeout`` seconds.

    The lock is held until :func:`release_run_lock` or until the session ends, so a process
    that dies mid-run never leaves it taken.
    """
    with transaction(conn) as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", (name, max(timeout, 0.0)))
        (acquired,) = cursor.fetchone()
    return acquired == 1


def release_run_lock(conn: Connection, name: str) -> None:
    """Release the named lock taken by :func:`acquire_run_lock` on this session."""
    with transaction(conn) as cursor:
        cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
        cursor.fetchall()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
