"""The driver's errors leave `db/` translated: one hierarchy, stable codes, the cause kept."""

from __future__ import annotations

import logging
import socket
import threading
import time

import mysql.connector.errors as mysql_errors
import pytest
from _mysql_connector import MySQLInterfaceError

from config.settings import Settings
from db.connection import connect, connection, transaction
from db.errors import (
    AccessDenied,
    DatabaseError,
    DatabaseUnavailable,
    IntegrityConflict,
    QueryError,
    SchemaMissing,
    is_transient,
    translate,
)


def _closed_port() -> int:
    with socket.socket() as probe:  # nothing listens on it once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_lost_connection_is_unavailable_and_keeps_its_cause(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="db.errors")
    with connection(db_settings) as victim, connection(db_settings) as killer:
        with transaction(victim) as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (victim_id,) = cursor.fetchone()
        with transaction(killer) as cursor:
            cursor.execute("KILL CONNECTION %s", (victim_id,))

        with pytest.raises(DatabaseUnavailable) as raised, transaction(victim) as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    error = raised.value
    assert error.code == "database_unavailable"
    assert is_transient(error)
    assert isinstance(error.__cause__, (mysql_errors.Error, MySQLInterfaceError))
    assert is_transient(error.__cause__)
    # The driver notices the dead link when the cursor opens (no errno) or on the query.
    assert error.errno in (None, 2006, 2013)
    assert str(error) == translate(error.__cause__).args[0]
    cause = type(error.__cause__).__name__
    assert any(f"driver error {cause}" in record.getMessage() for record in caplog.records)


def test_a_connection_killed_during_a_query_is_unavailable(db_settings: Settings) -> None:
    with connection(db_settings) as victim, connection(db_settings) as killer:
        with transaction(victim) as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (victim_id,) = cursor.fetchone()

        def kill_once_sleeping() -> None:
            while True:  # wait until the victim's statement runs, then cut its connection
                with transaction(killer) as cursor:
                    cursor.execute(
                        "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (victim_id,),
                    )
                    row = cursor.fetchone()
                if row and row[0] and "SLEEP" in str(row[0]):
                    break
                time.sleep(0.05)
            with transaction(killer) as cursor:
                cursor.execute("KILL CONNECTION %s", (victim_id,))

        thread = threading.Thread(target=kill_once_sleeping)
        thread.start()
        try:
            with pytest.raises(DatabaseUnavailable) as raised, transaction(victim) as cursor:
                cursor.execute("SELECT SLEEP(30)")
                cursor.fetchall()
        finally:
            thread.join()

    assert raised.value.errno in (2006, 2013)
    assert f"(error {raised.value.errno})" in str(raised.value)
    assert is_transient(raised.value.__cause__)  # type: ignore[arg-type]


def test_a_duplicate_key_is_an_integrity_conflict(db_settings: Settings) -> None:
    with connection(db_settings) as conn:
        with transaction(conn) as cursor:
            cursor.execute("CREATE TEMPORARY TABLE t (id INT PRIMARY KEY)")
            cursor.execute("INSERT INTO t VALUES (1)")

        with pytest.raises(IntegrityConflict) as raised, transaction(conn) as cursor:
            cursor.execute("INSERT INTO t VALUES (2)")
            cursor.execute("INSERT INTO t VALUES (1)")

        with transaction(conn) as cursor:  # the failed transaction was rolled back whole
            cursor.execute("SELECT id FROM t")
            assert cursor.fetchall() == [(1,)]

    error = raised.value
    assert isinstance(error, QueryError)
    assert (error.code, error.errno, error.sqlstate) == (
        "database_integrity_conflict",
        1062,
        "23000",
    )
    assert error.duplicate_key
    assert not is_transient(error)
    assert isinstance(error.__cause__, mysql_errors.IntegrityError)
    assert "Duplicate entry '1'" in str(error)
    assert "Duplicate" not in error.public_message


def test_a_syntax_error_is_a_query_error_logged_in_detail(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="db.errors")
    with (
        connection(db_settings) as conn,
        pytest.raises(QueryError) as raised,
        transaction(conn) as cursor,
    ):
        cursor.execute("SELEC 1")

    error = raised.value
    assert type(error) is QueryError
    assert (error.code, error.errno) == ("database_query_failed", 1064)
    assert not is_transient(error)
    assert isinstance(error.__cause__, mysql_errors.ProgrammingError)
    assert "SQL syntax" in str(error)
    assert error.public_message == "a database statement failed"
    [record] = [r for r in caplog.records if r.name == "db.errors"]
    assert "ProgrammingError" in record.getMessage() and "SQL syntax" in record.getMessage()


def test_a_missing_table_says_how_to_create_the_schema(db_settings: Settings) -> None:
    with (
        connection(db_settings) as conn,
        pytest.raises(SchemaMissing, match="python -m db init") as raised,
        transaction(conn) as cursor,
    ):
        cursor.execute("SELECT * FROM no_such_table")

    assert raised.value.code == "database_schema_missing"


def test_an_unreachable_server_names_it_for_the_cli_but_not_for_clients(
    base_settings: Settings,
) -> None:
    port = _closed_port()
    settings = base_settings.model_copy(
        update={"db_host": "127.0.0.1", "db_port": port, "db_socket": None}
    )

    with pytest.raises(DatabaseUnavailable) as raised:
        connect(settings)

    error = raised.value
    assert f"database server {settings.db_user}@127.0.0.1:{port} is unreachable" in str(error)
    assert error.code == "database_unavailable"
    assert "127.0.0.1" not in error.public_message and "@" not in error.public_message
    assert isinstance(error.__cause__, mysql_errors.Error)


def test_refused_credentials_and_an_unknown_database_are_told_apart(
    base_settings: Settings,
) -> None:
    stranger = base_settings.model_copy(update={"db_user": "no_such_user_cli_test"})
    with pytest.raises(AccessDenied, match="refused the connection") as denied:
        connect(stranger, with_database=False)
    assert denied.value.errno == 1045
    assert "no_such_user" not in denied.value.public_message

    absent = base_settings.model_copy(update={"db_name": "no_such_database_cli_test"})
    with pytest.raises(SchemaMissing, match="python -m db init"):
        connect(absent)


def _cext_lost_connection() -> Exception:
    # what CMySQLConnection.commit() raises when the connection drops during COMMIT
    error = MySQLInterfaceError("Lost connection to MySQL server during query")
    error.errno = 2013
    error.sqlstate = "HY000"
    return error


@pytest.mark.parametrize(
    ("make_error", "expected", "transient"),
    [
        (lambda: mysql_errors.OperationalError(msg="Lost", errno=2013), DatabaseUnavailable, True),
        (_cext_lost_connection, DatabaseUnavailable, True),
        (lambda: mysql_errors.OperationalError(msg="MySQL Connection not available"), None, True),
        (lambda: mysql_errors.InterfaceError(msg="gone", errno=-1), DatabaseUnavailable, True),
        (lambda: mysql_errors.IntegrityError(msg="dup", errno=1062), IntegrityConflict, False),
        (
            lambda: mysql_errors.DataError(msg="CHECK", errno=4025, sqlstate="23000"),
            IntegrityConflict,
            False,
        ),
        (lambda: mysql_errors.ProgrammingError(msg="denied", errno=1142), AccessDenied, False),
        (lambda: mysql_errors.DatabaseError(msg="timeout", errno=1969), QueryError, False),
    ],
)
def test_translation_and_is_transient_agree_for_raw_and_translated_errors(
    make_error: object, expected: type[DatabaseError] | None, transient: bool
) -> None:
    raw = make_error()  # type: ignore[operator]
    translated = translate(raw)

    assert is_transient(raw) is transient
    assert is_transient(translated) is transient
    if expected is not None:
        assert type(translated) is expected
    assert translate(translated) is translated


def test_a_commit_that_loses_its_connection_is_unavailable(db_settings: Settings) -> None:
    class LosingCommits:
        """A connection whose COMMIT fails the way the C extension reports a lost link."""

        def __init__(self, conn: object) -> None:
            self._conn = conn

        def commit(self) -> None:
            raise _cext_lost_connection()

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

    with connection(db_settings) as conn:
        losing = LosingCommits(conn)
        with pytest.raises(DatabaseUnavailable) as raised, transaction(losing) as cursor:  # type: ignore[arg-type]
            cursor.execute("SELECT 1")
            cursor.fetchall()

    assert isinstance(raised.value.__cause__, MySQLInterfaceError)


def test_closing_a_broken_connection_keeps_the_error_that_broke_it(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatabaseUnavailable, match="server gone"), connection(db_settings) as conn:
        close = conn.close

        def close_and_complain() -> None:
            close()
            raise mysql_errors.OperationalError(msg="MySQL Connection not available")

        monkeypatch.setattr(conn, "close", close_and_complain)
        raise DatabaseUnavailable("server gone")
