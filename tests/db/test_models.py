"""The model registry and scored rows: one current model, replace-not-duplicate writes,
features in typed slot columns, and the migration of JSON features to them."""

from __future__ import annotations

import json
import os
from datetime import date
from typing import Any

import pytest

from config.settings import Settings
from db.connection import connection, drop_database, ensure_database, transaction
from db.migrate import apply_migrations, discover
from db.models import (
    CATEGORICAL_SLOTS,
    CONTINUOUS_SLOTS,
    PREDICTION_COLUMNS,
    ModelRecord,
    count_predictions,
    current_model,
    feature_columns,
    get_model,
    insert_predictions,
    register_model,
    replace_scored_range,
)
from db.monitoring import load_reference
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
                f"INSERT INTO `{staging}` (model_version, subscriber, as_of_date, period, "
                "probability_0, probability_1, prediction, label, f01) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (version, f"s{s}", day, period, 0.7, 0.3, 0, None, 1.0)
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


def test_features_take_slots_in_declared_order() -> None:
    assert feature_columns(["b", "a"], ["k"]) == {"b": "f01", "a": "f02", "k": "c1"}
    assert set(feature_columns([f"x{i}" for i in range(CONTINUOUS_SLOTS)], [])) == {
        f"x{i}" for i in range(CONTINUOUS_SLOTS)
    }
    with pytest.raises(ValueError, match="at most"):
        feature_columns([f"x{i}" for i in range(CONTINUOUS_SLOTS + 1)], [])
    with pytest.raises(ValueError, match="at most"):
        feature_columns([], [f"k{i}" for i in range(CATEGORICAL_SLOTS + 1)])
    with pytest.raises(ValueError, match="named twice"):
        feature_columns(["a"], ["a"])


def test_inserted_features_read_back_typed_with_nulls(db_settings: Settings) -> None:
    _register(db_settings, "v1", [])
    tiny, huge = 5e-324, 1.7976931348623157e308
    rows = [
        ("v1", "a", date(2024, 3, 1), "reference", 0.5, 0.5, 1, 1, 0.1, tiny, "voice"),
        ("v1", "b", date(2024, 3, 1), "reference", 0.5, 0.5, 1, 0, float("nan"), huge, None),
        ("v1", "c", date(2024, 3, 2), "reference", 0.5, 0.5, 0, 0, None, -0.0, "données"),
    ]
    with connection(db_settings) as conn:
        assert insert_predictions(conn, ["x", "y"], ["k"], rows) == 3
        frame = load_reference(conn, "v1", ["x", "y"], ["k"])
    assert frame["subscriber"].tolist() == ["a", "b", "c"]
    assert frame["x"].iloc[0] == 0.1 and frame["x"].iloc[1:].isna().all()
    assert frame["y"].tolist() == [tiny, huge, 0.0]
    assert frame["k"].tolist() == ["voice", None, "données"]
    assert str(frame["x"].dtype) == "float64" and frame["k"].dtype == object


def test_migration_moves_json_features_to_slots_and_drops_the_json(
    base_settings: Settings,
) -> None:
    settings = base_settings.model_copy(update={"db_name": f"cdrtest_{os.getpid()}_json"})
    ensure_database(settings)
    try:
        with connection(settings) as conn:
            before = [m for m in discover() if m.name != "typed_features"]
            apply_migrations(conn, [m for m in before if m.version < 11])
            declared = [
                {"name": "calls", "type": "continuous"},
                {"name": "profile", "type": "categorical"},
                {"name": "minutes", "type": "continuous"},
            ]
            with transaction(conn) as cursor:
                cursor.execute(
                    "INSERT INTO model_registry (version, split_kind, train_start, train_end, "
                    "test_start, test_end, params, metrics, features, path, is_current) "
                    "VALUES ('m1', 'time', '2024-01-01', '2024-01-31', '2024-02-01', "
                    "'2024-02-29', '{}', '{}', %s, '/m', 1)",
                    (json.dumps(declared),),
                )
                cursor.executemany(
                    "INSERT INTO model_predictions (model_version, subscriber, as_of_date, "
                    "period, probability_0, probability_1, prediction, label, features) "
                    "VALUES ('m1', %s, '2024-02-01', 'reference', 0.5, 0.5, 0, 0, %s)",
                    [
                        ("a", '{"calls": 2, "minutes": 0.123456, "profile": "data"}'),
                        ("b", '{"calls": null, "profile": "voice"}'),
                        ("c", '{"minutes": -1e-7, "extra": 3}'),
                    ],
                )
            applied = apply_migrations(conn)
            assert "0011_typed_features" in applied
            frame = load_reference(conn, "m1", ["calls", "minutes"], ["profile"])
            with transaction(conn) as cursor:
                cursor.execute("SHOW COLUMNS FROM model_predictions LIKE 'features'")
                assert cursor.fetchall() == []
    finally:
        drop_database(settings)
    assert frame["calls"].iloc[0] == 2.0 and frame["calls"].iloc[1:].isna().all()
    assert frame["minutes"].iloc[0] == 0.123456 and frame["minutes"].iloc[2] == -1e-7
    assert frame["minutes"].iloc[1:2].isna().all()
    assert frame["profile"].tolist() == ["data", "voice", None]
