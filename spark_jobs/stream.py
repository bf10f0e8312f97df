"""The streaming job: new `DP_CDR_Data` rows -> `Processed_Data` -> `model_predictions`.

A Structured Streaming query reads new rows by `id` range (:mod:`spark_jobs.cdr_source`)
and, for each micro-batch (``foreachBatch``):

1. collects the batch's rows once, reads the other raw rows of the subscriber-days it
   touches (none when a day lands whole in one batch) and re-aggregates each day from ALL
   of its raw rows (:func:`aggregate_raw`, on the driver in Arrow: the analysis job's
   ``clean_cdr`` and ``aggregate_daily``, held to them by a test), so a day whose rows
   arrive over several batches, or late, is always stored whole, never as the part one
   batch saw;
2. builds the trailing-window features of those subscriber-days from their last 27 days of
   `Processed_Data`, with the fresh days in place of the stored ones, and scores them with
   the current model, in NumPy on the driver (:mod:`spark_jobs.local_scoring`: the score
   job's ``build_features``, forest, calibration and ``prediction_rows``, held to them by a
   test), so a streamed day gets the numbers `spark_jobs score` gives it, without the
   second of planning and scheduling a Spark job costs each batch;
3. writes the subscriber-days, the predictions (each replacing the row of its model
   version, date and subscriber) and the batch's `stream_batches` row in ONE transaction
   (:func:`db.stream_log.write_batch`). A batch replayed after a crash finds that row and
   writes nothing: every batch takes effect exactly once.

Days up to the model's test window are not scored: they hold its reference rows. The
registry is read every batch, so a new current model version is used from the next batch
on; loaded models (the fitted pipeline's trees as NumPy arrays) are cached per version.
The current model is loaded before the query starts: the first batch does not wait for it.

Spark still runs the query, its source (the reads, their offsets and the checkpoint) and
the batch jobs; a micro-batch is at most ``maxRowsPerTrigger`` rows, already collected on
the driver, and its scoring reads at most 28 days of the subscribers it touches.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from config.settings import Settings
from spark_jobs.errors import NoModelError, SparkJobError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from db.connection import Connection
    from db.models import ModelRecord
    from spark_jobs.artifacts import ModelCard
    from spark_jobs.local_scoring import LocalPipeline

log = logging.getLogger(__name__)


class StreamFailedError(SparkJobError):
    """The streaming query stopped with an error; the message says which."""


# How long `--once` and a stop wait for the query's thread between checks of the stop flag.
_POLL_SECONDS = 1


@dataclass(frozen=True)
class StreamOptions:
    """How the query runs: its trigger, admission control, checkpoint and first id."""

    checkpoint: Path
    trigger_seconds: float = 2.0
    max_rows_per_trigger: int = 20_000
    once: bool = False
    # Where a query without a checkpoint starts: 'latest' (rows committed from now on),
    # 'earliest', or after an id. A checkpoint, once there, decides instead.
    starting_id: int | str = "latest"
    # Id slices (Spark tasks, each a Python worker and a connection) per micro-batch: the
    # batches' thousands of rows read in tens of milliseconds, a second task costs more.
    num_partitions: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> StreamOptions:
        """The settings' trigger, row cap and checkpoint, with ``overrides`` where not None."""
        values: dict[str, Any] = {
            "checkpoint": settings.stream_checkpoint,
            "trigger_seconds": settings.stream_trigger_seconds,
            "max_rows_per_trigger": settings.stream_max_rows_per_trigger,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version: its fitted pipeline's NumPy twin and its card."""

    record: ModelRecord
    local: LocalPipeline
    card: ModelCard

    @property
    def version(self) -> str:
        return self.record.version


class ModelCache:
    """The current model, read from the registry on every call, loaded once per version."""

    def __init__(self) -> None:
        self._loaded: dict[str, LoadedModel] = {}
        self._last: str | None = None

    def current(self, conn: Connection, spark: SparkSession) -> LoadedModel:
        """The registry's current model (its trees read through ``spark``).

        Raises:
            NoModelError: no model is current, or its folder is gone.
        """
        from db.models import current_model
        from spark_jobs.artifacts import load_model
        from spark_jobs.local_scoring import LocalPipeline

        record = current_model(conn)
        if record is None:
            raise NoModelError("no model trained yet: run `python -m spark_jobs model` first")
        model = self._loaded.get(record.version)
        if model is None:
            pipeline, card = load_model(record.path)
            local = LocalPipeline.load(spark, pipeline, record.path)
            model = self._loaded[record.version] = LoadedModel(record, local, card)
        if model.version != self._last:
            log.info("scoring with model %s", model.version)
            self._last = model.version
        return model


@dataclass(frozen=True)
class BatchOutcome:
    """What one micro-batch read and wrote."""

    batch_id: int
    rows: int
    subscriber_days: int
    predictions: int
    model_version: str | None
    seconds: float
    first_id: int | None = None
    last_id: int | None = None
    # From the newest ingest commit before the batch to the batch's write, when measurable.
    lag_seconds: float | None = None
    # The database server's clock when the batch was written (just before its commit).
    written_at: datetime | None = None
    replayed: bool = False
    # Seconds per step: read (the batch's rows, to the driver), aggregate (with the touched
    # days' other raw rows), history (the stored days read), score, write.
    steps: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if self.replayed:
            return f"batch {self.batch_id}: already written (a replay); nothing changed"
        ids = "" if self.first_id is None else f" (ids {self.first_id}..{self.last_id})"
        lag = "" if self.lag_seconds is None else f", {self.lag_seconds:.2f} s after ingest"
        steps = " ".join(f"{name} {seconds:.2f}" for name, seconds in self.steps.items())
        return (
            f"batch {self.batch_id}: {self.rows:,} rows{ids} -> {self.subscriber_days:,} "
            f"subscriber-days, {self.predictions:,} predictions with model "
            f"{self.model_version or '-'} in {self.seconds:.2f} s{lag}"
            + (f" ({steps})" if steps else "")
        )


@dataclass
class StreamSummary:
    """What a run of the query did (a `--once` run, or one stopped by a signal)."""

    batches: int = 0
    rows: int = 0
    predictions: int = 0
    seconds: float = 0.0
    query_id: str | None = None
    # Seconds per step of `process_batch`, summed over the batches written.
    step_seconds: dict[str, float] = field(default_factory=dict)
    batch_seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"stream: {self.batches} micro-batches, {self.rows:,} rows, "
            f"{self.predictions:,} predictions ({self.seconds:.1f} s)"
        )


# --- the pure steps ------------------------------------------------------------------------


def aggregate_days(raw: DataFrame) -> DataFrame:
    """`Processed_Data` rows of raw CDRs: the analysis job's cleaning and aggregation.

    ``raw`` must hold every raw row of each subscriber-day it touches.
    """
    from spark_jobs.transforms import aggregate_daily, clean_cdr

    return aggregate_daily(clean_cdr(raw))


def aggregate_raw(raw: pa.Table) -> pa.Table:
    """:func:`aggregate_days` computed by Arrow on the driver, for a micro-batch's few rows.

    The same cleaning (``clean_cdr``: subscriber trimmed of spaces, rows without date or
    subscriber dropped, negative usage and labels other than 0/1 made NULL, repeated rows
    kept once) and aggregation (``aggregate_daily``: usage summed with NULL as none, rows
    counted, the highest label), without a Spark job and its shuffle. A test holds both to
    the same rows. Sums of three or more readings of one day may differ from Spark's in the
    last bit, as Spark's own do between two partitionings: both add in an unspecified order.

    Args:
        raw: Rows in `CDR_STREAM_SCHEMA` (`DP_DATE` a UTC timestamp), every raw row of
            each subscriber-day it touches.

    Returns:
        One row per subscriber-day in the `Processed_Data` schema (Arrow types).
    """
    import pyarrow.compute as pc

    from spark_jobs.schemas import DATE, LABEL, USAGE_MAPPING, USER

    subscriber = pc.utf8_trim(raw["DP_MSISDN"], characters=" ")
    columns: dict[str, Any] = {"DP_DATE": raw["DP_DATE"], "DP_MSISDN": subscriber}
    for name in USAGE_MAPPING:
        value = raw[name]
        columns[name] = pc.if_else(pc.greater_equal(value, 0), value, pa.scalar(None, value.type))
    label = raw["PSEUDO_CHURNED"]
    known = pc.is_in(label, value_set=pa.array([0, 1], label.type))
    columns["PSEUDO_CHURNED"] = pc.if_else(known, label, pa.scalar(None, label.type))
    # A NULL comparison drops the row, as Spark's `where` does.
    cleaned = pa.table(columns).filter(
        pc.and_kleene(pc.is_valid(raw["DP_DATE"]), pc.not_equal(subscriber, ""))
    )
    distinct = cleaned.group_by(list(columns), use_threads=False).aggregate([])
    keyed = distinct.append_column(DATE, pc.cast(distinct["DP_DATE"], pa.date32()))
    every = pc.ScalarAggregateOptions(skip_nulls=True, min_count=0)
    aggregated = keyed.group_by([DATE, "DP_MSISDN"], use_threads=False).aggregate(
        [(name, "sum", every) for name in USAGE_MAPPING]
        + [([], "count_all"), ("PSEUDO_CHURNED", "max")]
    )
    named = {
        DATE: aggregated[DATE],
        USER: aggregated["DP_MSISDN"],
        **{usage: aggregated[f"{name}_sum"] for name, usage in USAGE_MAPPING.items()},
        "Record_Count": aggregated["count_all"],
        LABEL: aggregated["PSEUDO_CHURNED_max"],
    }
    schema = processed_arrow_schema()
    return pa.table([named[f.name].cast(f.type) for f in schema], schema=schema.remove_metadata())


def processed_arrow_schema() -> pa.Schema:
    """`PROCESSED_SCHEMA` as Arrow types."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_jobs.schemas import PROCESSED_SCHEMA

    return to_arrow_schema(PROCESSED_SCHEMA)


def processed_text_table(rows: Sequence[Sequence[bytes | None]]) -> pa.Table:
    """`Processed_Data` rows of server text (`PROCESSED_COLUMNS` order, NULL as None) as an
    Arrow table, each column parsed at once (the same text the driver would parse)."""
    schema = processed_arrow_schema()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.Table.from_arrays(
        [
            pa.array(values, type=pa.binary()).cast(pa.string()).cast(f.type)
            for values, f in zip(columns, schema, strict=True)
        ],
        schema=schema,
    )


def merge_history(stored: pa.Table, fresh: pa.Table) -> pa.Table:
    """``stored`` `Processed_Data` rows with ``fresh`` ones in place of the same (Date, User)."""
    from spark_jobs.schemas import DATE, USER

    kept = stored.join(fresh.select([DATE, USER]), [DATE, USER], join_type="left anti")
    return pa.concat_tables([kept.select(fresh.column_names).cast(fresh.schema), fresh])


def score_history(history: pa.Table, days: pa.Table, model: LoadedModel) -> pa.Table:
    """`model_predictions` rows (period analysis, no label) of the subscriber-days ``days``
    (`Date`, `User`), in key order (date, subscriber), without the feature slots the
    model leaves NULL (`db.models.written_columns`).

    Args:
        history: `Processed_Data` rows of the subscribers of ``days``, from
            `long_window_days - 1` days before the first of ``days`` on (its first date),
            so that every window is whole, as in `spark_jobs score`.
        days: The subscriber-days to score.
        model: The model to score with.
    """
    import pyarrow.compute as pc

    from db.models import ANALYSIS, written_columns
    from spark_jobs.local_scoring import prediction_table, trailing_features
    from spark_jobs.schemas import DATE, USER

    first_day = pc.min(days[DATE]).as_py() - timedelta(days=model.card.long_window_days - 1)
    features = trailing_features(history, first_day, model.card.min_history_days, days)
    features = features.sort_by([(DATE, "ascending"), (USER, "ascending")])
    rows = prediction_table(features, model.local, model.card, ANALYSIS)
    card = model.card
    return rows.select(list(written_columns(card.continuous_features, card.categorical_features)))


def batch_keys(batch: pa.Table) -> list[tuple[str, date]]:
    """The distinct (``DP_MSISDN`` as stored, UTC day of ``DP_DATE``) of raw rows."""
    import pyarrow.compute as pc

    keys = pa.table({"s": batch["DP_MSISDN"], "d": pc.cast(batch["DP_DATE"], pa.date32())}).filter(
        pc.and_kleene(pc.is_valid(batch["DP_MSISDN"]), pc.is_valid(batch["DP_DATE"]))
    )
    distinct = keys.group_by(["s", "d"], use_threads=False).aggregate([])
    return sorted(zip(distinct["s"].to_pylist(), distinct["d"].to_pylist(), strict=True))


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


# --- one micro-batch: read -> pure steps -> one transaction -----------------------------------


def process_batch(
    frame: DataFrame,
    batch_id: int,
    *,
    settings: Settings,
    query_id: str,
    models: ModelCache,
    previous_commit: datetime | None = None,
) -> BatchOutcome:
    """Apply one micro-batch of raw rows, exactly once per (``query_id``, ``batch_id``).

    One Spark job per batch reads the batch's rows (to the driver, once). The rows are few:
    the cleaning, the daily aggregation, the merge with the stored days, the features and
    the scoring run in Arrow and NumPy on the driver.

    Raises:
        NoModelError: no model is current.
        DatabaseError: a read or the write failed (the batch wrote nothing).
    """
    import pyarrow.compute as pc

    from db.connection import connection
    from db.models import written_columns
    from db.stream_log import (
        StreamBatch,
        batch_committed,
        newest_ingest_commit,
        processed_text_of_subscribers,
        raw_rows_of_days,
        write_batch,
    )
    from spark_jobs.cdr_source import text_rows_to_record_batch
    from spark_jobs.schemas import DATE, USER

    started = time.perf_counter()
    steps: dict[str, float] = {}

    def lap(name: str) -> None:
        steps[name] = time.perf_counter() - started - sum(steps.values())

    spark = frame.sparkSession
    with connection(settings) as conn:
        if batch_committed(conn, query_id, batch_id):
            return BatchOutcome(batch_id, 0, 0, 0, None, 0.0, replayed=True)
        ingest_commit = newest_ingest_commit(conn)
        batch = cast("pa.Table", frame.toArrow())
        rows = batch.num_rows
        if not rows:
            # Spark plans an empty first batch for a new query: nothing to apply or log.
            return BatchOutcome(batch_id, 0, 0, 0, None, time.perf_counter() - started)
        ids = pc.min_max(batch["id"])
        first_id, last_id = int(ids["min"].as_py()), int(ids["max"].as_py())
        lap("read")
        model = models.current(conn, spark)
        # Rows of the touched days that came before (or after) this batch: none for a day
        # that lands whole in one batch, the earlier rows for a day spread over several.
        earlier = text_rows_to_record_batch(
            raw_rows_of_days(conn, batch_keys(batch), outside=(first_id, last_id))
        )
        fresh = aggregate_raw(
            pa.concat_tables([batch.cast(earlier.schema), pa.Table.from_batches([earlier])])
        )
        processed = _rows(fresh)
        lap("aggregate")
        to_score = fresh.filter(pc.greater(fresh[DATE], pa.scalar(model.record.test_end)))
        predictions: list[tuple[Any, ...]] = []
        if to_score.num_rows:
            day_range = pc.min_max(to_score[DATE])
            last_day = day_range["max"].as_py()
            first_day = day_range["min"].as_py() - timedelta(days=model.card.long_window_days - 1)
            subscribers = sorted(set(to_score[USER].to_pylist()))
            stored = processed_text_table(
                processed_text_of_subscribers(conn, subscribers, first_day, last_day)
            )
            lap("history")
            predictions = _rows(score_history(merge_history(stored, fresh), to_score, model))
        lap("score")
        written_at = write_batch(
            conn,
            StreamBatch(
                query_id,
                batch_id,
                first_id,
                last_id,
                rows,
                len(processed),
                len(predictions),
                model.version,
            ),
            processed,
            predictions,
            written_columns(model.card.continuous_features, model.card.categorical_features),
        )
    lap("write")
    # Measurable when a load committed since the previous batch's write: this batch serves it.
    since = previous_commit or written_at
    lag = None
    if ingest_commit is not None and ingest_commit > since:
        lag = (written_at - ingest_commit).total_seconds()
    return BatchOutcome(
        batch_id,
        rows,
        len(processed),
        len(predictions),
        model.version,
        time.perf_counter() - started,
        first_id,
        last_id,
        lag,
        written_at,
        steps=steps,
    )


# --- the query -----------------------------------------------------------------------------


@dataclass
class _QueryState:
    """Shared between the driver's main thread and the micro-batch callback."""

    settings: Settings
    models: ModelCache = field(default_factory=ModelCache)
    ready: threading.Event = field(default_factory=threading.Event)
    query_id: str = ""
    summary: StreamSummary = field(default_factory=StreamSummary)
    error: BaseException | None = None
    busy: threading.Lock = field(default_factory=threading.Lock)
    previous_commit: datetime | None = None

    def on_batch(self, frame: DataFrame, batch_id: int) -> None:
        from db.errors import DatabaseError

        # `start()` returns the query's id only after Spark may have begun the first batch.
        self.ready.wait()
        with self.busy:
            try:
                outcome = process_batch(
                    frame,
                    batch_id,
                    settings=self.settings,
                    query_id=self.query_id,
                    models=self.models,
                    previous_commit=self.previous_commit,
                )
            except (SparkJobError, DatabaseError) as exc:
                self.error = exc
                raise
        if outcome.rows == 0 and not outcome.replayed:
            log.debug("%s", outcome.describe())
            return
        log.info("%s", outcome.describe())
        if not outcome.replayed:
            self.previous_commit = outcome.written_at
            self.summary.batches += 1
            self.summary.rows += outcome.rows
            self.summary.predictions += outcome.predictions
            self.summary.batch_seconds += outcome.seconds
            for step, seconds in outcome.steps.items():
                self.summary.step_seconds[step] = self.summary.step_seconds.get(step, 0) + seconds


def run_stream(
    spark: SparkSession,
    settings: Settings,
    options: StreamOptions,
    stop: threading.Event | None = None,
) -> StreamSummary:
    """Run the streaming query until ``stop`` is set (or, with ``options.once``, until the
    rows committed when it started are done).

    Raises:
        NoModelError: no model is current (checked before the query starts, and per batch).
        StreamFailedError: the query failed; the message says why.
        DatabaseError: the database failed a micro-batch.
    """
    from pyspark.errors import StreamingQueryException

    from db.connection import connection
    from spark_jobs.cdr_source import read_cdr_stream

    started = time.perf_counter()
    stop = stop or threading.Event()
    state = _QueryState(settings)
    # Loading the model and reading its trees take seconds: done here, before the query
    # starts, the first batch does not wait for them.
    with connection(settings) as conn:
        state.models.current(conn, spark)
    writer = (
        read_cdr_stream(
            spark,
            settings,
            max_rows_per_trigger=options.max_rows_per_trigger,
            num_partitions=options.num_partitions,
            starting_id=options.starting_id,
        )
        .writeStream.foreachBatch(state.on_batch)
        .option("checkpointLocation", str(options.checkpoint))
    )
    if options.once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{options.trigger_seconds} seconds")
    query = writer.start()
    state.query_id = state.summary.query_id = str(query.id)
    state.ready.set()
    log.info(
        "streaming query %s: checkpoint %s, %s, at most %s rows per batch",
        query.id,
        options.checkpoint,
        "until the rows there now are done"
        if options.once
        else f"every {options.trigger_seconds} s",
        f"{options.max_rows_per_trigger:,}",
    )
    failure: str | None = None
    try:
        while query.isActive and not stop.is_set():
            query.awaitTermination(_POLL_SECONDS)
    except StreamingQueryException as exc:
        failure = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    finally:
        if query.isActive:
            # Let a batch in progress finish its transaction, then stop between batches.
            with state.busy:
                query.stop()
    if state.error is not None:
        raise state.error
    if failure is not None:
        raise StreamFailedError(f"the streaming query failed: {failure}")
    state.summary.seconds = time.perf_counter() - started
    return state.summary


# --- the command line ----------------------------------------------------------------------


def _trigger_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above zero, not {text!r}")
    return value


def _starting_id(text: str) -> int | str:
    if text in ("latest", "earliest"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 'latest', 'earliest' or an id, not {text!r}")


def add_stream_command(commands: Any, formatter_class: Any = None) -> None:
    """Add the ``stream`` subcommand to ``python -m spark_jobs``' subparsers."""
    from config.cli import positive_int

    extra = {} if formatter_class is None else {"formatter_class": formatter_class}
    stream = commands.add_parser(
        "stream",
        help="score new CDRs as they land: a Structured Streaming query into Processed_Data "
        "and model_predictions (until Ctrl-C or SIGTERM)",
        **extra,
    )
    stream.add_argument(
        "--once",
        action="store_true",
        help="process the rows committed now, then exit (trigger availableNow)",
    )
    stream.add_argument(
        "--trigger-seconds",
        type=_trigger_seconds,
        default=None,
        help="seconds between micro-batches (default: STREAM_TRIGGER_SECONDS, 2)",
    )
    stream.add_argument(
        "--max-rows-per-trigger",
        type=positive_int,
        default=None,
        help="at most this many rows per micro-batch (default: STREAM_MAX_ROWS_PER_TRIGGER)",
    )
    stream.add_argument(
        "--starting-id",
        type=_starting_id,
        default="latest",
        help="where a query without a checkpoint starts: 'latest' (rows committed from now "
        "on), 'earliest', or after this id; a checkpoint, once written, decides instead",
    )
    stream.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs", dest="stream_verbose"
    )


def stream_main(args: argparse.Namespace) -> int:
    """Run ``python -m spark_jobs stream`` with parsed ``args``; return the exit status."""
    from config.cli import configure_logging, run

    configure_logging(
        bool(getattr(args, "stream_verbose", False) or getattr(args, "verbose", False))
    )
    return run(lambda: _stream(args))


def _stream(args: argparse.Namespace) -> int:
    from config.cli import EXIT_FAILED, EXIT_OK, fail
    from config.settings import load_settings
    from db.connection import connection, ping
    from db.models import current_model
    from spark_jobs.session import SparkSetupError, build_spark_session

    settings = load_settings()
    options = StreamOptions.from_settings(
        settings,
        once=args.once,
        trigger_seconds=args.trigger_seconds,
        max_rows_per_trigger=args.max_rows_per_trigger,
        starting_id=args.starting_id,
    )
    # Before the JVM: a stopped server or a database without a model fails in a second.
    ping(settings)
    with connection(settings) as conn:
        if current_model(conn) is None:
            return fail("no model trained yet: run `python -m spark_jobs model` first", EXIT_FAILED)
    stop = threading.Event()
    try:
        spark = build_spark_session(settings, "cdr-stream")
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            summary = run_stream(spark, settings, options, stop)
        finally:
            spark.stop()
    except (SparkJobError, SparkSetupError) as exc:
        return fail(str(exc), EXIT_FAILED)
    print(summary.describe())
    return EXIT_OK
