"""Rows per second of the ways to insert CDR rows into `DP_CDR_Data`, side by side.

Run as ``.venv/bin/python bench/ingest.py [--rows N] [--repeats K]``. Three methods insert
the same simulator batches into the same table, at 1k and 10k rows per batch:

- **stream path**: what the streaming runner does per batch, ``frame_to_rows`` then
  ``write_batch`` (one transaction holding the batch-log row and multi-row INSERTs);
- **LOAD DATA**: the batch written to a CSV file and loaded with ``LOAD DATA LOCAL INFILE``,
  one transaction per batch: the ceiling of what the server ingests;
- **pandas to_sql**: the seed project's ``DataFrame.to_sql`` over SQLAlchemy + PyMySQL, with
  the default ``method=None``; ``method="multi"`` is timed once, on a sample of the batches,
  as it manages only ~3k rows/s.

Every timed run starts from empty tables, methods alternate in rotating order, and each
figure is the median over the repeats. After every run the table must hold exactly the rows
inserted, with the NULL counts and sums of the frames, or the script exits non-zero. The
work happens in a database of its own (``--database``), created at the start and dropped at
the end. Progress goes to stderr; the last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path and this module (`ingest`) would shadow
# the project's `ingest` package; the project root in front of it resolves the real one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import importlib.metadata
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import mysql.connector
import numpy as np
import pandas as pd
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import URL, Engine

from config.settings import Settings, load_settings
from db.cdr import cdr_bounds, frame_to_rows
from db.connection import (
    Connection,
    connect,
    database_exists,
    drop_database,
    server_version,
    transaction,
)
from db.errors import DatabaseError
from db.ingest_log import Source, register_source, write_batch
from db.maintenance import CdrFingerprint, cdr_fingerprint, empty_cdr_tables, load_cdr_csv
from db.migrate import init_database
from db.schema import CDR_COLUMNS, DATE_COLUMN, LABEL_COLUMN, SUBSCRIBER_COLUMN, USAGE_COLUMNS
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.simulator import BatchClock, build_batch

BATCH_SIZES: tuple[int, ...] = (1_000, 10_000)
KEY_BATCH_SIZE = 10_000
TARGET_RATIO = 0.6
DEFAULT_DATABASE = "cdrbench_ingest"
CDR_TABLE = "DP_CDR_Data"

STREAM = "stream"
LOAD_DATA = "load_data"
TO_SQL = "to_sql"
TO_SQL_MULTI = "to_sql_multi"
METHOD_LABELS: dict[str, str] = {
    STREAM: "stream path (frame_to_rows + write_batch)",
    LOAD_DATA: "LOAD DATA LOCAL INFILE (CSV written)",
    TO_SQL: "pandas to_sql, method=None (seed)",
    TO_SQL_MULTI: "pandas to_sql, method='multi'",
}

_CLOCK = BatchClock(mode="simulated", anchor=datetime(2024, 3, 1))
_NOW = datetime(2024, 3, 1)
_STREAM_SEED = 7
_WARMUP_BATCHES = 2
_WARMUP_SIZE = 1_000
# to_sql(method="multi") manages ~3k rows/s here: a sample keeps the run within minutes.
_MULTI_SAMPLE_ROWS = 20_000

_CSV_NULL = r"\N"
_CSV_DATETIME = "%Y-%m-%d %H:%M:%S"


class BenchError(Exception):
    """The benchmark cannot run, or a method left the table in the wrong state."""


@dataclass(frozen=True)
class Run:
    """One timed pass of one method over all batches of one size."""

    method: str
    batch_size: int
    repeat: int
    rows: int
    seconds: float
    # Stream path only: the part of ``seconds`` spent in ``frame_to_rows``.
    convert_seconds: float | None = None

    @property
    def rows_per_second(self) -> float:
        """Rows inserted per second of wall-clock time."""
        return self.rows / self.seconds


@dataclass
class Summary:
    """The repeats of one method at one batch size."""

    method: str
    batch_size: int
    rows: int
    rows_per_second: list[float] = field(default_factory=list)
    convert_share: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median rows/s over the runs."""
        return statistics.median(self.rows_per_second)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats."""
        return (max(self.rows_per_second) - min(self.rows_per_second)) / self.median


Inserter = Callable[[Sequence[pd.DataFrame], int], float | None]


def with_missing_values(base: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """``base`` with a ``share`` of each usage column's values blanked, as in a partial export.

    The NULLs travel through the simulator into every batch, so each method's NULL handling
    (``\\N`` in the CSV, None in parameters) is exercised and checked.
    """
    if share <= 0:
        return base
    rng = np.random.default_rng(seed)
    blanked = base.copy()
    for column in USAGE_COLUMNS:
        missing = rng.random(len(blanked)) < share
        blanked[column] = blanked[column].astype(float).mask(missing)
    return blanked


def build_frames(base: pd.DataFrame, batch_size: int, batches: int) -> list[pd.DataFrame]:
    """The first ``batches`` batches of one simulated stream, ``batch_size`` rows each."""
    return [
        build_batch(base, index, batch_size, _STREAM_SEED, _CLOCK, _NOW) for index in range(batches)
    ]


def expected_fingerprint(frames: Sequence[pd.DataFrame]) -> CdrFingerprint:
    """What `cdr_fingerprint` must return once ``frames`` are the table's only rows."""
    rows = pd.concat(frames, ignore_index=True)
    dates = pd.to_datetime(rows[DATE_COLUMN])
    return CdrFingerprint(
        rows=len(rows),
        first_date=dates.min().to_pydatetime(),
        last_date=dates.max().to_pydatetime(),
        subscribers=int(rows[SUBSCRIBER_COLUMN].nunique()),
        null_counts=tuple(int(rows[column].isna().sum()) for column in CDR_COLUMNS),
        sums=tuple(
            float(rows[column].astype(float).sum()) for column in (*USAGE_COLUMNS, LABEL_COLUMN)
        ),
    )


def same_fingerprint(actual: CdrFingerprint, expected: CdrFingerprint) -> bool:
    """Exact on counts and dates; sums of doubles may differ in the last bits by order."""
    if replace(actual, sums=()) != replace(expected, sums=()):
        return False
    if len(actual.sums) != len(expected.sums):
        return False
    return all(_close(got, want) for got, want in zip(actual.sums, expected.sums, strict=True))


def _close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)


def stream_inserter(conn: Connection, settings: Settings) -> Inserter:
    """The streaming runner's per-batch path; returns the seconds spent in ``frame_to_rows``."""

    def insert(frames: Sequence[pd.DataFrame], batch_size: int) -> float:
        source_id = f"bench-{batch_size}"
        convert = 0.0
        for batch_no, frame in enumerate(frames):
            started = time.perf_counter()
            rows = frame_to_rows(frame)
            convert += time.perf_counter() - started
            if not write_batch(conn, source_id, batch_no, rows, settings.insert_chunk_rows):
                raise BenchError(f"{source_id}: batch {batch_no} was already logged")
        return convert

    return insert


def load_data_inserter(conn: Connection, workdir: Path) -> Inserter:
    """Each batch written to a CSV file and loaded with LOAD DATA LOCAL INFILE, committed."""
    # A file name cannot be a bound parameter of LOAD DATA: `load_cdr_csv` splices this
    # path, one we created ourselves (mkdtemp + a constant name), into the statement.
    path = workdir / "batch.csv"

    def insert(frames: Sequence[pd.DataFrame], batch_size: int) -> None:
        for batch_no, frame in enumerate(frames):
            frame.to_csv(
                path,
                header=False,
                index=False,
                na_rep=_CSV_NULL,
                date_format=_CSV_DATETIME,
                lineterminator="\n",
            )
            with transaction(conn) as cursor:
                try:
                    load_cdr_csv(cursor, path)
                except ValueError as exc:
                    raise BenchError(str(exc)) from exc
                if cursor.rowcount != len(frame) or cursor.warning_count:
                    raise BenchError(
                        f"LOAD DATA of batch {batch_no} ({batch_size} rows) loaded "
                        f"{cursor.rowcount} rows with {cursor.warning_count} warnings"
                    )

    return insert


def to_sql_inserter(engine: Engine, method: str | None) -> Inserter:
    """The seed's insert: one ``DataFrame.to_sql`` call (one transaction) per batch."""

    def insert(frames: Sequence[pd.DataFrame], batch_size: int) -> None:
        for frame in frames:
            frame.to_sql(CDR_TABLE, engine, if_exists="append", index=False, method=method)

    return insert


def seed_engine(settings: Settings) -> Engine:
    """A SQLAlchemy engine over PyMySQL for the bench database, as the seed connected."""
    url = URL.create(
        "mysql+pymysql",
        username=settings.db_user,
        password=settings.db_password.get_secret_value(),
        host=settings.db_host,
        port=settings.db_port,
        database=settings.db_name,
        query={"charset": "utf8mb4"},
    )
    return sqlalchemy.create_engine(url)


def timed_run(
    conn: Connection,
    method: str,
    inserter: Inserter,
    frames: Sequence[pd.DataFrame],
    expected: CdrFingerprint,
    repeat: int,
) -> Run:
    """Empty the tables, insert ``frames`` with ``inserter`` under the clock, and verify.

    Raises:
        BenchError: the table did not grow by exactly the rows inserted, or its contents
            differ from the frames.
    """
    batch_size = len(frames[0])
    rows = sum(len(frame) for frame in frames)
    empty_cdr_tables(conn)
    _, _, before = cdr_bounds(conn)
    started = time.perf_counter()
    convert = inserter(frames, batch_size)
    seconds = time.perf_counter() - started
    _, _, after = cdr_bounds(conn)
    if after - before != rows:
        raise BenchError(
            f"{method} at {batch_size} rows/batch: table grew by {after - before} rows, "
            f"expected {rows}"
        )
    actual = cdr_fingerprint(conn)
    if not same_fingerprint(actual, expected):
        raise BenchError(
            f"{method} at {batch_size} rows/batch: stored rows differ from the frames: "
            f"{actual} != {expected}"
        )
    return Run(method, batch_size, repeat, rows, seconds, convert)


def summarise(runs: Sequence[Run]) -> dict[tuple[str, int], Summary]:
    """Group runs by (method, batch size)."""
    summaries: dict[tuple[str, int], Summary] = {}
    for run in runs:
        summary = summaries.setdefault(
            (run.method, run.batch_size), Summary(run.method, run.batch_size, run.rows)
        )
        summary.rows_per_second.append(run.rows_per_second)
        if run.convert_seconds is not None:
            summary.convert_share.append(run.convert_seconds / run.seconds)
    return summaries


def ratio_to_load_data(summaries: dict[tuple[str, int], Summary], method: str, size: int) -> float:
    """Median rows/s of ``method`` over that of LOAD DATA at the same batch size."""
    return summaries[(method, size)].median / summaries[(LOAD_DATA, size)].median


def paired_ratio_to_load_data(
    summaries: dict[tuple[str, int], Summary], method: str, size: int
) -> float | None:
    """Median over the repeats of ``method``'s rows/s over LOAD DATA's in the same repeat.

    Both ran back to back, so a slow spell of the machine hits both sides of a pair; None
    for a method timed in fewer runs than LOAD DATA.
    """
    ours = summaries[(method, size)].rows_per_second
    theirs = summaries[(LOAD_DATA, size)].rows_per_second
    if len(ours) != len(theirs):
        return None
    return statistics.median(mine / load for mine, load in zip(ours, theirs, strict=True))


def report_table(summaries: dict[tuple[str, int], Summary], methods: Sequence[str]) -> str:
    """A readable table: method, batch size, rows, median rows/s, spread, ratio to LOAD DATA."""
    header = (
        f"{'method':<42} {'batch':>6} {'rows':>8} {'runs':>4} {'rows/s':>9} {'spread':>6} "
        f"{'x LOAD DATA':>11}"
    )
    lines = [header, "-" * len(header)]
    for size in BATCH_SIZES:
        for method in methods:
            summary = summaries[(method, size)]
            runs = len(summary.rows_per_second)
            spread = f"{summary.spread:.0%}" if runs > 1 else "-"
            lines.append(
                f"{METHOD_LABELS[method]:<42} {size:>6,} {summary.rows:>8,} {runs:>4} "
                f"{summary.median:>9,.0f} {spread:>6} "
                f"{ratio_to_load_data(summaries, method, size):>10.2f}x"
            )
    shares = ", ".join(
        f"{statistics.median(summaries[(STREAM, size)].convert_share):.0%} at {size:,}/batch"
        for size in BATCH_SIZES
    )
    lines.append(f"spread = (max - min) / median over the runs; frame_to_rows takes {shares}")
    lines.append("of the stream path's time.")
    return "\n".join(lines)


def figures(
    summaries: dict[tuple[str, int], Summary],
    methods: Sequence[str],
    args: argparse.Namespace,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """Every figure of the run, for the closing JSON line."""
    results = []
    for size in BATCH_SIZES:
        for method in methods:
            summary = summaries[(method, size)]
            runs = len(summary.rows_per_second)
            paired = paired_ratio_to_load_data(summaries, method, size)
            entry: dict[str, Any] = {
                "method": method,
                "batch_size": size,
                "rows": summary.rows,
                "runs": runs,
                "rows_per_s_median": round(summary.median, 1),
                "rows_per_s_runs": [round(value, 1) for value in summary.rows_per_second],
                "spread": round(summary.spread, 4) if runs > 1 else None,
                "ratio_to_load_data": round(ratio_to_load_data(summaries, method, size), 4),
                "paired_ratio_to_load_data": None if paired is None else round(paired, 4),
            }
            if summary.convert_share:
                entry["frame_to_rows_share"] = round(statistics.median(summary.convert_share), 4)
            results.append(entry)
    key = ratio_to_load_data(summaries, STREAM, KEY_BATCH_SIZE)
    key_paired = paired_ratio_to_load_data(summaries, STREAM, KEY_BATCH_SIZE)
    return {
        "benchmark": "bench/ingest.py",
        "rows_requested": args.rows,
        "repeats": args.repeats,
        "null_share": args.null_share,
        "results": results,
        "stream_vs_load_data_10k": round(key, 4),
        "stream_vs_load_data_10k_paired": None if key_paired is None else round(key_paired, 4),
        "target_ratio": TARGET_RATIO,
        "meets_target": key >= TARGET_RATIO,
        **environment,
    }


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the table and the JSON line."""
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: rows, repeats, NULL share, whether to time method='multi', database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=_positive_int, default=100_000, help="rows per method and batch size"
    )
    parser.add_argument("--repeats", type=_positive_int, default=5, help="timed repeats")
    parser.add_argument(
        "--null-share",
        type=float,
        default=0.001,
        help="share of usage values left NULL in the subscriber base (default 0.001)",
    )
    parser.add_argument(
        "--skip-multi", action="store_true", help="leave out to_sql(method='multi')"
    )
    parser.add_argument(
        "--database", default=DEFAULT_DATABASE, help="scratch database, created and dropped"
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def create_database(settings: Settings) -> None:
    """Create and migrate ``DB_NAME``, refusing one that exists: it may not be ours to drop."""
    if database_exists(settings):
        raise BenchError(
            f"database {settings.db_name} exists already; drop it or pass another --database"
        )
    init_database(settings)


def benchmark(settings: Settings, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run every method at every batch size ``args.repeats`` times; return the figures."""
    progress("generating the subscriber base and the batches ...")
    base = with_missing_values(generate_cdr(GeneratorConfig(days=7)), args.null_share, seed=1)
    frames = {size: build_frames(base, size, max(1, args.rows // size)) for size in BATCH_SIZES}
    expected = {size: expected_fingerprint(batch) for size, batch in frames.items()}
    samples = {
        size: batch[: max(1, min(args.rows, _MULTI_SAMPLE_ROWS) // size)]
        for size, batch in frames.items()
    }
    sample_expected = {size: expected_fingerprint(sample) for size, sample in samples.items()}
    warmup = build_frames(base, _WARMUP_SIZE, _WARMUP_BATCHES)

    timed = [STREAM, LOAD_DATA, TO_SQL]
    methods = timed if args.skip_multi else [*timed, TO_SQL_MULTI]
    stream_conn = connect(settings)
    # Connector 9.0 allows LOCAL INFILE from any path once allow_local_infile is set;
    # allow_local_infile_in_path is only needed to allow one folder without it.
    load_conn = connect(settings, allow_local_infile=True)
    engine = seed_engine(settings)
    try:
        for size in {*BATCH_SIZES, _WARMUP_SIZE}:
            register_source(
                stream_conn,
                Source(
                    source_id=f"bench-{size}",
                    kind="stream",
                    description=f"bench/ingest.py, {size} rows per batch",
                    params={"batch_size": size},
                    total_batches=len(frames.get(size, warmup)),
                ),
            )
        inserters: dict[str, Inserter] = {
            STREAM: stream_inserter(stream_conn, settings),
            LOAD_DATA: load_data_inserter(load_conn, workdir),
            TO_SQL: to_sql_inserter(engine, None),
            TO_SQL_MULTI: to_sql_inserter(engine, "multi"),
        }
        warm_expected = expected_fingerprint(warmup)
        for method in methods:
            timed_run(stream_conn, method, inserters[method], warmup, warm_expected, repeat=-1)
        progress(f"warmed up {len(methods)} methods; timing {args.repeats} repeats")

        runs: list[Run] = []

        def record(
            label: str,
            method: str,
            repeat: int,
            batches: list[pd.DataFrame],
            target: CdrFingerprint,
        ) -> None:
            run = timed_run(stream_conn, method, inserters[method], batches, target, repeat)
            runs.append(run)
            progress(
                f"  {label}: {run.batch_size:>6,}/batch {method:<13} {run.rows:>7,} rows "
                f"{run.seconds:6.2f} s {run.rows_per_second:>9,.0f} rows/s"
            )

        for repeat in range(args.repeats):
            label = f"repeat {repeat + 1}/{args.repeats}"
            # Rotating the order keeps any drift (buffer pool, purge, caches) off one method.
            order = timed[repeat % len(timed) :] + timed[: repeat % len(timed)]
            for size in BATCH_SIZES:
                for method in order:
                    record(label, method, repeat, frames[size], expected[size])
        if not args.skip_multi:
            for size in BATCH_SIZES:
                record("sample, once", TO_SQL_MULTI, 0, samples[size], sample_expected[size])

        environment = {
            "insert_chunk_rows": settings.insert_chunk_rows,
            "mysql_connector_version": importlib.metadata.version("mysql-connector-python"),
            "mysql_connector_c_extension_available": bool(mysql.connector.HAVE_CEXT),
            "mysql_connector_c_extension_in_use": (
                type(stream_conn).__name__ == "CMySQLConnection"
            ),
            "server_version": server_version(stream_conn),
            "pandas_version": pd.__version__,
            "sqlalchemy_version": sqlalchemy.__version__,
            "pymysql_version": importlib.metadata.version("PyMySQL"),
        }
    finally:
        engine.dispose()
        stream_conn.close()
        load_conn.close()

    summaries = summarise(runs)
    print(report_table(summaries, methods))
    result = figures(summaries, methods, args, environment)
    print(
        f"\nstream path at {KEY_BATCH_SIZE // 1000}k rows/batch = "
        f"{result['stream_vs_load_data_10k']:.2f}x LOAD DATA (target >= {TARGET_RATIO}x); "
        f"median of per-repeat ratios {result['stream_vs_load_data_10k_paired']:.2f}x"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every method stored exactly its rows, 1 otherwise."""
    args = parse_args(argv)
    try:
        settings = load_settings(db_name=args.database)
        create_database(settings)
    except (BenchError, DatabaseError) as exc:
        progress(f"bench/ingest.py: {exc}")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="cdrbench_"))
    try:
        result = benchmark(settings, args, workdir)
    except (BenchError, DatabaseError, mysql.connector.Error, sqlalchemy.exc.DBAPIError) as exc:
        progress(f"bench/ingest.py: {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(settings)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
