"""Migrations against the real server: idempotent, ordered, guarded against edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.errors import MigrationError, QueryError
from db.migrate import Migration, apply_migrations, discover, init_database, split_statements


def _tables(settings: Settings) -> set[str]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SHOW TABLES")
        return {row[0] for row in cursor.fetchall()}


def test_init_creates_schema_once(db_settings: Settings) -> None:
    assert {
        "DP_CDR_Data",
        "ingest_sources",
        "ingest_batches",
        "DailySummary",
        "schema_migrations",
    } <= _tables(db_settings)
    assert init_database(db_settings) == []  # already applied by the fixture
    with connection(db_settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in cursor.fetchall()] == [m.version for m in discover()]
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME = 'GetDailyCDRDataBatch'"
        )
        assert cursor.fetchone()[0] == 1


def test_cdr_table_has_typed_columns_and_indexes(db_settings: Settings) -> None:
    with connection(db_settings) as conn, transaction(conn) as cursor:
        cursor.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'DP_CDR_Data'"
        )
        types = dict(cursor.fetchall())
        cursor.execute("SHOW INDEX FROM DP_CDR_Data")
        indexes = {(row[2], row[4]) for row in cursor.fetchall()}
    assert types["DP_DATE"] == "datetime"
    assert types["DP_MOC_COUNT"] == "int" and types["DP_DATA_VOLUME"] == "double"
    assert ("ix_cdr_date", "DP_DATE") in indexes
    assert ("ix_cdr_subscriber_date", "DP_MSISDN") in indexes


def test_init_creates_a_missing_database(base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={"db_name": "cdrtest_created_by_init"})
    try:
        assert len(init_database(settings)) == len(discover())
    finally:
        with connection(base_settings, with_database=False) as conn, transaction(conn) as cur:
            cur.execute("DROP DATABASE IF EXISTS cdrtest_created_by_init")


def test_edited_migration_is_refused(db_settings: Settings) -> None:
    first = discover()[0]
    edited = Migration(first.version, first.name, first.sql + "\n-- edited\n")
    with connection(db_settings) as conn, pytest.raises(MigrationError, match="was changed"):
        apply_migrations(conn, [edited])


def test_new_migration_applies_in_order(db_settings: Settings) -> None:
    extra = Migration(9999, "extra", "CREATE TABLE IF NOT EXISTS extra_t (x INT);")
    with connection(db_settings) as conn:
        assert apply_migrations(conn, [*discover(), extra]) == ["9999_extra"]
        assert apply_migrations(conn, [*discover(), extra]) == []
    assert "extra_t" in _tables(db_settings)


def test_a_failing_migration_names_itself_and_is_not_recorded(db_settings: Settings) -> None:
    broken = Migration(
        9998, "broken", "CREATE TABLE broken_t (x INT);\nCREATE TABLEE oops (x INT);"
    )
    with connection(db_settings) as conn:
        with pytest.raises(MigrationError, match="migration 9998_broken failed") as raised:
            apply_migrations(conn, [*discover(), broken])
        assert raised.value.errno == 1064
        assert raised.value.code == "database_migration_failed"
        assert isinstance(raised.value.__cause__, QueryError)
        with transaction(conn) as cursor:
            cursor.execute("SELECT COUNT(*) FROM schema_migrations WHERE version = 9998")
            assert cursor.fetchone() == (0,)
        # The lock was released: the next run (the fix) goes through.
        fixed = Migration(9998, "broken", "CREATE TABLE IF NOT EXISTS broken_t (x INT);")
        assert apply_migrations(conn, [*discover(), fixed]) == ["9998_broken"]


def test_split_statements_honours_delimiter() -> None:
    sql = """
-- a comment
CREATE TABLE a (x INT);
DELIMITER //
CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END //
DELIMITER ;
INSERT INTO a VALUES (1);
"""
    assert split_statements(sql) == [
        "CREATE TABLE a (x INT)",
        "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
        "INSERT INTO a VALUES (1)",
    ]


def test_unterminated_statement_is_an_error() -> None:
    with pytest.raises(MigrationError, match="without a closing"):
        split_statements("CREATE TABLE a (x INT)")


def test_misnamed_migration_file(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lowercase_name"):
        discover(tmp_path)
