"""The database layer's exceptions."""

from __future__ import annotations

import mysql.connector.errors as mysql_errors

try:  # the C extension raises its own exception types from commit() and rollback()
    from _mysql_connector import MySQLError as _CextError
    from _mysql_connector import MySQLInterfaceError as _CextInterfaceError

    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (mysql_errors.Error, _CextError)
    _CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
        mysql_errors.InterfaceError,
        mysql_errors.OperationalError,
        _CextInterfaceError,
    )
except ImportError:
    _DRIVER_ERRORS = (mysql_errors.Error,)
    _CONNECTION_ERRORS = (mysql_errors.InterfaceError, mysql_errors.OperationalError)


class DatabaseError(Exception):
    """A database operation failed; the message is safe to show to a user."""


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached or the connection was lost (worth retrying)."""


class MigrationError(DatabaseError):
    """A migration is malformed, failed, or no longer matches the one applied."""


# Client errors that mean "the server went away", as opposed to a bad statement:
# 2003 can't connect, 2006 server has gone away, 2013 lost connection during query,
# 2055 lost connection (SSL / pure client), 1053 server shutdown in progress.
_TRANSIENT_ERRNOS = frozenset({1053, 2003, 2005, 2006, 2013, 2055})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost or refused connection rather than a bad request."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, _DRIVER_ERRORS):
        errno = getattr(exc, "errno", None)
        if errno in _TRANSIENT_ERRNOS:
            return True
        # A connection that is already gone is reported without a server errno
        # (None, or -1 for "MySQL Connection not available").
        return errno in (None, -1) and isinstance(exc, _CONNECTION_ERRORS)
    return isinstance(exc, ConnectionError)
