"""Tests for stream delivery: no batch lost or written twice across retries, resumes and outages.

Outages are real: the stream's settings point at a loopback proxy (`tests/tcp_proxy.py`) in
front of the real server, which the tests cut off and bring back.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import mysql.connector.errors as mysql_errors
import pytest
from _mysql_connector import MySQLInterfaceError

from config.settings import Settings
from db.connection import Connection, connect, connection, transaction
from db.errors import QueryError
from db.ingest_log import Source, committed_batches, register_source, write_batch
from db.migrate import init_database
from db.schema import CDR_COLUMNS
from ingest.generator import GeneratorConfig
from ingest.scenario import BrokenFeed, CovariateDrift, Scenario
from ingest.seeding import seed_from_generator
from ingest.simulator import GeneratorBase, StreamDays
from ingest.stream import ConnectionFactory, StreamManager, StreamRunner
from tests.polling import wait_for, wait_until_final
from tests.table_digest import table_snapshot
from tests.tcp_proxy import TcpProxy

HISTORY = GeneratorConfig(subscribers=50, days=10)
FIRST_SIMULATED_DAY = date(2024, 1, 11)
FAST_RETRY = {
    "stream_retry_initial_backoff": 0.05,
    "stream_retry_max_backoff": 0.2,
    "stream_retry_max_seconds": 20.0,
}
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.01


ManagerFor = Callable[..., StreamManager]


@pytest.fixture
def seeded(db_settings: Settings) -> Settings:
    seed_from_generator(db_settings, HISTORY, progress=False)
    return db_settings.model_copy(update=FAST_RETRY)


@pytest.fixture
def proxy(seeded: Settings) -> Iterator[TcpProxy]:
    with TcpProxy(seeded.db_host, seeded.db_port) as running:
        yield running


@pytest.fixture
def manager_for() -> Iterator[ManagerFor]:
    """Stream managers whose streams are stopped when the test ends.

    Request it after the database and proxy fixtures, so that it is torn down first.
    """
    managers: list[StreamManager] = []

    def make(
        settings: Settings, connect_db: ConnectionFactory | None = None, **options: Any
    ) -> StreamManager:
        manager = StreamManager(settings, connect_db, **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(timeout=WAIT_SECONDS)


def _start(manager: StreamManager, stream_id: str, **overrides: Any) -> StreamRunner:
    spec: dict[str, Any] = {
        "batch_size": 50,
        "num_batches": 6,
        "interval": 0.0,
        "seed": 11,
        "clock": "simulated",
        "scenario": Scenario(),
        "stream_id": stream_id,
    }
    return manager.start(**{**spec, **overrides})


def _wait_for(
    runner: StreamRunner, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the runner's status until ``done``; fail after `WAIT_SECONDS` or on a final state."""
    return wait_for(runner.status, done, what, timeout=WAIT_SECONDS, interval=POLL_SECONDS)


def _wait_until_ended(runner: StreamRunner) -> dict[str, Any]:
    """The status once the stream has reached a final state, before its thread wrapped up."""
    return wait_until_final(runner.status, timeout=WAIT_SECONDS, interval=POLL_SECONDS)


def _finish(runner: StreamRunner) -> dict[str, Any]:
    if not runner.join(WAIT_SECONDS):
        pytest.fail(f"the stream did not end within {WAIT_SECONDS} s: {runner.status()}")
    return runner.status()


def _query(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _cdr_count(settings: Settings) -> int:
    return int(_query(settings, "SELECT COUNT(*) FROM DP_CDR_Data")[0][0])


def _source_state(settings: Settings, source_id: str) -> tuple[str, str | None]:
    ((state, error),) = _query(
        settings, "SELECT state, last_error FROM ingest_sources WHERE source_id = %s", (source_id,)
    )
    return state, error


def _stream_days(settings: Settings) -> list[tuple[date, int]]:
    """Rows per day of the simulated stream days (those after the seeded history)."""
    return [
        (day, int(count))
        for day, count in _query(
            settings,
            "SELECT DATE(DP_DATE), COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= %s "
            "GROUP BY DATE(DP_DATE) ORDER BY 1",
            (FIRST_SIMULATED_DAY,),
        )
    ]


def _streamed_days(batch_size: int, batches: int) -> list[tuple[date, int]]:
    """Rows per day of the first ``batch_size * batches`` rows streamed after HISTORY (seed 11):
    whole days of the carried-forward population, cut into batches."""
    days = StreamDays(GeneratorBase(HISTORY, HISTORY.days), 11, Scenario())
    expected, left, day = [], batch_size * batches, 0
    while left > 0:
        rows = min(days.day_size(day), left)
        if rows:
            expected.append((FIRST_SIMULATED_DAY + timedelta(days=day), rows))
        left, day = left - rows, day + 1
    return expected


def _logged_batches(settings: Settings, source_id: str) -> dict[int, int]:
    with connection(settings) as conn:
        return committed_batches(conn, source_id)


# --- a batch is written once -------------------------------------------------------------------


def _rows(count: int, day: datetime = datetime(2024, 2, 1)) -> list[tuple[Any, ...]]:
    return [
        (day + timedelta(minutes=i), f"2771{i:07d}", 3, 4.5, 2, 1.25, 1, 0, 2, 30.0, 0)
        for i in range(count)
    ]


def _register(conn: Connection, source_id: str) -> None:
    register_source(conn, Source(source_id, "stream", "test batches", {}, total_batches=3))


def test_writing_a_committed_batch_again_inserts_nothing(db_settings: Settings) -> None:
    with connection(db_settings) as conn:
        _register(conn, "twice")

        first = write_batch(conn, "twice", 0, _rows(5), chunk_rows=2)
        again = write_batch(conn, "twice", 0, _rows(5), chunk_rows=2)
        count_after_retry = _cdr_count(db_settings)
        other = write_batch(conn, "twice", 1, _rows(3), chunk_rows=2)

    assert first is True
    assert again is False
    assert count_after_retry == 5
    assert other is True
    assert _cdr_count(db_settings) == 8
    assert _logged_batches(db_settings, "twice") == {0: 5, 1: 3}


def test_the_same_batch_number_of_another_source_is_another_batch(db_settings: Settings) -> None:
    with connection(db_settings) as conn:
        _register(conn, "left")
        _register(conn, "right")

        assert write_batch(conn, "left", 0, _rows(4), chunk_rows=10)
        assert write_batch(conn, "right", 0, _rows(4), chunk_rows=10)

    assert _cdr_count(db_settings) == 8


def test_a_batch_that_fails_midway_leaves_neither_rows_nor_log_row(db_settings: Settings) -> None:
    bad = _rows(4)
    bad[3] = (*bad[3][:3], -1.0, *bad[3][4:])  # a negative call duration breaks the CHECK
    with connection(db_settings) as conn:
        _register(conn, "atomic")

        # chunks of one row: three rows went in before the fourth failed
        with pytest.raises(QueryError):
            write_batch(conn, "atomic", 0, bad, chunk_rows=1)
        count_after_failure = _cdr_count(db_settings)
        retried = write_batch(conn, "atomic", 0, _rows(4), chunk_rows=1)

    assert count_after_failure == 0
    assert retried is True
    assert _logged_batches(db_settings, "atomic") == {0: 4}
    assert _cdr_count(db_settings) == 4


# --- resuming a stream -------------------------------------------------------------------------


def test_a_resumed_stream_skips_its_committed_batches(
    seeded: Settings, manager_for: ManagerFor
) -> None:
    manager = manager_for(seeded)
    history = _cdr_count(seeded)
    first = _start(manager, "resume-me", num_batches=8, interval=0.3)
    _wait_for(first, lambda s: s["batches_done"] >= 2, "two batches")
    manager.stop()
    stopped = _finish(first)
    done = stopped["batches_done"]
    assert stopped["state"] == "stopped"
    assert 2 <= done < 8
    assert _source_state(seeded, "resume-me") == ("stopped", None)

    # the resumed stream keeps its size, seed, clock and scenario; only the pace may change
    second = _start(
        manager,
        "resume-me",
        batch_size=999,
        num_batches=2,
        seed=None,
        clock="realtime",
        scenario=Scenario(covariate_drift=CovariateDrift()),
    )
    status = _finish(second)

    assert status["state"] == "completed"
    assert (status["batch_size"], status["batches_total"], status["clock"]) == (50, 8, "simulated")
    assert second.spec.seed == 11
    assert second.spec.scenario == Scenario()
    assert status["batches_skipped"] == done
    assert status["batches_done"] == 8 - done
    assert status["rows_done"] == 50 * (8 - done)
    assert _cdr_count(seeded) == history + 8 * 50
    assert _stream_days(seeded) == _streamed_days(50, 8)
    assert _logged_batches(seeded, "resume-me") == dict.fromkeys(range(8), 50)
    assert _source_state(seeded, "resume-me") == ("completed", None)


def test_resuming_a_completed_stream_writes_nothing(
    seeded: Settings, manager_for: ManagerFor
) -> None:
    manager = manager_for(seeded)
    assert _finish(_start(manager, "once", num_batches=3))["state"] == "completed"
    before = _cdr_count(seeded)
    rows_before = _all_rows(seeded)

    status = _finish(_start(manager, "once", num_batches=3))

    assert status["state"] == "completed"
    assert status["batches_skipped"] == 3
    assert status["rows_done"] == 0
    assert _cdr_count(seeded) == before
    assert _all_rows(seeded) == rows_before
    assert _stream_days(seeded) == _streamed_days(50, 3)


def _all_rows(settings: Settings) -> list[tuple[Any, ...]]:
    """Every CDR row, ids included, in id order: a re-run must leave them all as they were."""
    columns = ", ".join(("id", *CDR_COLUMNS))
    return _query(settings, f"SELECT {columns} FROM DP_CDR_Data ORDER BY id")


@pytest.fixture
def twin(db_settings: Settings) -> Iterator[Settings]:
    """A second database holding the same seeded history as ``seeded``."""
    settings = db_settings.model_copy(update={"db_name": f"{db_settings.db_name}_twin"})
    init_database(settings)
    try:
        seed_from_generator(settings, HISTORY, progress=False)
        yield settings.model_copy(update=FAST_RETRY)
    finally:
        with connection(settings, with_database=False) as conn, transaction(conn) as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{settings.db_name}`")


def test_a_resumed_stream_writes_the_rows_an_uninterrupted_one_writes(
    seeded: Settings, twin: Settings, manager_for: ManagerFor
) -> None:
    assert _finish(_start(manager_for(twin), "same", num_batches=6))["state"] == "completed"
    manager = manager_for(seeded)
    interrupted = _start(manager, "same", num_batches=6, interval=0.3)
    _wait_for(interrupted, lambda s: s["batches_done"] >= 2, "two batches")
    manager.stop()
    assert _finish(interrupted)["state"] == "stopped"
    assert _finish(_start(manager, "same", num_batches=6))["state"] == "completed"

    columns = ", ".join(CDR_COLUMNS)
    select = f"SELECT {columns} FROM DP_CDR_Data WHERE DP_DATE >= %s ORDER BY {columns}"
    resumed_rows = _query(seeded, select, (FIRST_SIMULATED_DAY,))
    assert len(resumed_rows) == 300
    assert resumed_rows == _query(twin, select, (FIRST_SIMULATED_DAY,))


# --- bulk loads ---------------------------------------------------------------------------------


def test_bulk_loaded_batches_hold_the_rows_inserted_batches_hold(
    seeded: Settings, twin: Settings, manager_for: ManagerFor
) -> None:
    # NULLs from a broken feed, float amounts, many subscribers: the CSV must carry them exactly.
    spec = {"num_batches": 4, "batch_size": 120, "scenario": Scenario(broken_feed=BrokenFeed())}
    inserting = manager_for(twin, bulk_load=False)
    assert inserting.load_dir is None
    assert _finish(_start(inserting, "same", **spec))["state"] == "completed"
    loading = manager_for(seeded)
    assert loading.load_dir is not None
    assert _finish(_start(loading, "same", **spec))["state"] == "completed"

    nulls = _query(seeded, "SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATA_VOLUME IS NULL")
    assert nulls[0][0] > 0
    for table in ("DP_CDR_Data", "ingest_batches"):
        assert table_snapshot(seeded, table, exclude={"id"}) == table_snapshot(
            twin, table, exclude={"id"}
        )
    assert list(loading.load_dir.iterdir()) == []  # each batch's file was removed


def test_the_load_folder_is_private_and_goes_with_its_manager(seeded: Settings) -> None:
    manager = StreamManager(seeded)
    folder = manager.load_dir
    assert folder is not None and folder.is_dir()
    assert folder.stat().st_mode & 0o077 == 0
    del manager
    gc.collect()
    assert not folder.exists()


class _NoLocalFilesConnection:
    """A real connection that fails LOAD DATA LOCAL as a server with local_infile=OFF does."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def cursor(self, *args: Any, **kwargs: Any) -> _NoLocalFilesCursor:
        return _NoLocalFilesCursor(self._conn.cursor(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _NoLocalFilesCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(operation, str) and operation.startswith("LOAD DATA"):
            raise mysql_errors.ProgrammingError(
                msg="The used command is not allowed with this MariaDB version", errno=1148
            )
        return self._cursor.execute(operation, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def test_a_server_refusing_local_files_gets_inserts(
    seeded: Settings, manager_for: ManagerFor
) -> None:
    def connect_without_local_files() -> Connection:
        conn: Connection = _NoLocalFilesConnection(connect(seeded))  # type: ignore[assignment]
        return conn

    history = _cdr_count(seeded)
    runner = _start(manager_for(seeded, connect_without_local_files), "no-files", num_batches=3)
    status = _finish(runner)

    assert status["state"] == "completed", status
    assert (status["batches_done"], status["retries"]) == (3, 0)
    assert _cdr_count(seeded) == history + 3 * 50
    assert _logged_batches(seeded, "no-files") == dict.fromkeys(range(3), 50)


# --- lost commit acknowledgements ----------------------------------------------------------------


class _LostAcknowledgement:
    """A planted fault: batch ``batch_no`` commits, then its client is told the connection died."""

    def __init__(self, batch_no: int, error: Exception) -> None:
        self.batch_no = batch_no
        self.error = error
        self.fired = 0


class _AckLosingConnection:
    """A real connection whose commit of the faulted batch succeeds and then raises, once."""

    def __init__(self, conn: Connection, fault: _LostAcknowledgement) -> None:
        self._conn = conn
        self._fault = fault
        self.batch_no: int | None = None

    def cursor(self, *args: Any, **kwargs: Any) -> _BatchSpyCursor:
        return _BatchSpyCursor(self._conn.cursor(*args, **kwargs), self)

    def commit(self) -> None:
        batch_no, self.batch_no = self.batch_no, None
        self._conn.commit()
        if batch_no == self._fault.batch_no and not self._fault.fired:
            self._fault.fired += 1
            raise self._fault.error

    def rollback(self) -> None:
        self.batch_no = None
        self._conn.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _BatchSpyCursor:
    """Notes which batch the transaction writes, from its `ingest_batches` insert."""

    def __init__(self, cursor: Any, owner: _AckLosingConnection) -> None:
        self._cursor = cursor
        self._owner = owner

    def execute(self, operation: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        # CDR rows may come as one pre-bound bytes statement; the log row is always str
        if isinstance(operation, str) and operation.startswith("INSERT INTO ingest_batches"):
            self._owner.batch_no = int(params[1])
        return self._cursor.execute(operation, params, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def _cext_lost_connection() -> Exception:
    # what CMySQLConnection.commit() raises when the connection drops during COMMIT
    error = MySQLInterfaceError("Lost connection to MySQL server during query")
    error.errno = 2013
    error.sqlstate = "HY000"
    return error


@pytest.mark.parametrize(
    "make_error",
    [
        pytest.param(
            lambda: mysql_errors.OperationalError(
                msg="Lost connection to MySQL server during query", errno=2013
            ),
            id="operational-error-2013",
        ),
        pytest.param(_cext_lost_connection, id="c-extension-error-2013"),
    ],
)
def test_a_batch_whose_commit_acknowledgement_was_lost_is_not_written_twice(
    seeded: Settings, manager_for: ManagerFor, make_error: Callable[[], Exception]
) -> None:
    fault = _LostAcknowledgement(batch_no=2, error=make_error())

    def connect_losing_acks() -> Connection:
        real = connect(seeded, allow_local_infile_in_path=str(manager.load_dir))
        conn: Connection = _AckLosingConnection(real, fault)  # type: ignore[assignment]
        return conn

    history = _cdr_count(seeded)
    manager = manager_for(seeded, connect_losing_acks)
    runner = _start(manager, "lost-ack", num_batches=5)
    status = _finish(runner)

    assert fault.fired == 1
    assert status["state"] == "completed", status
    assert status["retries"] == 1
    assert status["batches_done"] == 5
    # The batch whose acknowledgement was lost was written by this stream: it counts.
    assert (status["rows_done"], status["batches_skipped"]) == (5 * 50, 0)
    assert _cdr_count(seeded) == history + 5 * 50
    assert _stream_days(seeded) == _streamed_days(50, 5)
    assert _logged_batches(seeded, "lost-ack") == dict.fromkeys(range(5), 50)


# --- database outages --------------------------------------------------------------------------


def test_a_stream_rides_out_a_database_outage_without_losing_or_repeating_a_batch(
    seeded: Settings, proxy: TcpProxy, manager_for: ManagerFor
) -> None:
    through_proxy = seeded.model_copy(update={"db_port": proxy.port})
    history = _cdr_count(seeded)
    runner = _start(
        manager_for(through_proxy), "outage", batch_size=100, num_batches=12, interval=0.05
    )
    _wait_for(runner, lambda s: s["batches_done"] >= 3, "three batches")

    proxy.outage()
    retrying = _wait_for(runner, lambda s: s["state"] == "retrying", "a retry")
    time.sleep(0.6)  # several reconnects are refused meanwhile
    still = runner.status()
    proxy.restore()
    status = _finish(runner)

    assert retrying["retries"] > 0
    assert retrying["last_error"]
    assert still["state"] == "retrying"
    assert still["retries"] > retrying["retries"]
    assert status["state"] == "completed", status
    assert status["batches_done"] == 12
    assert _cdr_count(seeded) == history + 12 * 100
    assert _stream_days(seeded) == _streamed_days(100, 12)
    assert _logged_batches(seeded, "outage") == dict.fromkeys(range(12), 100)
    assert _source_state(seeded, "outage") == ("completed", None)
    assert proxy.connections_accepted() >= 2  # it did reconnect through the proxy


def test_an_outage_longer_than_the_retry_window_fails_the_stream_and_keeps_its_batches(
    seeded: Settings, proxy: TcpProxy, manager_for: ManagerFor
) -> None:
    window = 0.6
    through_proxy = seeded.model_copy(
        update={"db_port": proxy.port, "stream_retry_max_seconds": window}
    )
    history = _cdr_count(seeded)
    runner = _start(
        manager_for(through_proxy), "give-up", batch_size=100, num_batches=40, interval=0.05
    )
    _wait_for(runner, lambda s: s["batches_done"] >= 2, "two batches")

    proxy.outage()
    cut_at = time.monotonic()
    status = _wait_until_ended(runner)
    gave_up_after = time.monotonic() - cut_at
    proxy.restore()
    _finish(runner)

    assert status["state"] == "failed"
    assert status["last_error"]
    assert status["retries"] > 0
    assert gave_up_after >= window * 0.75
    committed = _logged_batches(seeded, "give-up")
    # the batch cut mid-commit may have gone in without the client hearing so
    assert status["batches_done"] <= len(committed) <= status["batches_done"] + 1
    assert sorted(committed) == list(range(len(committed)))
    assert _cdr_count(seeded) == history + 100 * len(committed)


def test_a_stream_failed_by_an_outage_is_recorded_as_failed_once_the_database_is_back(
    seeded: Settings, proxy: TcpProxy, manager_for: ManagerFor
) -> None:
    through_proxy = seeded.model_copy(
        update={"db_port": proxy.port, "stream_retry_max_seconds": 0.3}
    )
    runner = _start(
        manager_for(through_proxy), "unrecorded", batch_size=100, num_batches=40, interval=0.05
    )
    _wait_for(runner, lambda s: s["batches_done"] >= 2, "two batches")
    proxy.outage()
    assert _wait_until_ended(runner)["state"] == "failed"

    proxy.restore()
    deadline = time.monotonic() + 2
    while (recorded := _source_state(seeded, "unrecorded"))[0] != "failed":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)

    assert recorded[0] == "failed"
    assert recorded[1]
