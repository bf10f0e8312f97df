"""The database layer's exceptions, and the one translation of the driver's errors into them.

Only `db/` sees the driver's exceptions: :func:`db.connection.connect` and
:func:`db.connection.transaction` turn every one of them into a :class:`DatabaseError`, so the
stages catch these and nothing else.

    DatabaseError                 code "database_error"
    ├── DatabaseUnavailable       "database_unavailable": refused or lost connection (retry)
    ├── AccessDenied              "database_access_denied": the credentials were refused
    ├── SchemaMissing             "database_schema_missing": no such database, table or procedure
    ├── QueryError                "database_query_failed": a statement failed
    │   └── IntegrityConflict     "database_integrity_conflict": a key or constraint refused it
    └── MigrationError            "database_migration_failed"

``str(error)`` is for a command-line user and the log: it may name the server and quote the
driver. An HTTP service answers with ``error.code`` and ``error.public_message`` only, which
never hold driver text, hosts or user names; the driver's exception stays as ``__cause__``.
"""

from __future__ import annotations

import logging

import mysql.connector.errors as mysql_errors

log = logging.getLogger(__name__)

try:  # the C extension raises its own exception types from commit() and rollback()
    from _mysql_connector import MySQLError as _CextError
    from _mysql_connector import MySQLInterfaceError as _CextInterfaceError

    DRIVER_ERRORS: tuple[type[Exception], ...] = (mysql_errors.Error, _CextError)
    _CONNECTION_ERRORS: tuple[type[Exception], ...] = (
        mysql_errors.InterfaceError,
        mysql_errors.OperationalError,
        _CextInterfaceError,
    )
except ImportError:
    DRIVER_ERRORS = (mysql_errors.Error,)
    _CONNECTION_ERRORS = (mysql_errors.InterfaceError, mysql_errors.OperationalError)


class DatabaseError(Exception):
    """A database operation failed.

    Attributes:
        code: A stable identifier of the kind of failure, for clients and metrics.
        public_message: Plain text safe to show any client: no driver text, host or user.
        errno: The server's or client's error number, when the driver gave one.
        sqlstate: The SQLSTATE, when the driver gave one.
    """

    code = "database_error"
    public_message = "the database could not complete the request"

    def __init__(
        self, message: str, *, errno: int | None = None, sqlstate: str | None = None
    ) -> None:
        super().__init__(message)
        self.errno = errno
        self.sqlstate = sqlstate


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached or the connection was lost (worth retrying)."""

    code = "database_unavailable"
    public_message = "the database is unavailable; try again shortly"


class AccessDenied(DatabaseError):
    """The server refused the credentials or the privilege a statement needs."""

    code = "database_access_denied"
    public_message = "the database refused the service's credentials"


class SchemaMissing(DatabaseError):
    """The database, or a table or procedure of the schema, does not exist yet."""

    code = "database_schema_missing"
    public_message = "the database schema is missing; initialise the database first"


class QueryError(DatabaseError):
    """A statement failed: a bad statement, bad data, or a server-side check."""

    code = "database_query_failed"
    public_message = "a database statement failed"


class IntegrityConflict(QueryError):
    """A unique key, foreign key or CHECK constraint refused a row."""

    code = "database_integrity_conflict"
    public_message = "the change conflicts with data the database already holds"

    @property
    def duplicate_key(self) -> bool:
        """Whether a unique or primary key already holds the value."""
        return self.errno in _DUPLICATE_KEY_ERRNOS


class MigrationError(DatabaseError):
    """A migration is malformed, failed, or no longer matches the one applied."""

    code = "database_migration_failed"
    public_message = "the database schema could not be brought up to date"


# Client errors that mean "the server went away", as opposed to a bad statement:
# 2003 can't connect, 2006 server has gone away, 2013 lost connection during query,
# 2055 lost connection (SSL / pure client), 1053 server shutdown in progress.
_TRANSIENT_ERRNOS = frozenset({1053, 2003, 2005, 2006, 2013, 2055})
# 1044/1045 access denied to a database / for a user, 1698 (MariaDB) unix-socket auth refused,
# 1142/1143 a table or column privilege is missing.
_ACCESS_ERRNOS = frozenset({1044, 1045, 1142, 1143, 1698})
# 1049 unknown database, 1109 unknown table (in information_schema), 1146 no such table,
# 1305 no such procedure.
_SCHEMA_ERRNOS = frozenset({1049, 1109, 1146, 1305})
# 1062 duplicate entry, 1586 duplicate entry for a named key.
_DUPLICATE_KEY_ERRNOS = frozenset({1062, 1586})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, translated or still the driver's, is a lost or refused connection."""
    if isinstance(exc, DatabaseError):
        return isinstance(exc, DatabaseUnavailable)
    if isinstance(exc, DRIVER_ERRORS):
        errno = getattr(exc, "errno", None)
        if errno in _TRANSIENT_ERRNOS:
            return True
        # A connection that is already gone is reported without a server errno
        # (None, or -1 for "MySQL Connection not available").
        return errno in (None, -1) and isinstance(exc, _CONNECTION_ERRORS)
    return isinstance(exc, ConnectionError)


def classify(exc: BaseException) -> type[DatabaseError]:
    """The class of our hierarchy that a driver exception translates into."""
    if isinstance(exc, DatabaseError):
        return type(exc)
    if is_transient(exc):
        return DatabaseUnavailable
    errno = getattr(exc, "errno", None)
    if errno in _ACCESS_ERRNOS:
        return AccessDenied
    if errno in _SCHEMA_ERRNOS:
        return SchemaMissing
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, mysql_errors.IntegrityError) or sqlstate.startswith("23"):
        return IntegrityConflict
    return QueryError


def translate(exc: BaseException, context: str | None = None) -> DatabaseError:
    """``exc``, a driver exception, as an error of our hierarchy (raise it ``from exc``).

    Args:
        exc: The driver's exception (an error of ours is returned unchanged).
        context: What was being done, put before the driver's message, e.g.
            ``"database server root@db:3306 is unreachable"``.
    """
    if isinstance(exc, DatabaseError):
        return exc
    kind = classify(exc)
    errno = getattr(exc, "errno", None)
    errno = errno if isinstance(errno, int) and errno > 0 else None
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(getattr(exc, "msg", None) or exc or type(exc).__name__)
    detail = f"{text} (error {errno})" if errno is not None else text
    message = f"{context}: {detail}" if context else detail
    if kind is SchemaMissing:
        message += "; `python -m db init` creates the database and its schema"
    log.debug(
        "driver error %s (errno %s, sqlstate %s) raised as %s: %s",
        type(exc).__name__,
        errno,
        sqlstate,
        kind.__name__,
        text,
    )
    return kind(message, errno=errno, sqlstate=sqlstate if isinstance(sqlstate, str) else None)
