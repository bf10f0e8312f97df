"""Seconds and rows per second of the Spark stage on ~1M rows, side by side with its targets.

Run as ``.venv/bin/python bench/spark.py [--rows N] [--repeats K] [--keep] [--skip-model]``.
In one run, on the same data:

- **bare read**: the partitioned JDBC read of the raw rows the analysis reads, forced with
  ``count()`` (Spark then selects no column: the server only counts rows) and with a
  ``noop`` write of every column (each value fetched and decoded), the fair floor of a job
  that needs every column; both with the analysis' read partitions, the noop also with one;
- **analysis**: ``run_analysis`` over those rows with its partitioned read and with one
  partition, each run replacing the stored range as a re-run does (target: within 3x the
  noop read); one more run is taken apart step by step with the job's own functions;
- **JDBC write**: the ~1M subscriber-days of the analysis written by ``write_staged`` to a
  staging table (target >= 250k rows/s), timed up to the move-in;
- **model fit**: ``run_model`` on those subscriber-days (target <= 180 s), then **scoring**:
  ``run_score`` over the model's training dates (the dates after its test window are not in
  the data; the work per row is the same); both are run step by step with the jobs' public
  step functions (``spark_jobs.model.split_rows`` ... ``register_trained``), chained as
  the job chains them; scoring is also taken apart (see :func:`scoring_steps`) and its
  subscriber-days/s are printed against the 50k target next to the bare read of its input;
- with ``--score-only``, only the score job (:func:`benchmark_scoring`), on ~``--rows``
  subscriber-days after a model fitted on the first half of 90 generated days;
- **demo ROC-AUC**: ``run_analysis`` and ``run_model`` on the demo data (the generator's
  defaults: 3000 subscribers x 60 days from 2024-01-01) over 2024-01-01..2024-02-29, the
  processed range of ``config/config.json``: the held-out ROC-AUC of the time split. The
  demo analysis runs first and also warms the JVM up.

Every step records its wall-clock seconds and the CPU seconds of the Spark JVM, of the
MariaDB server and of the whole machine meanwhile, so a slow step shows whether it computed
or waited, and how much of the 2 cores other work took. The raw rows are generated once
into ``sparkbench_data`` and ``sparkbench_demo``, reused while their fingerprint matches the
generator's, and dropped at the end unless ``--keep``. Progress goes to stderr; the last
line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path; the project root goes in front of it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from bench.ingest import expected_fingerprint, same_fingerprint
from config.cli import positive_int
from config.settings import ConfigError, PipelineDates, Settings, load_settings
from db.connection import connection, database_exists, drop_database, server_version
from db.errors import DatabaseError, MigrationError
from db.maintenance import cdr_fingerprint, server_pid_file, staged_row_count
from db.migrate import init_database
from db.models import ANALYSIS as ANALYSIS_PERIOD
from db.models import current_model, delete_scored_range, training_fingerprint
from db.processed import (
    PROCESSED_TABLE,
    cdr_id_range,
    count_processed,
    processed_bounds,
    replace_processed_range,
)
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import seed_from_generator

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.model import ModelReport

DATA_DATABASE = "sparkbench_data"
DEMO_DATABASE = "sparkbench_demo"
DEFAULT_ROWS = 1_000_000
DAYS = 60
SEED = 42
# The generator records ~83% of subscriber-days (3% skipped days, and none after a churn).
_RECORDED_SHARE = 0.832

ANALYSIS_MAX_RATIO = 3.0
WRITE_MIN_ROWS_PER_S = 250_000.0
FIT_MAX_SECONDS = 180.0
SCORE_MIN_ROWS_PER_S = 50_000.0
# --score-only: a longer history, the model fitted on its first half, the rest scored.
SCORE_DAYS = 90
SCORE_MODEL_DAYS = 45
# Subscriber-days scored per generated subscriber in the score-only data (measured: 1,049,568
# of 24,000 subscribers; fewer than 45 days each, for churn).
_SCORED_PER_SUBSCRIBER = 1_049_568 / 24_000

BARE_COUNT = "bare_read_count"
BARE_NOOP = "bare_read_noop"
BARE_NOOP_SINGLE = "bare_read_noop_single"
ANALYSIS = "analysis_partitioned"
ANALYSIS_SINGLE = "analysis_single_partition"
JDBC_WRITE = "jdbc_write"
MODEL_FIT = "model_fit"
SCORING = "scoring"
SCORING_REPLACE = "scoring_replace"
BARE_PROCESSED = "bare_read_processed"

_T = TypeVar("_T")


class BenchError(Exception):
    """The benchmark cannot run, or a step stored the wrong number of rows."""


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the tables and the JSON line."""
    print(message, file=sys.stderr, flush=True)


# --- CPU accounting -------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a local process so far, or None if it cannot be read."""
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name start at field 3; utime and stime are 14, 15.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of all cores so far (everything but idle and I/O wait)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS


@dataclass(frozen=True)
class Usage:
    """Wall-clock seconds of one step and the CPU seconds spent meanwhile."""

    seconds: float
    # The Spark JVM: driver and local executors, JIT and GC included.
    spark_cpu: float | None
    # The MariaDB server, every client's statements included.
    server_cpu: float | None
    # All processes on all cores; minus the two above, what other work took.
    machine_cpu: float | None
    load_average: float

    @property
    def other_cpu(self) -> float | None:
        """CPU seconds of everything but Spark and MariaDB (this script, other users)."""
        if self.machine_cpu is None or self.spark_cpu is None or self.server_cpu is None:
            return None
        return max(0.0, self.machine_cpu - self.spark_cpu - self.server_cpu)

    def as_dict(self) -> dict[str, Any]:
        """Rounded figures for the JSON line."""
        values = {**asdict(self), "other_cpu": self.other_cpu}
        return {k: None if v is None else round(v, 3) for k, v in values.items()}


class CpuMeter:
    """Times calls and charges the CPU seconds of Spark, MariaDB and the machine to them."""

    def __init__(self, spark_pid: int | None, server_pid: int | None) -> None:
        self.spark_pid = spark_pid
        self.server_pid = server_pid

    def _sample(self) -> tuple[float, float | None, float | None, float | None]:
        return (
            time.perf_counter(),
            process_cpu_seconds(self.spark_pid),
            process_cpu_seconds(self.server_pid),
            machine_cpu_seconds(),
        )

    def run(self, step: Callable[[], _T]) -> tuple[_T, Usage]:
        """``step()`` and what it cost."""
        before = self._sample()
        result = step()
        after = self._sample()
        spent = [_difference(a, b) for a, b in zip(after, before, strict=True)]
        return result, Usage(
            seconds=spent[0] or 0.0,
            spark_cpu=spent[1],
            server_cpu=spent[2],
            machine_cpu=spent[3],
            load_average=os.getloadavg()[0],
        )


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def server_pid(settings: Settings) -> int | None:
    """The pid of the MariaDB server when it runs on this machine (else None)."""
    with connection(settings) as conn:
        pid_file = Path(server_pid_file(conn))
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


# --- Figures ----------------------------------------------------------------------------------


@dataclass
class Timing:
    """Repeated runs of one step over the same rows."""

    key: str
    label: str
    rows: int
    runs: list[Usage] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Median wall-clock seconds over the runs."""
        return statistics.median(run.seconds for run in self.runs)

    @property
    def rows_per_second(self) -> float:
        """Rows over the median seconds."""
        return self.rows / self.seconds

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the runs' seconds; None for a single run."""
        if len(self.runs) < 2:
            return None
        seconds = [run.seconds for run in self.runs]
        return (max(seconds) - min(seconds)) / self.seconds

    def median_cpu(self, name: str) -> float | None:
        """Median over the runs of one CPU figure of :class:`Usage`."""
        values = [getattr(run, name) for run in self.runs]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def as_dict(self) -> dict[str, Any]:
        """Every figure of the step for the JSON line."""
        return {
            "label": self.label,
            "rows": self.rows,
            "runs": len(self.runs),
            "seconds_median": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_second, 1),
            "spread": None if self.spread is None else round(self.spread, 4),
            "per_run": [run.as_dict() for run in self.runs],
        }


@dataclass(frozen=True)
class Target:
    """One target of the issue and the figure measured against it."""

    key: str
    label: str
    measured: float
    limit: float
    unit: str
    at_least: bool

    @property
    def ratio(self) -> float:
        """Measured over the limit: above 1 misses an upper bound, below 1 a lower bound."""
        return self.measured / self.limit

    @property
    def met(self) -> bool:
        """Whether the measured figure is on the right side of the limit."""
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    def as_dict(self) -> dict[str, Any]:
        """The target for the JSON line."""
        return {
            "label": self.label,
            "measured": round(self.measured, 3),
            "limit": self.limit,
            "unit": self.unit,
            "ratio_to_target": round(self.ratio, 4),
            "met": self.met,
        }


@dataclass(frozen=True)
class Step:
    """One step of a run taken apart."""

    label: str
    usage: Usage


# --- Data -------------------------------------------------------------------------------------


def subscribers_for(rows: int) -> int:
    """Subscribers whose ``DAYS`` days of generated history hold about ``rows`` records."""
    return max(1, round(rows / (DAYS * _RECORDED_SHARE)))


def generated_dates(config: GeneratorConfig) -> PipelineDates:
    """The whole generated range as both the raw and the processed range."""
    first = config.start_date
    last = first + timedelta(days=config.days - 1)
    return PipelineDates.model_validate(
        {
            "start_date": str(first),
            "end_date": str(last),
            "processed_start": str(first),
            "processed_end": str(last),
        }
    )


def ensure_seeded(settings: Settings, config: GeneratorConfig) -> tuple[int, bool]:
    """``DB_NAME`` holding exactly ``config``'s generated rows; (rows, whether reused).

    A database whose raw rows differ from the generator's, or whose applied migrations no
    longer match the files, is dropped and seeded again.

    Raises:
        BenchError: the rows stored after seeding are not the generated ones.
    """
    expected = expected_fingerprint([generate_cdr(config)])
    if database_exists(settings):
        try:
            init_database(settings)
            with connection(settings) as conn:
                if same_fingerprint(cdr_fingerprint(conn), expected):
                    return expected.rows, True
        except MigrationError:
            pass
        progress(f"{settings.db_name}: stale rows or schema; seeding it again")
        drop_database(settings)
    init_database(settings)
    seed_from_generator(settings, config, progress=False)
    with connection(settings) as conn:
        actual = cdr_fingerprint(conn)
    if not same_fingerprint(actual, expected):
        raise BenchError(f"{settings.db_name}: seeded rows differ from the generated ones")
    return expected.rows, False


# --- Steps ------------------------------------------------------------------------------------


def read_partitions(settings: Settings, raw_rows: int) -> int:
    """The read partitions `run_analysis` chooses for ``raw_rows`` (the job's own rule)."""
    return min(settings.jdbc_read_partitions, max(1, raw_rows // 50_000 + 1))


def bare_read(
    spark: SparkSession, settings: Settings, dates: PipelineDates, partitions: int, kind: str
) -> Callable[[], int]:
    """A step reading the raw rows of ``dates`` as the analysis does, forced by ``kind``."""
    from spark_jobs.io import read_cdr_range

    start, end = dates.start_date, dates.end_date
    with connection(settings) as conn:
        bounds = cdr_id_range(conn, start, end)
    if bounds is None:
        raise BenchError(f"{settings.db_name} has no raw rows from {start} to {end}")
    low, high, rows = bounds

    def step() -> int:
        frame = read_cdr_range(spark, settings, start, end, (low, high), partitions)
        if kind == "count":
            return frame.count()
        frame.write.format("noop").mode("overwrite").save()
        return rows

    return step


def profile_analysis(
    spark: SparkSession, settings: Settings, dates: PipelineDates, meter: CpuMeter
) -> tuple[list[Step], int, str]:
    """One analysis run taken apart: the steps of `run_analysis`, timed one by one.

    The job materialises its cached aggregate while writing the Parquet snapshot; here a
    ``count()`` does it first, so reading and aggregating is timed apart from the snapshot.
    Returns the steps, the subscriber-days stored and the snapshot's path.
    """
    from spark_jobs.io import read_cdr_range, write_staged
    from spark_jobs.session import shuffle_partitions_for
    from spark_jobs.transforms import aggregate_daily, clean_cdr

    start, end = dates.start_date, dates.end_date
    with connection(settings) as conn:
        bounds = cdr_id_range(conn, start, end)
    if bounds is None:
        raise BenchError(f"{settings.db_name} has no raw rows from {start} to {end}")
    low, high, raw_rows = bounds
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(raw_rows, settings)))
    partitions = read_partitions(settings, raw_rows)
    steps: list[Step] = []

    def timed(label: str, step: Callable[[], _T]) -> _T:
        result, usage = meter.run(step)
        steps.append(Step(label, usage))
        return result

    raw = read_cdr_range(spark, settings, start, end, (low, high), partitions)
    processed = aggregate_daily(clean_cdr(raw)).cache()
    try:
        rows = timed("read + clean + aggregate (cached)", processed.count)
        parquet = Path(settings.output_dir) / "processed" / f"{start}_{end}"
        timed(
            "Parquet snapshot (from the cache)",
            lambda: processed.write.mode("overwrite").parquet(str(parquet)),
        )
        marks: dict[str, float] = {}

        def move_in(conn: Any, staging: str) -> int:
            marks["written"] = time.perf_counter()
            stored = replace_processed_range(conn, staging, start=start, end=end)
            marks["moved"] = time.perf_counter()
            return stored

        began = time.perf_counter()
        stored, usage = meter.run(
            lambda: write_staged(processed, settings, PROCESSED_TABLE, move_in)
        )
        finished = began + usage.seconds
        # One meter reading covers the whole call; its CPU is split in proportion to time.
        for label, seconds in (
            ("JDBC write to the staging table", marks["written"] - began),
            ("move-in: delete range + INSERT..SELECT", marks["moved"] - marks["written"]),
            ("drop the staging table", finished - marks["moved"]),
        ):
            steps.append(Step(label, _share_of(usage, seconds)))
    finally:
        processed.unpersist()
    if stored != rows:
        raise BenchError(f"the move-in stored {stored} rows; the aggregate has {rows}")
    return steps, rows, str(parquet)


def _share_of(usage: Usage, seconds: float) -> Usage:
    share = seconds / usage.seconds if usage.seconds else 0.0

    def part(value: float | None) -> float | None:
        return None if value is None else value * share

    return Usage(
        seconds=seconds,
        spark_cpu=part(usage.spark_cpu),
        server_cpu=part(usage.server_cpu),
        machine_cpu=part(usage.machine_cpu),
        load_average=usage.load_average,
    )


def staged_write(frame: DataFrame, settings: Settings, expected_rows: int) -> Callable[[], float]:
    """A step writing ``frame`` with `write_staged`; it returns the seconds up to the move-in.

    The move-in only counts the staged rows, so the staging table is dropped untouched.
    """
    from spark_jobs.io import write_staged

    def step() -> float:
        marks: dict[str, float] = {}

        def count_staged(conn: Any, staging: str) -> int:
            marks["written"] = time.perf_counter()
            return staged_row_count(conn, staging)

        began = time.perf_counter()
        staged = write_staged(frame, settings, PROCESSED_TABLE, count_staged)
        if staged != expected_rows:
            raise BenchError(f"the JDBC write staged {staged} rows of {expected_rows}")
        return marks["written"] - began

    return step


def timed_model(
    spark: SparkSession, settings: Settings, dates: PipelineDates, meter: CpuMeter
) -> tuple[ModelReport, Usage, list[tuple[str, float]]]:
    """The model job's public steps, chained as `run_model` chains them, each timed.

    Returns the report, the whole run's usage and the wall seconds of each step.
    """
    from pyspark.sql import functions as F

    from spark_jobs import model as job
    from spark_jobs.artifacts import save_model
    from spark_jobs.io import read_processed
    from spark_jobs.session import shuffle_partitions_for
    from spark_jobs.storage import join

    steps: list[tuple[str, float]] = []

    def timed(label: str, step: Callable[[], _T]) -> _T:
        result, usage = meter.run(step)
        steps.append((label, usage.seconds))
        return result

    def run() -> ModelReport:
        began = time.perf_counter()
        start, end = dates.processed_start, dates.processed_end
        with connection(settings) as conn:
            available = count_processed(conn, start, end)
            fingerprint = training_fingerprint(conn, start, end)
            _, last, _ = processed_bounds(conn)
        if available == 0 or last is None:
            raise BenchError(f"{settings.db_name} has no processed rows from {start} to {end}")
        partitions = shuffle_partitions_for(available, settings)
        spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        params = job.training_params(settings, dates, last)
        version = job.model_version(settings, dates, fingerprint)
        processed = read_processed(spark, settings, start, end)
        features = job.labelled_features(processed, start, params.min_history_days)
        split = timed("features + split (distinct dates)", lambda: job.split_rows(features, params))
        labelled, windows = split[0].cache(), split[1]
        try:
            counts = timed(
                "features again + cache + counts per part", lambda: job.count_parts(labelled)
            )
            fit = job.fitting_rows(labelled, counts, params).cache()
            forest = timed(
                "cross-validation + refit of the best forest",
                lambda: job.tune_forest(fit, counts.rows["fit"], params),
            )
            fit.unpersist()
            calibration = labelled.where(~F.col("_test") & F.col("_calibration"))
            card = timed(
                "calibration (score + Platt + threshold)",
                lambda: job.calibrate(forest.pipeline, calibration, version, params),
            )
            test = labelled.where(F.col("_test"))
            evaluation = timed(
                "test scoring + metrics", lambda: job.evaluate_model(forest.pipeline, card, test)
            )
        finally:
            labelled.unpersist()
        trained = job.TrainedModel(version, params, windows, counts, forest, card, evaluation)
        folder = join(settings.model_dir, version)
        try:
            timed(
                "save the pipeline",
                lambda: save_model(folder, forest.pipeline, card, trained.summary()),
            )
            reference = timed(
                "write reference predictions + register",
                lambda: job.register_trained(settings, trained, folder),
            )
        finally:
            trained.release()
        return job.ModelReport.of(trained, folder, reference, time.perf_counter() - began)

    report, usage = meter.run(run)
    steps.append(("read, counts, the rest", usage.seconds - sum(s for _, s in steps)))
    return report, usage, steps


def scoring_steps(
    spark: SparkSession,
    settings: Settings,
    start: date | None,
    end: date | None,
    meter: CpuMeter,
    results: Results,
    repeats: int,
) -> None:
    """Time the score job over [start, end] (its defaults when None) into ``results``.

    - the bare read of the `Processed_Data` rows scoring reads (27 days of windows before
      ``start`` included), a ``noop`` write of every column: the floor of the job;
    - one run taken apart: the job's public steps chained as `run_score` chains them, each
      prefix forced by a ``noop`` write (its cost is the increase over the previous line),
      then `store_scores` into the empty range and once more over the stored rows;
    - ``repeats`` runs of `run_score` into the empty range (the range is deleted before
      each) and as many re-scores that replace it.
    """
    from pyspark.sql import functions as F

    from spark_jobs import scoring as job
    from spark_jobs.artifacts import load_model
    from spark_jobs.features import build_features
    from spark_jobs.io import read_processed
    from spark_jobs.session import shuffle_partitions_for

    with connection(settings) as conn:
        record = current_model(conn)
        _, last, _ = processed_bounds(conn)
    model, first, last_day = job.plan_score(record, last, start, end)
    pipeline, card = load_model(model.path)
    reading = job.reading_start(card, first)
    with connection(settings) as conn:
        rows_read = count_processed(conn, reading, last_day)
        delete_scored_range(conn, model.version, first, last_day)
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(rows_read, settings)))

    def processed() -> DataFrame:
        return read_processed(spark, settings, reading, last_day)

    def rows() -> DataFrame:
        features = build_features(processed(), reading, card.min_history_days)
        in_range = features.where(F.col("Date").between(F.lit(first), F.lit(last_day)))
        return job.prediction_rows(
            job.predict(pipeline, card, in_range), card, ANALYSIS_PERIOD, keep_label=False
        )

    def noop(frame: Callable[[], DataFrame]) -> Callable[[], None]:
        return lambda: frame().write.format("noop").mode("overwrite").save()

    label = f"bare read: Processed_Data noop ({rows_read:,} rows)"
    meter.run(noop(processed))  # warm-up
    for _ in range(repeats):
        _, usage = meter.run(noop(processed))
        results.timing(BARE_PROCESSED, label, rows_read).runs.append(usage)

    def store() -> int:
        return job.store_scores(
            settings,
            job.score_rows(processed(), pipeline, card, first, last_day),
            model.version,
            first,
            last_day,
        )

    profile: list[tuple[str, Callable[[], Any]]] = [
        ("read Processed_Data", noop(processed)),
        (
            "+ build_features (all days read)",
            noop(lambda: build_features(processed(), reading, card.min_history_days)),
        ),
        ("+ predict + prediction_rows (range)", noop(rows)),
        ("+ in_key_order (one sorted partition)", noop(lambda: job.in_key_order(rows()))),
        ("+ store_scores, empty range (all steps)", store),
        ("store_scores replacing the stored range", store),
    ]
    for step_label, step in profile:
        _, usage = meter.run(step)
        results.score_steps.append(Step(step_label, usage))
        progress(f"  {step_label}: {usage.seconds:.2f} s")

    scored = 0
    for repeat in range(repeats):
        with connection(settings) as conn:
            delete_scored_range(conn, model.version, first, last_day)
        report, usage = meter.run(lambda: job.run_score(spark, settings, first, last_day))
        scored = report.rows
        results.timing(SCORING, f"scoring: run_score {first}..{last_day}", report.rows).runs.append(
            usage
        )
        progress(f"  {repeat + 1}/{repeats} run_score, new range: {usage.seconds:.2f} s")
        report, usage = meter.run(lambda: job.run_score(spark, settings, first, last_day))
        results.timing(
            SCORING_REPLACE, "scoring: run_score again (replaces)", report.rows
        ).runs.append(usage)
        progress(f"  {repeat + 1}/{repeats} run_score, replacing: {usage.seconds:.2f} s")
    results.extra["scoring"] = {
        "model_version": model.version,
        "start": str(first),
        "end": str(last_day),
        "reading_start": str(reading),
        "rows_read": rows_read,
        "rows_scored": scored,
    }


# --- Report -----------------------------------------------------------------------------------


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def timing_table(timings: Sequence[Timing], bare: Timing) -> str:
    """Median seconds and rows/s of every timed step, and each as a multiple of the bare read."""
    header = (
        f"{'step':<46} {'rows':>9} {'runs':>4} {'seconds':>8} {'spread':>6} {'rows/s':>10} "
        f"{'x noop read':>11} {'spark cpu':>9} {'db cpu':>6} {'other cpu':>9}"
    )
    lines = [header, "-" * len(header)]
    for timing in timings:
        spread = "-" if timing.spread is None else f"{timing.spread:.0%}"
        lines.append(
            f"{timing.label:<46} {timing.rows:>9,} {len(timing.runs):>4} "
            f"{timing.seconds:>8.2f} {spread:>6} {timing.rows_per_second:>10,.0f} "
            f"{timing.seconds / bare.seconds:>10.2f}x "
            f"{_cpu(timing.median_cpu('spark_cpu')):>9} "
            f"{_cpu(timing.median_cpu('server_cpu')):>6} "
            f"{_cpu(timing.median_cpu('other_cpu')):>9}"
        )
    lines.append(
        "seconds = median wall clock; cpu = median CPU seconds of the Spark JVM, the MariaDB "
        "server and everything else (other users included) during the step."
    )
    return "\n".join(lines)


def steps_table(title: str, steps: Sequence[Step], total: float) -> str:
    """The steps of one run: seconds, share of the run, CPU seconds."""
    header = (
        f"{title:<46} {'seconds':>8} {'share':>6} {'spark cpu':>9} {'db cpu':>6} "
        f"{'other cpu':>9} {'load':>5}"
    )
    lines = [header, "-" * len(header)]
    for step in steps:
        usage = step.usage
        lines.append(
            f"{step.label:<46} {usage.seconds:>8.2f} {usage.seconds / total:>6.0%} "
            f"{_cpu(usage.spark_cpu):>9} {_cpu(usage.server_cpu):>6} "
            f"{_cpu(usage.other_cpu):>9} {usage.load_average:>5.1f}"
        )
    lines.append(f"{'total':<46} {sum(s.usage.seconds for s in steps):>8.2f}")
    return "\n".join(lines)


def breakdown_table(title: str, steps: Sequence[tuple[str, float]], total: float) -> str:
    """Seconds and share of each step of a run measured by wrapped calls."""
    header = f"{title:<46} {'seconds':>8} {'share':>6}"
    lines = [header, "-" * len(header)]
    lines += [f"{label:<46} {seconds:>8.1f} {seconds / total:>6.0%}" for label, seconds in steps]
    lines.append(f"{'total':<46} {total:>8.1f}")
    return "\n".join(lines)


def scoring_line(bare: Timing, scoring: Timing) -> str:
    """The scoring rate next to the bare read of its input and the target."""
    return (
        f"scoring: {scoring.rows_per_second:,.0f} subscriber-days/s "
        f"(target >= {SCORE_MIN_ROWS_PER_S:,.0f}: "
        f"{'met' if scoring.rows_per_second >= SCORE_MIN_ROWS_PER_S else 'MISSED'}) | "
        f"bare read of its {bare.rows:,} input rows: {bare.rows_per_second:,.0f} rows/s | "
        f"run_score = {scoring.seconds / bare.seconds:.1f}x the bare read"
    )


def cumulative_table(title: str, steps: Sequence[Step]) -> str:
    """Runs of growing prefixes of a job: each line's cost and its increase over the last."""
    header = (
        f"{title:<46} {'seconds':>8} {'+seconds':>8} {'spark cpu':>9} {'+spark':>7} "
        f"{'db cpu':>6} {'load':>5}"
    )
    lines = [header, "-" * len(header)]
    previous: Usage | None = None
    for step in steps:
        usage = step.usage
        more = "-" if previous is None else f"{usage.seconds - previous.seconds:+.2f}"
        more_cpu = (
            "-"
            if previous is None or usage.spark_cpu is None or previous.spark_cpu is None
            else f"{usage.spark_cpu - previous.spark_cpu:+.1f}"
        )
        lines.append(
            f"{step.label:<46} {usage.seconds:>8.2f} {more:>8} {_cpu(usage.spark_cpu):>9} "
            f"{more_cpu:>7} {_cpu(usage.server_cpu):>6} {usage.load_average:>5.1f}"
        )
        previous = usage
    lines.append("+ = increase over the line above (the cost of the step it adds).")
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    """Each target, the measured figure, the ratio to the target and pass/fail."""
    header = f"{'target':<46} {'measured':>12} {'limit':>12} {'ratio':>7} {'result':>6}"
    lines = [header, "-" * len(header)]
    for target in targets:
        sign = ">=" if target.at_least else "<="
        lines.append(
            f"{target.label:<46} {target.measured:>12,.2f} {sign} {target.limit:>9,.1f} "
            f"{target.ratio:>6.2f}x {'pass' if target.met else 'FAIL':>6}"
        )
    lines.append("ratio = measured / limit (units as in the label).")
    return "\n".join(lines)


def model_summary(label: str, report: ModelReport) -> dict[str, Any]:
    """The model report's figures for the JSON line."""
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in report.metrics.items()}
    return {
        "label": label,
        "seconds": round(report.seconds, 2),
        "rows": report.rows,
        "params": report.params,
        "metrics": metrics,
        "windows": {k: str(v) for k, v in asdict(report.windows).items()},
        "reference_rows": report.reference_rows,
        "cross_validation": report.cross_validation,
    }


# --- The run ----------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured, filled in as the run goes."""

    timings: dict[str, Timing] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    model_steps: list[tuple[str, float]] = field(default_factory=list)
    score_steps: list[Step] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def timing(self, key: str, label: str, rows: int) -> Timing:
        """The timing of ``key``, created on first use."""
        return self.timings.setdefault(key, Timing(key, label, rows))


def benchmark(
    spark: SparkSession,
    data: Settings,
    demo: Settings,
    demo_dates: PipelineDates,
    data_dates: PipelineDates,
    args: argparse.Namespace,
) -> Results:
    """Run every step on the seeded databases; return the figures."""
    from spark_jobs.analysis import run_analysis
    from spark_jobs.model import run_model

    results = Results()
    meter = CpuMeter(int(spark.sparkContext._jvm.ProcessHandle.current().pid()), server_pid(data))  # type: ignore[union-attr]

    progress("demo analysis (also warms the JVM up) ...")
    demo_analysis, usage = meter.run(lambda: run_analysis(spark, demo, demo_dates))
    results.extra["demo_analysis"] = {**demo_analysis.as_dict(), "usage": usage.as_dict()}

    with connection(data) as conn:
        bounds = cdr_id_range(conn, data_dates.start_date, data_dates.end_date)
    if bounds is None:
        raise BenchError(f"{data.db_name} holds no raw rows")
    raw_rows = bounds[2]
    partitions = read_partitions(data, raw_rows)
    single = data.model_copy(update={"jdbc_read_partitions": 1})
    reads = [
        (BARE_COUNT, f"bare read: count() ({partitions} partitions)", partitions, "count"),
        (BARE_NOOP, f"bare read: noop, all columns ({partitions} part.)", partitions, "noop"),
        (BARE_NOOP_SINGLE, "bare read: noop, all columns (1 partition)", 1, "noop"),
    ]
    progress("bare reads ...")
    for _, _, parts, kind in reads:
        meter.run(bare_read(spark, data, data_dates, parts, kind))  # warm-up
    for repeat in range(args.repeats):
        for key, label, parts, kind in reads:
            rows, usage = meter.run(bare_read(spark, data, data_dates, parts, kind))
            if rows != raw_rows:
                raise BenchError(f"{label} read {rows} rows of {raw_rows}")
            results.timing(key, label, raw_rows).runs.append(usage)
            progress(f"  {repeat + 1}/{args.repeats} {label}: {usage.seconds:.2f} s")

    if not args.skip_profile:
        progress("analysis taken apart step by step ...")
        results.steps, processed_rows, parquet = profile_analysis(spark, data, data_dates, meter)
    else:
        processed_rows, parquet = 0, ""

    progress("analysis runs (each replaces the stored range) ...")
    variants = [
        (ANALYSIS, f"analysis: run_analysis ({partitions} read partitions)", data),
        (ANALYSIS_SINGLE, "analysis: run_analysis (1 read partition)", single),
    ]
    for repeat in range(args.repeats):
        # Alternating the order keeps drift (buffer pool, purge, other users) off one side.
        for key, label, settings in variants if repeat % 2 == 0 else variants[::-1]:
            analysis, usage = meter.run(partial(run_analysis, spark, settings, data_dates))
            results.timing(key, label, analysis.raw_rows).runs.append(usage)
            processed_rows, parquet = analysis.processed_rows, analysis.parquet_path
            progress(f"  {repeat + 1}/{args.repeats} {label}: {usage.seconds:.2f} s")
    results.extra["processed_rows"] = processed_rows

    progress("JDBC writes of the subscriber-days ...")
    snapshot = spark.read.parquet(parquet).cache()
    try:
        if snapshot.count() != processed_rows:
            raise BenchError(f"{parquet} does not hold the {processed_rows} subscriber-days")
        writers = min(data.jdbc_write_partitions, snapshot.rdd.getNumPartitions())
        label = f"JDBC write to staging ({writers} writers)"
        meter.run(staged_write(snapshot, data, processed_rows))  # warm-up
        for repeat in range(args.repeats):
            written, usage = meter.run(staged_write(snapshot, data, processed_rows))
            # Up to the move-in: creating, counting and dropping the table are not writing.
            results.timing(JDBC_WRITE, label, processed_rows).runs.append(_share_of(usage, written))
            progress(f"  {repeat + 1}/{args.repeats} {label}: {written:.2f} s")
    finally:
        snapshot.unpersist()

    if args.skip_model:
        return results
    progress("model on the ~1M subscriber-days ...")
    model, usage, results.model_steps = timed_model(spark, data, data_dates, meter)
    results.timing(MODEL_FIT, "model fit: run_model (subscriber-days read)", processed_rows)
    results.timings[MODEL_FIT].runs.append(usage)
    results.models["data"] = model_summary(f"{data.db_name}, time split", model)
    progress(f"  run_model: {usage.seconds:.1f} s, ROC-AUC {model.metrics['roc_auc']:.3f}")

    progress("scoring the model's training dates ...")
    start, end = model.windows.train_start, model.windows.train_end
    scoring_steps(spark, data, start, end, meter, results, 1)

    progress("model on the demo data ...")
    demo_report, usage = meter.run(lambda: run_model(spark, demo, demo_dates))
    results.models["demo"] = model_summary(f"{demo.db_name} (demo data), time split", demo_report)
    results.extra["demo_model_usage"] = usage.as_dict()
    return results


def targets_of(results: Results) -> list[Target]:
    """The issue's targets that this run measured."""
    timings = results.timings
    targets: list[Target] = []
    if ANALYSIS in timings:
        targets += analysis_targets(timings)
    if MODEL_FIT in timings:
        targets.append(
            Target(
                "model_fit_seconds",
                "model fit (run_model), s",
                timings[MODEL_FIT].seconds,
                FIT_MAX_SECONDS,
                "s",
                at_least=False,
            )
        )
    if SCORING in timings:
        targets.append(
            Target(
                "scoring_rows_per_s",
                "scoring (run_score, new range), rows/s",
                timings[SCORING].rows_per_second,
                SCORE_MIN_ROWS_PER_S,
                "subscriber-days/s",
                at_least=True,
            )
        )
    return targets


def analysis_targets(timings: dict[str, Timing]) -> list[Target]:
    """The analysis' and the JDBC write's targets."""
    bare = timings[BARE_NOOP]
    return [
        Target(
            "analysis_vs_noop_read",
            f"analysis / noop read, x (<= {ANALYSIS_MAX_RATIO:g}x)",
            timings[ANALYSIS].seconds / bare.seconds,
            ANALYSIS_MAX_RATIO,
            "x bare read",
            at_least=False,
        ),
        Target(
            "analysis_vs_count_read",
            f"analysis / count() read, x (<= {ANALYSIS_MAX_RATIO:g}x)",
            timings[ANALYSIS].seconds / timings[BARE_COUNT].seconds,
            ANALYSIS_MAX_RATIO,
            "x bare read",
            at_least=False,
        ),
        Target(
            "jdbc_write_rows_per_s",
            "JDBC write, rows/s",
            timings[JDBC_WRITE].rows_per_second,
            WRITE_MIN_ROWS_PER_S,
            "rows/s",
            at_least=True,
        ),
    ]


def print_report(results: Results) -> list[Target]:
    """Print the tables; return the targets."""
    order = [
        BARE_COUNT,
        BARE_NOOP,
        BARE_NOOP_SINGLE,
        ANALYSIS,
        ANALYSIS_SINGLE,
        JDBC_WRITE,
        MODEL_FIT,
        BARE_PROCESSED,
        SCORING,
        SCORING_REPLACE,
    ]
    timings = [results.timings[key] for key in order if key in results.timings]
    bare = results.timings.get(BARE_NOOP) or results.timings[BARE_PROCESSED]
    print(timing_table(timings, bare))
    if BARE_PROCESSED in results.timings and SCORING in results.timings:
        print()
        print(scoring_line(results.timings[BARE_PROCESSED], results.timings[SCORING]))
    if results.steps:
        print()
        total = sum(step.usage.seconds for step in results.steps)
        print(steps_table("analysis, one run taken apart", results.steps, total))
    if results.model_steps:
        print()
        total = results.timings[MODEL_FIT].seconds
        print(breakdown_table("run_model, by step (its public steps)", results.model_steps, total))
    if results.score_steps:
        print()
        print(cumulative_table("run_score taken apart (each line a run)", results.score_steps))
    for model in results.models.values():
        m = model["metrics"]
        print(
            f"\nmodel on {model['label']}: {model['rows']['fit']:,} fit / "
            f"{model['rows']['calibration']:,} calibration / {model['rows']['test']:,} test rows, "
            f"{model['params']}: test ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, "
            f"F1 {m['f1']:.3f} ({model['seconds']:.1f} s)"
        )
    targets = targets_of(results)
    print()
    print(targets_table(targets))
    return targets


def figures(
    results: Results,
    targets: Sequence[Target],
    args: argparse.Namespace,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """Every figure of the run, for the closing JSON line."""
    return {
        "benchmark": "bench/spark.py",
        "rows_requested": args.rows,
        "repeats": args.repeats,
        "timings": {key: timing.as_dict() for key, timing in results.timings.items()},
        "analysis_steps": [{"step": step.label, **step.usage.as_dict()} for step in results.steps],
        "model_steps": [
            {"step": label, "seconds": round(seconds, 2)} for label, seconds in results.model_steps
        ],
        "score_steps": [
            {"step": step.label, **step.usage.as_dict()} for step in results.score_steps
        ],
        "models": results.models,
        "targets": {target.key: target.as_dict() for target in targets},
        "all_targets_met": all(target.met for target in targets),
        **results.extra,
        **environment,
    }


def environment_of(
    spark: SparkSession, settings: Settings, seeded: dict[str, Any]
) -> dict[str, Any]:
    """The settings and versions that shape the figures."""
    with connection(settings) as conn:
        version = server_version(conn)
    return {
        "data": seeded,
        "spark_version": spark.version,
        "spark_master": settings.spark_master,
        "spark_driver_memory": settings.spark_driver_memory,
        "jdbc_jar": str(settings.jdbc_jar.resolve()),
        "jdbc_fetch_size": settings.jdbc_fetch_size,
        "jdbc_batch_size": settings.jdbc_batch_size,
        "jdbc_read_partitions": settings.jdbc_read_partitions,
        "jdbc_write_partitions": settings.jdbc_write_partitions,
        "server_version": version,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: rows, repeats, which parts to run, whether to keep the databases."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rows",
        type=positive_int,
        default=DEFAULT_ROWS,
        help="raw rows, about; with --score-only, subscriber-days to score (1M)",
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats (3)")
    parser.add_argument("--keep", action="store_true", help="keep the databases for the next run")
    parser.add_argument(
        "--skip-model", action="store_true", help="leave out the models and the scoring"
    )
    parser.add_argument(
        "--skip-profile", action="store_true", help="leave out the step-by-step analysis run"
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help=(
            f"time only the score job, on {SCORE_DAYS} days of history: the analysis and a "
            f"model on the first {SCORE_MODEL_DAYS} days run once (reused with --keep and "
            "--workdir), then the later days are scored"
        ),
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the models and Parquet output, kept (default: a temporary one)",
    )
    parser.add_argument(
        "--db-prefix",
        default="sparkbench",
        help="the bench creates and drops only databases named <prefix>_* (sparkbench)",
    )
    parser.add_argument("--database", default=None, help="database of the ~1M rows (<prefix>_data)")
    parser.add_argument(
        "--demo-database", default=None, help="database of the demo (<prefix>_demo)"
    )
    args = parser.parse_args(argv)
    if args.score_only and args.database is None:
        args.database = f"{args.db_prefix}_score"
    args.database = args.database or f"{args.db_prefix}_data"
    args.demo_database = args.demo_database or f"{args.db_prefix}_demo"
    for name in (args.database, args.demo_database):
        if not name.startswith(f"{args.db_prefix}_"):
            parser.error(
                f"{name}: the bench only creates and drops databases named {args.db_prefix}_*"
            )
    return args


def score_only_config(rows: int) -> GeneratorConfig:
    """Generated history whose days after the model's half hold about ``rows`` to score."""
    subscribers = max(1, round(rows / _SCORED_PER_SUBSCRIBER))
    return GeneratorConfig(subscribers=subscribers, days=SCORE_DAYS, seed=SEED)


def score_only_dates(config: GeneratorConfig) -> PipelineDates:
    """The whole range for the analysis; the first ``SCORE_MODEL_DAYS`` for the model."""
    whole = generated_dates(config)
    return whole.model_copy(
        update={"processed_end": config.start_date + timedelta(days=SCORE_MODEL_DAYS - 1)}
    )


def benchmark_scoring(
    spark: SparkSession, data: Settings, dates: PipelineDates, args: argparse.Namespace
) -> Results:
    """The score job alone: its input, analysis and model made once, then timed runs."""
    from spark_jobs import storage
    from spark_jobs.analysis import run_analysis
    from spark_jobs.model import run_model

    results = Results()
    meter = CpuMeter(int(spark.sparkContext._jvm.ProcessHandle.current().pid()), server_pid(data))  # type: ignore[union-attr]
    with connection(data) as conn:
        _, _, processed = processed_bounds(conn)
        model = current_model(conn)
    if processed == 0:
        progress("analysis of the whole history (once) ...")
        run_analysis(spark, data, dates)
    if model is None or not storage.is_dir(model.path):
        progress(f"model on the first {SCORE_MODEL_DAYS} days (once) ...")
        report = run_model(spark, data, dates)
        results.models["data"] = model_summary(f"{data.db_name}, time split", report)
    progress("scoring the days after the model's test window ...")
    scoring_steps(spark, data, None, None, meter, results, args.repeats)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every step stored what it should (targets met or not), else 1."""
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sparkbench_"))
    if args.score_only:
        data_config = score_only_config(args.rows)
    else:
        data_config = GeneratorConfig(subscribers=subscribers_for(args.rows), days=DAYS, seed=SEED)
    demo_config = GeneratorConfig()
    try:
        base = load_settings(output_dir=workdir / "output", model_dir=workdir / "models")
        data = base.model_copy(update={"db_name": args.database})
        demo = base.model_copy(
            update={"db_name": args.demo_database, "output_dir": workdir / "demo-output"}
        )
    except ConfigError as exc:
        progress(f"bench/spark.py: {exc}")
        return 1
    spark = None
    seeding = (
        [(data, data_config)] if args.score_only else [(data, data_config), (demo, demo_config)]
    )
    try:
        seeded: dict[str, Any] = {}
        for settings, config in seeding:
            began = time.perf_counter()
            rows, reused = ensure_seeded(settings, config)
            seeded[settings.db_name] = {
                "rows": rows,
                "subscribers": config.subscribers,
                "days": config.days,
                "reused": reused,
                "seconds": round(time.perf_counter() - began, 2),
            }
            progress(
                f"{settings.db_name}: {rows:,} raw rows "
                f"{'reused' if reused else 'seeded'} ({seeded[settings.db_name]['seconds']} s)"
            )
        from spark_jobs.session import build_spark_session

        spark = build_spark_session(data, "bench-spark")
        if args.score_only:
            results = benchmark_scoring(spark, data, score_only_dates(data_config), args)
        else:
            results = benchmark(
                spark, data, demo, generated_dates(demo_config), generated_dates(data_config), args
            )
        targets = print_report(results)
        result = figures(results, targets, args, environment_of(spark, data, seeded))
    except (BenchError, DatabaseError) as exc:
        progress(f"bench/spark.py: {exc}")
        return 1
    finally:
        if spark is not None:
            spark.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            for settings, _ in seeding:
                drop_database(settings)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
