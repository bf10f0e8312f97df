"""Versioned migrations: `db/migrations/NNNN_name.sql`, applied once each, in order.

A migration file may change its statement delimiter with `DELIMITER` lines, as the `mysql`
client does, so the same files also run in the official image's `docker-entrypoint-initdb.d`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from db.connection import Connection, connection, ensure_database, transaction
from db.errors import MigrationError, QueryError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_NAME = "cdr_pipeline_migrations"
_LOCK_TIMEOUT_S = 60

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT UNSIGNED NOT NULL,
    name       VARCHAR(128) NOT NULL,
    checksum   CHAR(64)     NOT NULL,
    applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4
"""
_SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


def split_statements(sql: str) -> list[str]:
    """Split a script into statements, honouring `DELIMITER` lines and `--` comment lines."""
    statements: list[str] = []
    delimiter = ";"
    buffer: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("DELIMITER "):
            delimiter = stripped.split(None, 1)[1]
            continue
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        buffer.append(line)
        if stripped.endswith(delimiter):
            text = "\n".join(buffer).rstrip()
            statements.append(text[: -len(delimiter)].strip())
            buffer = []
    if "\n".join(buffer).strip():
        raise MigrationError(f"statement without a closing '{delimiter}': {buffer[0].strip()}")
    return statements


def apply_migrations(conn: Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded in `schema_migrations`; return their names.

    A server-side lock keeps two concurrent runs (two containers, two test workers) apart.

    Raises:
        MigrationError: A migration is malformed, was edited after it was applied, or one of
            its statements failed (the message names it).
        DatabaseUnavailable: The connection was lost.
    """
    migrations = discover() if migrations is None else migrations
    applied_now: list[str] = []
    with transaction(conn) as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", (_LOCK_NAME, _LOCK_TIMEOUT_S))
        (locked,) = cursor.fetchone()
    if locked != 1:
        raise MigrationError("another migration run holds the lock; try again when it ends")
    try:
        with transaction(conn) as cursor:
            cursor.execute(_CREATE_LEDGER)
            cursor.execute(_SELECT_APPLIED)
            applied = {int(v): str(c) for v, c in cursor.fetchall()}
        for migration in migrations:
            label = f"{migration.version:04d}_{migration.name}"
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {label} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            # MySQL commits DDL implicitly, so each statement is written to be re-runnable
            # (IF NOT EXISTS, OR REPLACE) and the ledger row goes last.
            try:
                with transaction(conn) as cursor:
                    for statement in split_statements(migration.sql):
                        cursor.execute(statement)
                    cursor.execute(_RECORD, (migration.version, migration.name, migration.checksum))
            except QueryError as exc:
                raise MigrationError(
                    f"migration {label} failed: {exc}", errno=exc.errno, sqlstate=exc.sqlstate
                ) from exc
            log.info("applied migration %s", label)
            applied_now.append(label)
    finally:
        with transaction(conn) as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (_LOCK_NAME,))
            cursor.fetchall()
    return applied_now


def init_database(settings: Settings) -> list[str]:
    """Create ``DB_NAME`` if missing and bring its schema up to date."""
    ensure_database(settings)
    with connection(settings) as conn:
        return apply_migrations(conn)
