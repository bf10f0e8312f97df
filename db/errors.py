"""The database layer's exceptions."""

from __future__ import annotations

import mysql.connector.errors as mysql_errors


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
    if isinstance(exc, mysql_errors.Error):
        if exc.errno in _TRANSIENT_ERRNOS:
            return True
        # errno-less interface errors come from a socket that broke under the client
        return exc.errno is None and isinstance(
            exc, mysql_errors.InterfaceError | mysql_errors.OperationalError
        )
    return isinstance(exc, ConnectionError)
