"""The model registry and the scored rows (`model_registry`, `model_predictions`).

A model version and its reference rows are stored in one transaction, so monitoring never
sees a current model without its reference. Scored rows are keyed by (model version,
as-of date, subscriber): writing a range again replaces it.

A row keeps the model's inputs, for drift detection, in typed slot columns: the i-th
continuous feature the version's registry row declares in `f01`..`f48` (DOUBLE), the j-th
categorical one in `c1`..`c4` (VARCHAR). Slots are positional rather than named so any
declared feature set fits one fixed table; :func:`feature_columns` is the one mapping, used
by every writer and by the monitoring read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from db.connection import Connection, transaction
from db.staging import STAGING_MARK

PREDICTIONS_TABLE = "model_predictions"
CONTINUOUS_SLOTS = 48
CATEGORICAL_SLOTS = 4
CATEGORY_MAX_CHARS = 64
CONTINUOUS_SLOT_COLUMNS: tuple[str, ...] = tuple(f"f{i:02d}" for i in range(1, 49))
CATEGORICAL_SLOT_COLUMNS: tuple[str, ...] = tuple(f"c{i}" for i in range(1, 5))
# The columns a job writes; `id` and `scored_at` are filled by the database. The slots a
# model's features do not use hold NULL.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "model_version",
    "subscriber",
    "as_of_date",
    "period",
    "probability_0",
    "probability_1",
    "prediction",
    "label",
    *CONTINUOUS_SLOT_COLUMNS,
    *CATEGORICAL_SLOT_COLUMNS,
)
REFERENCE = "reference"
ANALYSIS = "analysis"

_QUOTED = ", ".join(f"`{c}`" for c in PREDICTION_COLUMNS)
_REGISTRY_COLUMNS = (
    "version, created_at, split_kind, train_start, train_end, test_start, test_end, "
    "params, metrics, features, path, is_current"
)
_UPSERT_MODEL = (
    "INSERT INTO model_registry (version, split_kind, train_start, train_end, test_start, "
    "test_end, params, metrics, features, path, is_current) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1) "
    "ON DUPLICATE KEY UPDATE created_at = CURRENT_TIMESTAMP(3), split_kind = VALUES(split_kind), "
    "train_start = VALUES(train_start), train_end = VALUES(train_end), "
    "test_start = VALUES(test_start), test_end = VALUES(test_end), params = VALUES(params), "
    "metrics = VALUES(metrics), features = VALUES(features), path = VALUES(path), is_current = 1"
)
_ONLY_CURRENT = "UPDATE model_registry SET is_current = 0 WHERE version <> %s AND is_current = 1"
_SELECT_CURRENT = (
    f"SELECT {_REGISTRY_COLUMNS} FROM model_registry "  # noqa: S608 - constant column list
    "WHERE is_current = 1 ORDER BY created_at DESC LIMIT 1"
)
_SELECT_VERSION = f"SELECT {_REGISTRY_COLUMNS} FROM model_registry WHERE version = %s"  # noqa: S608
_DELETE_PERIOD = "DELETE FROM model_predictions WHERE model_version = %s AND period = %s"
_DELETE_SCORED = (
    "DELETE FROM model_predictions "
    "WHERE model_version = %s AND period = 'analysis' AND as_of_date BETWEEN %s AND %s"
)
_COUNT_PERIOD = "SELECT COUNT(*) FROM model_predictions WHERE model_version = %s AND period = %s"
_COUNT_SCORED = (
    "SELECT COUNT(*) FROM model_predictions "
    "WHERE model_version = %s AND period = 'analysis' AND as_of_date BETWEEN %s AND %s"
)
_FINGERPRINT = (
    "SELECT COUNT(*), COUNT(DISTINCT `User`), SUM(Record_Count), SUM(M_Out_Call_Count), "
    "SUM(M_Data_Count), SUM(COALESCE(Churn_Within_Horizon, 0)), ROUND(SUM(M_Data_Sum), 2) "
    "FROM Processed_Data WHERE `Date` BETWEEN %s AND %s"
)


@dataclass(frozen=True)
class ModelRecord:
    """One row of `model_registry`."""

    version: str
    split_kind: str
    train_start: date
    train_end: date
    test_start: date
    test_end: date
    params: dict[str, Any]
    metrics: dict[str, Any]
    features: list[dict[str, str]]
    path: str
    is_current: bool = True

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> ModelRecord:
        version, _, split, t0, t1, s0, s1, params, metrics, features, path, current = row
        return cls(
            version=version,
            split_kind=split,
            train_start=t0,
            train_end=t1,
            test_start=s0,
            test_end=s1,
            params=json.loads(params),
            metrics=json.loads(metrics),
            features=json.loads(features),
            path=path,
            is_current=bool(current),
        )


def feature_columns(continuous: Sequence[str], categorical: Sequence[str]) -> dict[str, str]:
    """Each feature's slot column in `model_predictions`, by its position in its type's list.

    Pass the features in the order the version's registry row declares them.

    Raises:
        ValueError: more features of a type than slots, or a name given twice.
    """
    if len(continuous) > CONTINUOUS_SLOTS or len(categorical) > CATEGORICAL_SLOTS:
        raise ValueError(
            f"{len(continuous)} continuous and {len(categorical)} categorical features: "
            f"model_predictions stores at most {CONTINUOUS_SLOTS} and {CATEGORICAL_SLOTS}"
        )
    names = [*continuous, *categorical]
    if len(set(names)) != len(names):
        raise ValueError(f"a feature is named twice in {names}")
    return {
        **dict(zip(continuous, CONTINUOUS_SLOT_COLUMNS, strict=False)),
        **dict(zip(categorical, CATEGORICAL_SLOT_COLUMNS, strict=False)),
    }


def written_columns(continuous: Sequence[str], categorical: Sequence[str]) -> tuple[str, ...]:
    """`PREDICTION_COLUMNS` without the feature slots a model's features leave NULL."""
    used = set(feature_columns(continuous, categorical).values())
    slots = {*CONTINUOUS_SLOT_COLUMNS, *CATEGORICAL_SLOT_COLUMNS}
    return tuple(name for name in PREDICTION_COLUMNS if name not in slots or name in used)


def _check_staging(staging: str) -> str:
    if STAGING_MARK not in staging:
        raise ValueError(f"{staging!r} is not a staging table")
    return staging


def _move_in(staging: str) -> str:
    # Staging names come from db.staging (constants + a random suffix), never from input.
    source = _check_staging(staging)
    # No ORDER BY: sorting ~1M wide rows here cost more server CPU than it saved (measured,
    # see the README); the score job writes the staging table in key order instead.
    return f"INSERT INTO model_predictions ({_QUOTED}) SELECT {_QUOTED} FROM `{source}`"  # noqa: S608


def register_model(conn: Connection, staging: str, record: ModelRecord) -> int:
    """Make ``record`` the current model and store its reference rows, in one transaction.

    Registering a version again (the same inputs give the same version) replaces its row
    and its reference rows. Returns the number of reference rows stored.
    """
    with transaction(conn) as cursor:
        cursor.execute(
            _UPSERT_MODEL,
            (
                record.version,
                record.split_kind,
                record.train_start,
                record.train_end,
                record.test_start,
                record.test_end,
                json.dumps(record.params, sort_keys=True),
                json.dumps(record.metrics, sort_keys=True),
                json.dumps(record.features),
                record.path,
            ),
        )
        cursor.execute(_ONLY_CURRENT, (record.version,))
        cursor.execute(_DELETE_PERIOD, (record.version, REFERENCE))
        cursor.execute(_move_in(staging))
        cursor.execute(_COUNT_PERIOD, (record.version, REFERENCE))
        (stored,) = cursor.fetchone()
    return int(stored)


def replace_scored_range(
    conn: Connection, staging: str, version: str, start: date, end: date
) -> int:
    """Replace ``version``'s analysis rows dated in [start, end] with the staged rows.

    Returns the number of analysis rows now stored for the range.
    """
    with transaction(conn) as cursor:
        cursor.execute(_DELETE_SCORED, (version, start, end))
        cursor.execute(_move_in(staging))
        cursor.execute(_COUNT_SCORED, (version, start, end))
        (stored,) = cursor.fetchone()
    return int(stored)


def count_scored(conn: Connection, version: str, start: date, end: date) -> int:
    """``version``'s analysis rows dated in [start, end]."""
    with transaction(conn) as cursor:
        cursor.execute(_COUNT_SCORED, (version, start, end))
        (count,) = cursor.fetchone()
    return int(count)


def delete_scored_range(conn: Connection, version: str, start: date, end: date) -> int:
    """Delete ``version``'s analysis rows dated in [start, end]; the rows deleted.

    For benchmarks that score the same range into an empty range again.
    """
    with transaction(conn) as cursor:
        cursor.execute(_DELETE_SCORED, (version, start, end))
        deleted = cursor.rowcount
    return int(deleted)


def insert_predictions(
    conn: Connection,
    continuous: Sequence[str],
    categorical: Sequence[str],
    rows: Sequence[Sequence[Any]],
    chunk_rows: int = 5_000,
) -> int:
    """Insert prediction rows directly, for writers other than Spark (tests, benchmarks).

    Each row holds `PREDICTION_COLUMNS` up to ``label``, then the values of ``continuous``
    and ``categorical``, in that order (None or NaN for a missing value, stored as NULL).
    Returns the rows inserted.
    """
    slots = feature_columns(continuous, categorical)
    base = PREDICTION_COLUMNS[: PREDICTION_COLUMNS.index("label") + 1]
    names = [*base, *(slots[name] for name in (*continuous, *categorical))]
    sql = (
        f"INSERT INTO model_predictions ({', '.join(f'`{n}`' for n in names)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    with transaction(conn) as cursor:
        for first in range(0, len(rows), chunk_rows):
            chunk = rows[first : first + chunk_rows]
            cursor.executemany(sql, [tuple(map(_no_nan, row)) for row in chunk])
    return len(rows)


def _no_nan(value: Any) -> Any:
    # MariaDB has no NaN: a missing value is NULL, read back as NaN.
    return None if isinstance(value, float) and math.isnan(value) else value


def current_model(conn: Connection) -> ModelRecord | None:
    """The current model, or None when no model has been trained."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_CURRENT)
        row = cursor.fetchone()
    return None if row is None else ModelRecord._from_row(row)


def get_model(conn: Connection, version: str) -> ModelRecord | None:
    """The registry row of ``version``, or None."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_VERSION, (version,))
        row = cursor.fetchone()
    return None if row is None else ModelRecord._from_row(row)


def count_predictions(conn: Connection, version: str, period: str) -> int:
    """Rows of ``version`` in ``period`` ('reference' or 'analysis')."""
    with transaction(conn) as cursor:
        cursor.execute(_COUNT_PERIOD, (version, period))
        (count,) = cursor.fetchone()
    return int(count)


def training_fingerprint(conn: Connection, start: date, end: date) -> list[Any]:
    """Aggregates of `Processed_Data` in [start, end] that change when its rows change.

    Part of a model version's identity: the same rows and settings give the same version.
    """
    with transaction(conn) as cursor:
        cursor.execute(_FINGERPRINT, (start, end))
        row = cursor.fetchone()
    return [None if value is None else str(value) for value in row]
