"""Rows per second of the ways to insert CDR rows into `DP_CDR_Data`, side by side.

Run as ``.venv/bin/python bench/ingest.py [--rows N] [--repeats K] [--port P]``. The same
rows go into the same table (with its indexes, on top of the same seeded history), at 1k
and 10k rows per batch, one commit per batch:

- **API**: the streaming service as users run it (``python -m ingest serve``, waitress, a
  child process), driven over HTTP only: ``POST /start_stream`` with ``interval`` 0 and the
  simulated clock, then ``GET /stream_status`` until the stream is completed (every 5 ms
  around the first and the last commit, every 100 ms in between, to spare the service).
  Timed from the request to the poll that sees the last batch committed, so it
  holds the request, the stream's start-up (history read, source registration), building
  each batch and writing it;
- **stream path**: the bare write path of the stream, ``load_batch`` (the batch-log row and
  LOAD DATA LOCAL INFILE of the batch's ``csv_text`` in one transaction) over a connection
  like the stream's (pure client, bounded statements), called directly on ready frames;
- **LOAD DATA**: the ceiling. Each frame serialised to CSV the fastest way measured (one
  string per column, joined; ``csv_text``), written to a RAM-backed file where there is one,
  and loaded with ``LOAD DATA LOCAL INFILE``. It writes no batch-log row, so it does less
  than the others: a ceiling that errs high, never one that flatters the ratio;
- **LOAD DATA, pandas CSV**: the same load with the file written by ``DataFrame.to_csv``, the
  ceiling this benchmark used before (shown for comparison: it is slower);
- **pandas to_sql**: the seed project's ``DataFrame.to_sql`` over SQLAlchemy + PyMySQL
  (``method=None``); ``method="multi"`` is timed once, on a sample, as it manages ~3k rows/s.

The rows are the service's own: a warm-up stream through the API writes them, and they are
read back (in id order) as the frames every other method inserts. Each timed run starts from
the history alone; methods alternate in rotating order; each figure is the median over the
repeats, and ratios are also given paired (per repeat, then the median). After every run the
table must hold the history plus exactly the stream's rows (count, date range, subscribers,
NULLs per column and sums), or the script exits 1. The work happens in a database of its own
(``--database``), created at the start and dropped at the end. Progress goes to stderr; the
last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path and this module (`ingest`) would shadow
# the project's `ingest` package; the project root in front of it resolves the real one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import http.client
import importlib.metadata
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
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

from config.cli import EXIT_FAILED, EXIT_OK, parser, positive_int
from config.settings import Settings, load_settings
from db.cdr import cdr_bounds, csv_text, recent_cdr
from db.connection import (
    Connection,
    connect,
    database_exists,
    drop_database,
    server_version,
    transaction,
)
from db.errors import DatabaseError
from db.ingest_log import Source, load_batch, register_source
from db.maintenance import CdrFingerprint, cdr_fingerprint, empty_cdr_tables, load_cdr_csv
from db.migrate import init_database
from db.schema import (
    AMOUNT_COLUMNS,
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SUBSCRIBER_COLUMN,
    USAGE_COLUMNS,
)
from ingest.generator import GeneratorConfig, generate_cdr

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZES: tuple[int, ...] = (1_000, 10_000)
KEY_BATCH_SIZE = 10_000
TARGET_RATIO = 0.6
DEFAULT_DATABASE = "cdrbench_ingest"
CDR_TABLE = "DP_CDR_Data"

API = "api"
STREAM = "stream"
LOAD_DATA = "load_data"
LOAD_DATA_PANDAS = "load_data_pandas"
TO_SQL = "to_sql"
TO_SQL_MULTI = "to_sql_multi"
METHOD_LABELS: dict[str, str] = {
    API: "API: POST /start_stream to last commit",
    STREAM: "stream path (load_batch)",
    LOAD_DATA: "LOAD DATA LOCAL INFILE (csv_text)",
    LOAD_DATA_PANDAS: "LOAD DATA LOCAL INFILE (pandas to_csv)",
    TO_SQL: "pandas to_sql, method=None (seed)",
    TO_SQL_MULTI: "pandas to_sql, method='multi'",
}

STREAM_SEED = 7
# Status polls cost the service CPU (and its GIL): poll often only where the time of a
# commit is wanted, before the first batch and during the last one, so the end of a run
# is seen within ~5 ms, and seldom in between.
POLL_FAST_SECONDS = 0.005
POLL_SLOW_SECONDS = 0.1
STREAM_TIMEOUT_S = 600.0
SERVICE_START_TIMEOUT_S = 120.0
DONE_STATES = frozenset({"completed", "done"})
FAILED_STATES = frozenset({"failed", "stopped"})
# to_sql(method="multi") manages ~3k rows/s here: a sample keeps the run within minutes.
_MULTI_SAMPLE_ROWS = 20_000

_FAR_FUTURE = datetime(9999, 12, 31)
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
    # LOAD DATA only: the part of ``seconds`` spent serialising and writing the CSV.
    client_seconds: float | None = None
    # API only: request to first committed batch (start-up plus one batch).
    first_commit_seconds: float | None = None

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
    client_share: list[float] = field(default_factory=list)
    first_commit_seconds: list[float] = field(default_factory=list)
    steady_rows_per_second: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median rows/s over the runs."""
        return statistics.median(self.rows_per_second)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats."""
        return (max(self.rows_per_second) - min(self.rows_per_second)) / self.median


Inserter = Callable[[Sequence[pd.DataFrame], int], float | None]


# --- the fastest CSV --------------------------------------------------------------------------


def fast_scratch_dir() -> Path:
    """A new folder for the CSV files, in RAM (/dev/shm) where the machine has one."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="cdrbench_", dir=parent))


# --- frames and checks ------------------------------------------------------------------------


def with_missing_values(base: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """``base`` with a ``share`` of each usage column's values blanked, as in a partial export.

    The NULLs travel through the stream into every batch, so each method's NULL handling
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


def as_batch_frame(stored: pd.DataFrame) -> pd.DataFrame:
    """Rows read back from `DP_CDR_Data`, with the dtypes the stream's simulator gives."""
    frame = stored.loc[:, list(CDR_COLUMNS)].copy()
    frame[DATE_COLUMN] = pd.to_datetime(frame[DATE_COLUMN])
    frame[SUBSCRIBER_COLUMN] = frame[SUBSCRIBER_COLUMN].astype(str)
    for column in (*COUNT_COLUMNS, LABEL_COLUMN):
        frame[column] = pd.array(pd.to_numeric(frame[column]), dtype="Int64")
    for column in AMOUNT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


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


# --- the service, over HTTP only ---------------------------------------------------------------


class IngestService:
    """``python -m ingest serve`` on the bench database, in a child process of ours."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._token = settings.api_token.get_secret_value() if settings.api_token else None
        self._settings = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._http: http.client.HTTPConnection | None = None

    def start(self) -> None:
        """Start the service and wait for ``/health``.

        Raises:
            BenchError: the port is taken, or the service exits or stays unhealthy.
        """
        if not port_is_free(self.port):
            raise BenchError(f"port {self.port} is in use; pass another --port")
        env = {
            **os.environ,
            "DB_NAME": self._settings.db_name,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        }
        command = [sys.executable, "-m", "ingest", "serve", "--host", "127.0.0.1"]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise BenchError(f"the ingest service exited: {self.log_tail()}")
            try:
                status, _ = self.request("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the ingest service is not healthy: {self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the child process we started."""
        if self._http is not None:
            self._http.close()
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One request over a kept-alive connection; returns status and decoded JSON."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            if self._http is None:
                self._http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self._http.request(method, path, body=payload, headers=headers)
                response = self._http.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                self._http.close()
                self._http = None
                if attempt == 2:
                    raise
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return response.status, decoded

    def log_tail(self, lines: int = 15) -> str:
        """The end of the service's log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ApiTiming:
    """When a stream was asked for, first committed a batch, and ended."""

    seconds: float
    first_commit_seconds: float | None


def stream_through_api(
    service: IngestService, batch_size: int, batches: int, stream_id: str
) -> ApiTiming:
    """Start one stream over HTTP and follow ``/stream_status`` until it completes.

    Raises:
        BenchError: the service refused the stream, or the stream failed or stopped.
    """
    body = {
        "batch_size": batch_size,
        "num_batches": batches,
        "interval": 0,
        "clock": "simulated",
        "seed": STREAM_SEED,
        "stream_id": stream_id,
    }
    started = time.perf_counter()
    status, answer = service.request("POST", "/start_stream", body)
    if status != 202:
        raise BenchError(f"POST /start_stream answered {status}: {answer}")
    first_commit: float | None = None
    while True:
        status, answer = service.request("GET", "/stream_status")
        now = time.perf_counter()
        if status != 200 or not isinstance(answer, dict):
            raise BenchError(f"GET /stream_status answered {status}: {answer}")
        if answer.get("stream_id") == stream_id:
            if first_commit is None and int(answer.get("batches_done") or 0) >= 1:
                first_commit = now - started
            state = answer.get("state")
            if state in DONE_STATES:
                return ApiTiming(now - started, first_commit)
            if state in FAILED_STATES:
                raise BenchError(f"stream {stream_id} {state}: {answer.get('last_error')}")
        if now - started > STREAM_TIMEOUT_S:
            raise BenchError(f"stream {stream_id} did not end in {STREAM_TIMEOUT_S:.0f} s")
        done = int(answer.get("batches_done") or 0) if isinstance(answer, dict) else 0
        fast = first_commit is None or done >= batches - 1
        time.sleep(POLL_FAST_SECONDS if fast else POLL_SLOW_SECONDS)


# --- the methods ------------------------------------------------------------------------------


def stream_inserter(conn: Connection, workdir: Path) -> Inserter:
    """The streaming runner's per-batch write, ``load_batch`` through files in ``workdir``."""

    def insert(frames: Sequence[pd.DataFrame], batch_size: int) -> None:
        source_id = f"bench-{batch_size}"
        for batch_no, frame in enumerate(frames):
            if not load_batch(conn, source_id, batch_no, frame, workdir):
                raise BenchError(f"{source_id}: batch {batch_no} was already logged")

    return insert


def write_csv_fast(frame: pd.DataFrame, path: Path) -> None:
    """The ceiling's serialisation: :func:`csv_text`, written as UTF-8 bytes."""
    path.write_bytes(csv_text(frame).encode())


def write_csv_pandas(frame: pd.DataFrame, path: Path) -> None:
    """The previous ceiling's serialisation, ``DataFrame.to_csv``."""
    frame.to_csv(
        path,
        header=False,
        index=False,
        na_rep=_CSV_NULL,
        date_format=_CSV_DATETIME,
        lineterminator="\n",
    )


def load_csv(conn: Connection, path: Path, rows: int, what: str) -> None:
    """LOAD DATA ``path`` and commit, checking every row arrived without a warning."""
    with transaction(conn) as cursor:
        try:
            load_cdr_csv(cursor, path)
        except ValueError as exc:
            raise BenchError(str(exc)) from exc
        if cursor.rowcount != rows or cursor.warning_count:
            raise BenchError(
                f"LOAD DATA of {what} ({rows} rows) loaded {cursor.rowcount} rows "
                f"with {cursor.warning_count} warnings"
            )


def load_data_inserter(
    conn: Connection, workdir: Path, write: Callable[[pd.DataFrame, Path], None]
) -> Inserter:
    """Each batch written by ``write`` to a CSV file and loaded, one commit per batch.

    Returns the seconds spent writing the files.
    """
    # A file name cannot be a bound parameter of LOAD DATA: `load_cdr_csv` splices this
    # path, one we created ourselves (mkdtemp + a constant name), into the statement.
    path = workdir / "batch.csv"

    def insert(frames: Sequence[pd.DataFrame], batch_size: int) -> float:
        serialise = 0.0
        for batch_no, frame in enumerate(frames):
            started = time.perf_counter()
            write(frame, path)
            serialise += time.perf_counter() - started
            load_csv(conn, path, len(frame), f"batch {batch_no} of {batch_size} rows")
        return serialise

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


# --- one bench database -----------------------------------------------------------------------


class BenchDatabase:
    """The bench database: reset to the seeded history before each run, and checked after."""

    def __init__(self, settings: Settings, workdir: Path, history: pd.DataFrame) -> None:
        self.settings = settings
        self.history = history
        self.history_fingerprint = expected_fingerprint([history])
        self._history_csv = workdir / "history.csv"
        write_csv_fast(history, self._history_csv)
        self.conn = connect(settings)
        # Connector 9.0 allows LOCAL INFILE from any path once allow_local_infile is set.
        self.load_conn = connect(settings, allow_local_infile=True)
        # The stream's kind of connection: pure client, bounded statements, local files
        # from the scratch folder only.
        self.stream_conn = connect(
            settings,
            statement_timeout=settings.stream_statement_timeout,
            allow_local_infile_in_path=str(workdir),
        )

    def close(self) -> None:
        self.conn.close()
        self.load_conn.close()
        self.stream_conn.close()

    def reset(self) -> None:
        """Empty the CDR table and the batch log, then load the history again."""
        empty_cdr_tables(self.conn)
        load_csv(self.load_conn, self._history_csv, len(self.history), "the history")

    def stream_rows(self, batch_size: int, batches: int) -> list[pd.DataFrame]:
        """The rows written after the history, in id order, cut into ``batches`` frames.

        Raises:
            BenchError: the table does not hold the history plus ``batches`` full batches.
        """
        rows = batch_size * batches
        _, _, count = cdr_bounds(self.conn)
        if count != len(self.history) + rows:
            raise BenchError(f"expected {len(self.history)} + {rows} rows, found {count}")
        last_history = self.history_fingerprint.last_date
        assert last_history is not None
        # The simulated clock stamps a stream after the history's last day.
        newest_first = recent_cdr(self.conn, last_history, _FAR_FUTURE, rows)
        if len(newest_first) != rows:
            raise BenchError(f"{len(newest_first)} rows after the history, expected {rows}")
        stored = as_batch_frame(newest_first.iloc[::-1].reset_index(drop=True))
        return [
            stored.iloc[start : start + batch_size].reset_index(drop=True)
            for start in range(0, rows, batch_size)
        ]

    def check(self, label: str, expected: CdrFingerprint, rows_added: int, before: int) -> None:
        """Raise :class:`BenchError` unless the table grew by ``rows_added`` to ``expected``."""
        _, _, after = cdr_bounds(self.conn)
        if after - before != rows_added:
            raise BenchError(f"{label}: table grew by {after - before} rows, expected {rows_added}")
        actual = cdr_fingerprint(self.conn)
        if not same_fingerprint(actual, expected):
            raise BenchError(f"{label}: stored rows differ from the frames: {actual} != {expected}")


def timed_run(
    db: BenchDatabase,
    method: str,
    insert: Callable[[], tuple[float | None, float | None]],
    frames: Sequence[pd.DataFrame],
    expected: CdrFingerprint,
    repeat: int,
) -> Run:
    """Reset to the history, run ``insert`` under the clock, and verify the table.

    ``insert`` returns (seconds spent client-side, seconds to the first commit), either None.
    """
    batch_size = len(frames[0])
    rows = sum(len(frame) for frame in frames)
    db.reset()
    _, _, before = cdr_bounds(db.conn)
    started = time.perf_counter()
    client, first_commit = insert()
    seconds = time.perf_counter() - started
    db.check(f"{method} at {batch_size} rows/batch", expected, rows, before)
    return Run(method, batch_size, repeat, rows, seconds, client, first_commit)


# --- figures ----------------------------------------------------------------------------------


def summarise(runs: Sequence[Run]) -> dict[tuple[str, int], Summary]:
    """Group runs by (method, batch size)."""
    summaries: dict[tuple[str, int], Summary] = {}
    for run in runs:
        summary = summaries.setdefault(
            (run.method, run.batch_size), Summary(run.method, run.batch_size, run.rows)
        )
        summary.rows_per_second.append(run.rows_per_second)
        if run.client_seconds is not None:
            summary.client_share.append(run.client_seconds / run.seconds)
        if run.first_commit_seconds is not None:
            summary.first_commit_seconds.append(run.first_commit_seconds)
            later = run.seconds - run.first_commit_seconds
            if later > 0 and run.rows > run.batch_size:
                summary.steady_rows_per_second.append((run.rows - run.batch_size) / later)
    return summaries


def ratio_to_load_data(summaries: dict[tuple[str, int], Summary], method: str, size: int) -> float:
    """Median rows/s of ``method`` over that of LOAD DATA at the same batch size."""
    return summaries[(method, size)].median / summaries[(LOAD_DATA, size)].median


def paired_ratio_to_load_data(
    summaries: dict[tuple[str, int], Summary], method: str, size: int
) -> float | None:
    """Median over the repeats of ``method``'s rows/s over LOAD DATA's in the same repeat.

    Both ran close together, so a slow spell of the machine hits both sides of a pair;
    None for a method timed in fewer runs than LOAD DATA.
    """
    ours = summaries[(method, size)].rows_per_second
    theirs = summaries[(LOAD_DATA, size)].rows_per_second
    if len(ours) != len(theirs):
        return None
    return statistics.median(mine / load for mine, load in zip(ours, theirs, strict=True))


def report_table(summaries: dict[tuple[str, int], Summary], methods: Sequence[str]) -> str:
    """A readable table: method, batch size, rows, median rows/s, spread, ratios to LOAD DATA."""
    header = (
        f"{'method':<42} {'batch':>6} {'rows':>8} {'runs':>4} {'rows/s':>9} {'spread':>6} "
        f"{'x LOAD DATA':>11} {'paired':>7}"
    )
    lines = [header, "-" * len(header)]
    for size in BATCH_SIZES:
        for method in methods:
            summary = summaries[(method, size)]
            runs = len(summary.rows_per_second)
            spread = f"{summary.spread:.0%}" if runs > 1 else "-"
            paired = paired_ratio_to_load_data(summaries, method, size)
            lines.append(
                f"{METHOD_LABELS[method]:<42} {size:>6,} {summary.rows:>8,} {runs:>4} "
                f"{summary.median:>9,.0f} {spread:>6} "
                f"{ratio_to_load_data(summaries, method, size):>10.2f}x "
                f"{'-' if paired is None else f'{paired:.2f}x':>7}"
            )
    lines.append(
        "spread = (max - min) / median over the runs; paired = median of per-repeat ratios"
    )
    for size in BATCH_SIZES:
        api = summaries[(API, size)]
        csv_share = statistics.median(summaries[(LOAD_DATA, size)].client_share)
        line = f"{size:>6,}/batch: csv_text is {csv_share:.0%} of LOAD DATA"
        if api.first_commit_seconds:
            line += (
                f"; API request to first commit {statistics.median(api.first_commit_seconds):.2f} s"
            )
        if api.steady_rows_per_second:
            steady = statistics.median(api.steady_rows_per_second)
            line += (
                f", then {steady:,.0f} rows/s "
                f"({steady / summaries[(LOAD_DATA, size)].median:.2f}x LOAD DATA)"
            )
        lines.append(line)
    return "\n".join(lines)


def _key_figures(summaries: dict[tuple[str, int], Summary], method: str) -> dict[str, Any]:
    paired = paired_ratio_to_load_data(summaries, method, KEY_BATCH_SIZE)
    return {
        "median": round(ratio_to_load_data(summaries, method, KEY_BATCH_SIZE), 4),
        "paired": None if paired is None else round(paired, 4),
    }


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
            if summary.client_share:
                entry["client_share"] = round(statistics.median(summary.client_share), 4)
            if summary.first_commit_seconds:
                entry["first_commit_s_median"] = round(
                    statistics.median(summary.first_commit_seconds), 3
                )
            if summary.steady_rows_per_second:
                entry["after_first_commit_rows_per_s_median"] = round(
                    statistics.median(summary.steady_rows_per_second), 1
                )
            results.append(entry)
    api = _key_figures(summaries, API)
    stream = _key_figures(summaries, STREAM)
    return {
        "benchmark": "bench/ingest.py",
        "rows_requested": args.rows,
        "repeats": args.repeats,
        "null_share": args.null_share,
        "history_days": args.history_days,
        "results": results,
        "api_vs_load_data_10k": api["median"],
        "api_vs_load_data_10k_paired": api["paired"],
        "stream_vs_load_data_10k": stream["median"],
        "stream_vs_load_data_10k_paired": stream["paired"],
        "target_ratio": TARGET_RATIO,
        "meets_target": api["median"] >= TARGET_RATIO,
        **environment,
    }


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the table and the JSON line."""
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    cli = parser("bench/ingest.py", __doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--rows", type=positive_int, default=100_000, help="rows per run")
    cli.add_argument("--repeats", type=positive_int, default=3, help="timed repeats")
    cli.add_argument(
        "--null-share",
        type=float,
        default=0.001,
        help="share of usage values left NULL in the seeded history",
    )
    cli.add_argument(
        "--history-days",
        type=positive_int,
        default=GeneratorConfig().days,
        help="days of generated history under every run (as `python -m ingest seed`)",
    )
    cli.add_argument(
        "--port",
        type=int,
        default=0,
        help="port for the ingest service (0: one the system picks)",
    )
    cli.add_argument("--skip-multi", action="store_true", help="leave out to_sql(method='multi')")
    cli.add_argument(
        "--database", default=DEFAULT_DATABASE, help="scratch database, created and dropped"
    )
    return cli.parse_args(argv)


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_database(settings: Settings) -> None:
    """Create and migrate ``DB_NAME``, refusing one that exists: it may not be ours to drop."""
    if database_exists(settings):
        raise BenchError(
            f"database {settings.db_name} exists already; drop it or pass another --database"
        )
    init_database(settings)


def benchmark(settings: Settings, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run every method at every batch size ``args.repeats`` times; return the figures."""
    progress("generating the history ...")
    history = with_missing_values(
        generate_cdr(GeneratorConfig(days=args.history_days)), args.null_share, seed=1
    )
    history = as_batch_frame(history)
    db = BenchDatabase(settings, workdir, history)
    service = IngestService(settings, args.port or free_port(), workdir / "ingest-service.log")
    engine = seed_engine(settings)
    timed = [API, STREAM, LOAD_DATA, LOAD_DATA_PANDAS, TO_SQL]
    methods = timed if args.skip_multi else [*timed, TO_SQL_MULTI]
    batches = {size: max(1, args.rows // size) for size in BATCH_SIZES}
    runs: list[Run] = []
    try:
        db.reset()
        db.check("the history", db.history_fingerprint, len(history), 0)
        progress(f"{len(history):,} rows of history; starting the ingest service ...")
        service.start()
        for size in BATCH_SIZES:
            register_source(
                db.conn,
                Source(
                    source_id=f"bench-{size}",
                    kind="stream",
                    description=f"bench/ingest.py, {size} rows per batch",
                    params={"batch_size": size},
                    total_batches=batches[size],
                ),
            )

        # The warm-up stream writes the rows every method then inserts.
        frames: dict[int, list[pd.DataFrame]] = {}
        expected: dict[int, CdrFingerprint] = {}
        for size in BATCH_SIZES:
            db.reset()
            stream_through_api(service, size, batches[size], f"bench-warmup-{size}")
            frames[size] = db.stream_rows(size, batches[size])
            expected[size] = expected_fingerprint([history, *frames[size]])
            rows = size * batches[size]
            db.check(f"warm-up stream at {size}", expected[size], len(history) + rows, 0)
        samples = {
            size: batch[: max(1, min(args.rows, _MULTI_SAMPLE_ROWS) // size)]
            for size, batch in frames.items()
        }
        sample_expected = {
            size: expected_fingerprint([history, *sample]) for size, sample in samples.items()
        }

        stream_insert = stream_inserter(db.stream_conn, workdir)
        inserters: dict[str, Inserter] = {
            STREAM: stream_insert,
            LOAD_DATA: load_data_inserter(db.load_conn, workdir, write_csv_fast),
            LOAD_DATA_PANDAS: load_data_inserter(db.load_conn, workdir, write_csv_pandas),
            TO_SQL: to_sql_inserter(engine, None),
            TO_SQL_MULTI: to_sql_inserter(engine, "multi"),
        }

        def record(
            label: str,
            method: str,
            repeat: int,
            batch: list[pd.DataFrame],
            target: CdrFingerprint,
        ) -> None:
            size = len(batch[0])

            def insert() -> tuple[float | None, float | None]:
                if method == API:
                    stream_id = f"bench-{size}-{repeat}-{secrets.token_hex(3)}"
                    timing = stream_through_api(service, size, len(batch), stream_id)
                    return None, timing.first_commit_seconds
                return inserters[method](batch, size), None

            run = timed_run(db, method, insert, batch, target, repeat)
            if repeat >= 0:
                runs.append(run)
            progress(
                f"  {label}: {run.batch_size:>6,}/batch {method:<16} {run.rows:>7,} rows "
                f"{run.seconds:6.2f} s {run.rows_per_second:>9,.0f} rows/s"
            )

        for method in methods:
            if method != API:
                size = min(BATCH_SIZES)
                record("warm-up", method, -1, samples[size][:2], _expected(history, samples, size))
        progress(f"warmed up; timing {args.repeats} repeats of {len(timed)} methods")
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
            "poll_seconds": [POLL_FAST_SECONDS, POLL_SLOW_SECONDS],
            "csv_dir_in_ram": str(workdir).startswith("/dev/shm"),
            "mysql_connector_version": importlib.metadata.version("mysql-connector-python"),
            "mysql_connector_c_extension_available": bool(mysql.connector.HAVE_CEXT),
            "mysql_connector_c_extension_in_use": type(db.conn).__name__ == "CMySQLConnection",
            "server_version": server_version(db.conn),
            "pandas_version": pd.__version__,
            "sqlalchemy_version": sqlalchemy.__version__,
            "pymysql_version": importlib.metadata.version("PyMySQL"),
            "cpu_count": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        service.stop()
        engine.dispose()
        db.close()

    summaries = summarise(runs)
    print(report_table(summaries, methods))
    result = figures(summaries, methods, args, environment)
    print(
        f"\nat {KEY_BATCH_SIZE // 1000}k rows/batch: through the API "
        f"{result['api_vs_load_data_10k']:.2f}x LOAD DATA "
        f"(paired {result['api_vs_load_data_10k_paired']:.2f}x; target >= {TARGET_RATIO}x), "
        f"bare insert path {result['stream_vs_load_data_10k']:.2f}x "
        f"(paired {result['stream_vs_load_data_10k_paired']:.2f}x)"
    )
    return result


def _expected(
    history: pd.DataFrame, samples: dict[int, list[pd.DataFrame]], size: int
) -> CdrFingerprint:
    return expected_fingerprint([history, *samples[size][:2]])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every method stored exactly its rows, 1 otherwise."""
    args = parse_args(argv)
    try:
        settings = load_settings(db_name=args.database)
        create_database(settings)
    except (BenchError, DatabaseError) as exc:
        progress(f"bench/ingest.py: {exc}")
        return EXIT_FAILED
    workdir = fast_scratch_dir()
    try:
        result = benchmark(settings, args, workdir)
    except (BenchError, DatabaseError, mysql.connector.Error, sqlalchemy.exc.DBAPIError) as exc:
        progress(f"bench/ingest.py: {exc}")
        return EXIT_FAILED
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(settings)
    print(json.dumps(result))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
