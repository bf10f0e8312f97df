"""Connections to the MySQL/MariaDB server named by the settings."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import mysql.connector
from mysql.connector.abstracts import MySQLConnectionAbstract

from config.settings import Settings
from db.errors import DRIVER_ERRORS, DatabaseUnavailable, classify, translate

log = logging.getLogger(__name__)

Connection = MySQLConnectionAbstract
# The connector types rows as unions of every SQL type, which helps no caller.
Cursor = Any


def connect(
    settings: Settings,
    *,
    with_database: bool = True,
    statement_timeout: float | None = None,
    **options: Any,
) -> Connection:
    """Open a connection (autocommit off) to the server, and to ``DB_NAME`` unless told not to.

    Args:
        settings: The connection settings.
        with_database: Select ``DB_NAME``.
        statement_timeout: Bound every wait on the server to this many seconds (a hung server
            then fails the statement with a lost connection, which is transient). Such a
            connection uses the pure-Python client: the C extension can bound neither a
            statement nor its hold on the GIL, which freezes every thread of the process
            while the server hangs.
        **options: Further `mysql.connector.connect` arguments.

    Raises:
        DatabaseUnavailable: the server does not answer.
        AccessDenied: the server refused the credentials.
        SchemaMissing: the server has no database ``DB_NAME``.
        DatabaseError: the server refused the connection for another reason.
    """
    params: dict[str, Any] = {
        "host": settings.db_host,
        "port": settings.db_port,
        "user": settings.db_user,
        "password": settings.db_password.get_secret_value(),
        "connection_timeout": settings.db_connect_timeout,
        "autocommit": False,
        "charset": "utf8mb4",
        "collation": "utf8mb4_general_ci",
        "use_pure": statement_timeout is not None or not mysql.connector.HAVE_CEXT,
        **options,
    }
    if statement_timeout is not None:
        params["connection_timeout"] = min(settings.db_connect_timeout, statement_timeout)
    elif not mysql.connector.HAVE_CEXT:
        log.warning("the connector's C extension is unavailable; using the slower pure client")
    if settings.db_socket:
        params["unix_socket"] = settings.db_socket
    if with_database:
        params["database"] = settings.db_name
    try:
        conn = mysql.connector.connect(**params)
    except DRIVER_ERRORS as exc:
        where = f"{settings.db_user}@{settings.db_host}:{settings.db_port}"
        unreachable = issubclass(classify(exc), DatabaseUnavailable)
        problem = "is unreachable" if unreachable else "refused the connection"
        raise translate(exc, f"database server {where} {problem}") from exc
    if statement_timeout is not None:
        _bound_statements(conn, statement_timeout)
    if params["use_pure"]:
        _no_delay(conn)
    return conn  # type: ignore[return-value]


def _no_delay(conn: Any) -> None:
    # The pure client leaves Nagle's algorithm on, so a small write that follows another
    # (the closing packet of a LOAD DATA LOCAL file) waits for the server's delayed ACK:
    # ~40 ms per batch, measured. The C client turns it off; so do we.
    sock = getattr(getattr(conn, "_socket", None), "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _bound_statements(conn: Any, seconds: float) -> None:
    # The pure client bounds only the handshake by `connection_timeout` and then clears its
    # socket's timeout; setting it again bounds every later read and write. The driver (9.0)
    # has no public option for it.
    conn._socket.set_connection_timeout(seconds)


@contextmanager
def connection(settings: Settings, **options: Any) -> Iterator[Connection]:
    """A connection that is closed on exit."""
    conn = connect(settings, **options)
    try:
        yield conn
    finally:
        close_quietly(conn)


def close_quietly(conn: Connection) -> None:
    """Close ``conn``; a connection already lost may fail to close, and nothing is left then.

    Closing must not replace the error that ended the work (a lost connection) with the
    driver's complaint about closing it.
    """
    try:
        conn.close()
    except DRIVER_ERRORS:
        log.debug("closing a broken connection failed", exc_info=True)


@contextmanager
def transaction(conn: Connection, *, prepared: bool = False) -> Iterator[Cursor]:
    """A cursor whose statements commit together on success and roll back on any error.

    ``prepared``: statements run server-side prepared, so rows come in the binary protocol
    (numbers as their bytes, not as text to format and parse: faster for wide numeric reads).

    This is where the driver's errors become ours: one the block (or the commit) raises leaves
    as a :class:`~db.errors.DatabaseError` (see :mod:`db.errors`), the driver's exception kept
    as its ``__cause__``. A driver error the block catches itself never gets here.

    Raises:
        DatabaseUnavailable: the connection was lost or is gone.
        IntegrityConflict: a key or constraint refused a row.
        QueryError: a statement failed (and the other classes of :mod:`db.errors`).
    """
    try:
        cursor: Cursor = conn.cursor(prepared=True) if prepared else conn.cursor()
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
    try:
        yield cursor
        conn.commit()
    except BaseException as exc:
        # If the connection is gone the server rolls the transaction back itself; the
        # rollback's own error must not hide the one that got us here.
        with suppress(Exception):
            conn.rollback()
        if isinstance(exc, DRIVER_ERRORS):
            raise translate(exc) from exc
        raise
    finally:
        with suppress(Exception):
            cursor.close()


def ensure_database(settings: Settings) -> None:
    """Create the ``DB_NAME`` database when missing, so several can share one server."""
    with connection(settings, with_database=False) as conn, transaction(conn) as cursor:
        # Identifiers cannot be bound; DB_NAME is restricted to [A-Za-z0-9_] by the settings.
        cursor.execute(
            f"CREATE DATABASE IF NOT EXISTS `{settings.db_name}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        )


def database_exists(settings: Settings) -> bool:
    """Whether the server holds a database named ``DB_NAME``."""
    with connection(settings, with_database=False) as conn, transaction(conn) as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (settings.db_name,)
        )
        return cursor.fetchone() is not None


def drop_database(settings: Settings) -> None:
    """Drop the ``DB_NAME`` database and everything in it, if it exists."""
    with connection(settings, with_database=False) as conn, transaction(conn) as cursor:
        # Identifiers cannot be bound; DB_NAME is restricted to [A-Za-z0-9_] by the settings.
        cursor.execute(f"DROP DATABASE IF EXISTS `{settings.db_name}`")


def server_version(conn: Connection) -> str:
    """The version string the server reports, e.g. ``11.4.2-MariaDB``."""
    with transaction(conn) as cursor:
        cursor.execute("SELECT VERSION()")
        (version,) = cursor.fetchone()
    return str(version)


def ping(settings: Settings, timeout: float | None = None) -> None:
    """Raise :class:`DatabaseUnavailable` or :class:`DatabaseError` unless the database answers.

    Args:
        settings: The connection settings.
        timeout: Give up after this many seconds on a server that accepts but does not answer
            (a hung server), instead of waiting for the operating system.
    """
    with connection(settings, statement_timeout=timeout) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
