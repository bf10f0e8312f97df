"""The model registry and scored rows: one current model, replace-not-duplicate writes."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.models import (
    PREDICTION_COLUMNS,
    ModelRecord,
    count_predictions,
    current_model,
    get_model,
    register_model,
    replace_scored_range,
)
from db.staging import create_staging, drop_staging
from tests.table_digest import TableSnapshot, table_snapshot


def _record(version: str) -> ModelRecord:
    return ModelRecord(
        version=version,
        split_kind="time",
        train_start=date(2024, 1, 1),
        train_end=date(2024, 1, 31),
        test_start=date(2024, 2, 15),
        test_end=date(2024, 2, 29),
        params={"numTrees": 30},
        metrics={"roc_auc": 0.9},
        features=[{"name": "x", "type": "continuous"}],
        path=f"/models/{version}",
    )


def _staged(settings: Settings, version: str, period: str, days: list[date]) -> str:
    """A staging table holding three subscribers' rows for each of ``days``."""
    with connection(settings) as conn:
        staging = create_staging(conn, "model_predictions", PREDICTION_COLUMNS)
        with transaction(conn) as cursor:
            cursor.executemany(
                f"INSERT INTO `{staging}` VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (version, f"s{s}", day, period, 0.7, 0.3, 0, None, '{"x": 1}')
                    for day in days
                    for s in range(3)
                ],
            )
    return staging


def _register(settings: Settings, version: str, days: list[date]) -> int:
    staging = _staged(settings, version, "reference", days)
    try:
        with connection(settings) as conn:
            return register_model(conn, staging, _record(version))
    finally:
        with connection(settings) as conn:
            drop_staging(conn, staging)


def _score(settings: Settings, version: str, days: list[date], start: date, end: date) -> int:
    staging = _staged(settings, version, "analysis", days)
    try:
        with connection(settings) as conn:
            return replace_scored_range(conn, staging, version, start, end)
    finally:
        with connection(settings) as conn:
            drop_staging(conn, staging)


def _feb(*days: int) -> list[date]:
    return [date(2024, 2, d) for d in days]


def _mar(*days: int) -> list[date]:
    return [date(2024, 3, d) for d in days]


def _model_tables(settings: Settings) -> tuple[TableSnapshot, ...]:
    # A replaced prediction gets a new id by design (the poller's watermark): compare the rest.
    return (
        table_snapshot(settings, "model_registry"),
        table_snapshot(settings, "model_predictions", exclude={"id"}),
    )


def _fetch(settings: Settings, sql: str) -> Any:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_registering_makes_one_current_model_and_replaces_its_reference(
    db_settings: Settings,
) -> None:
    assert _register(db_settings, "v1", _feb(15, 16)) == 6
    assert _register(db_settings, "v2", _feb(15)) == 3
    with connection(db_settings) as conn:
        current = current_model(conn)
        assert current is not None and current.version == "v2"
        old = get_model(conn, "v1")
        assert old is not None and not old.is_current
        assert old.params == {"numTrees": 30} and old.test_end == date(2024, 2, 29)
    assert _register(db_settings, "v1", _feb(15, 16, 17)) == 9  # again: replaced, not added
    with connection(db_settings) as conn:
        assert count_predictions(conn, "v1", "reference") == 9
        current = current_model(conn)
        assert current is not None and current.version == "v1"
    assert _fetch(db_settings, "SELECT SUM(is_current) FROM model_registry") == [(1,)]


def test_registering_the_same_model_again_changes_nothing(db_settings: Settings) -> None:
    _register(db_settings, "v1", _feb(15, 16))
    _register(db_settings, "v2", _feb(15))
    before = _model_tables(db_settings)

    assert _register(db_settings, "v2", _feb(15)) == 3

    assert _model_tables(db_settings) == before


def test_scored_ranges_are_replaced_not_duplicated(db_settings: Settings) -> None:
    _register(db_settings, "v1", _feb(15))
    assert _score(db_settings, "v1", _mar(1, 2, 3), date(2024, 3, 1), date(2024, 3, 3)) == 9
    scored = _model_tables(db_settings)
    assert _score(db_settings, "v1", _mar(1, 2, 3), date(2024, 3, 1), date(2024, 3, 3)) == 9
    assert _model_tables(db_settings) == scored
    # A narrower range replaces only its own days.
    assert _score(db_settings, "v1", _mar(2), date(2024, 3, 2), date(2024, 3, 2)) == 3
    with connection(db_settings) as conn:
        assert count_predictions(conn, "v1", "analysis") == 9
        assert count_predictions(conn, "v1", "reference") == 3


def test_staging_tables_only(db_settings: Settings) -> None:
    with connection(db_settings) as conn, pytest.raises(ValueError, match="not a staging"):
        register_model(conn, "model_predictions", _record("v9"))
