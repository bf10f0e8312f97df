"""Scoring writes each prediction's features typed, and monitoring reads them back exactly.

The first tests write hand-made rows through the jobs' own path (`prediction_rows`, the
staged write, the registry's move-in); the slow one trains a small model and scores with it.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, StringType, StructField, StructType

from config.settings import Settings
from db.connection import Connection, connection, transaction
from db.models import (
    ANALYSIS,
    PREDICTION_COLUMNS,
    PREDICTIONS_TABLE,
    REFERENCE,
    ModelRecord,
    current_model,
    register_model,
    replace_scored_range,
)
from db.monitoring import load_analysis, load_reference
from spark_jobs.artifacts import ModelCard, load_model
from spark_jobs.errors import NoModelError, ScoreRangeError
from spark_jobs.features import build_features
from spark_jobs.io import read_processed, write_staged
from spark_jobs.schemas import DATE, USER
from spark_jobs.scoring import in_key_order, prediction_rows, run_score, store_scores
from tests.trained_history import TrainedHistory

DATE_COLUMN = "as_of_date"
VERSION = "v-typed"
CONTINUOUS = ("calls_mean_7", "trend")
CATEGORICAL = ("usage_profile",)
DAY = date(2024, 3, 1)
_SCHEMA = StructType(
    [
        StructField(DATE, DateType(), False),
        StructField(USER, StringType(), False),
        StructField("label", DoubleType(), True),
        StructField("calls_mean_7", DoubleType(), True),
        StructField("trend", DoubleType(), True),
        StructField("usage_profile", StringType(), True),
        StructField("_probability_1", DoubleType(), False),
    ]
)
# Values a JSON or decimal rendering would bend: many digits, extremes, -0, NaN and NULL.
_ROWS = [
    (DAY, "a", 1.0, 0.1 + 0.2, -1e-300, "voice", 0.9),
    (DAY, "b", 0.0, 1.7976931348623157e308, float("nan"), None, 0.2),
    (DAY + timedelta(days=1), "a", 0.0, None, -0.0, "données", 0.4),
    (DAY + timedelta(days=1), "c", 1.0, 123456.78901234567, 5e-324, "sms", 0.6),
]


def _card(version: str = VERSION) -> ModelCard:
    return ModelCard(
        version=version,
        feature_set_version=1,
        continuous_features=CONTINUOUS,
        categorical_features=CATEGORICAL,
        min_history_days=1,
        long_window_days=28,
        platt_slope=1.0,
        platt_intercept=0.0,
        threshold=0.5,
    )


def _record(version: str = VERSION) -> ModelRecord:
    return ModelRecord(
        version=version,
        split_kind="time",
        train_start=date(2024, 1, 1),
        train_end=date(2024, 1, 31),
        test_start=DAY,
        test_end=DAY + timedelta(days=1),
        params={},
        metrics={},
        features=[{"name": n, "type": "continuous"} for n in CONTINUOUS]
        + [{"name": n, "type": "categorical"} for n in CATEGORICAL],
        path="/models/typed",
    )


def _expected(column: str) -> list[Any]:
    index = [f.name for f in _SCHEMA.fields].index(column)
    return [row[index] for row in _ROWS]


def _same(actual: list[Any], expected: list[Any]) -> bool:
    """Equal, bit for bit for floats (the sign of zero aside); NaN and None both mean missing."""
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected, strict=True):
        a_missing = a is None or (isinstance(a, float) and math.isnan(a))
        e_missing = e is None or (isinstance(e, float) and math.isnan(e))
        if a_missing != e_missing or (not a_missing and a != e):
            return False
    return True


def _write_reference(spark: Any, settings: Settings) -> int:
    predicted = spark.createDataFrame(_ROWS, _SCHEMA)
    rows = prediction_rows(predicted, _card(), REFERENCE, keep_label=True)
    return write_staged(
        rows,
        settings,
        PREDICTIONS_TABLE,
        partial(register_model, record=_record()),
        columns=PREDICTION_COLUMNS,
    )


def test_reference_features_round_trip_exactly_to_the_monitoring_read(
    spark: Any, db_settings: Settings
) -> None:
    assert _write_reference(spark, db_settings) == len(_ROWS)

    with connection(db_settings) as conn:
        frame = load_reference(conn, VERSION, CONTINUOUS, CATEGORICAL)

    assert list(frame.columns[-3:]) == [*CONTINUOUS, *CATEGORICAL]
    assert frame["subscriber"].tolist() == ["a", "b", "a", "c"]
    for name in (*CONTINUOUS, *CATEGORICAL):
        assert _same(frame[name].tolist(), _expected(name)), name
    assert frame["calls_mean_7"].dtype == "float64" and frame["usage_profile"].dtype == object
    assert frame["label"].tolist() == _expected("label")
    assert frame["probability_1"].tolist() == _expected("_probability_1")
    assert frame["prediction"].tolist() == [1, 0, 0, 1]


def test_analysis_rows_replace_their_range_with_identical_contents(
    spark: Any, db_settings: Settings
) -> None:
    _write_reference(spark, db_settings)
    later = [(d + timedelta(days=10), *rest) for d, *rest in _ROWS]
    predicted = spark.createDataFrame(later, _SCHEMA)
    start, end = DAY + timedelta(days=10), DAY + timedelta(days=11)

    def score() -> pd.DataFrame:
        rows = prediction_rows(predicted, _card(), ANALYSIS, keep_label=False)
        stored = write_staged(
            rows,
            db_settings,
            PREDICTIONS_TABLE,
            partial(replace_scored_range, version=VERSION, start=start, end=end),
            columns=PREDICTION_COLUMNS,
        )
        assert stored == len(later)
        with connection(db_settings) as conn:
            return load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=0)

    first, second = score(), score()

    assert len(second) == len(later)
    assert (second["prediction_id"] > first["prediction_id"].max()).all()  # rows were rewritten
    columns = [c for c in first.columns if c != "prediction_id"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert first["label"].isna().all()
    for name in (*CONTINUOUS, *CATEGORICAL):
        assert _same(second[name].tolist(), _expected(name)), name


def test_a_job_row_fills_its_slots_and_leaves_the_others_null(spark: Any) -> None:
    predicted = spark.createDataFrame(_ROWS, _SCHEMA)

    rows = prediction_rows(predicted, _card(), REFERENCE, keep_label=True)

    assert rows.columns == list(PREDICTION_COLUMNS)
    types = dict(rows.dtypes)
    assert types["f01"] == types["f48"] == "double" and types["c1"] == types["c4"] == "string"
    first = rows.orderBy(DATE_COLUMN, "subscriber").first()
    assert first is not None
    assert first["f01"] == _ROWS[0][3] and first["c1"] == "voice"
    assert first["f03"] is None and first["c2"] is None


def test_key_order_is_one_partition_sorted_by_date_and_subscriber(spark: Any) -> None:
    predicted = spark.createDataFrame(_ROWS[::-1], _SCHEMA).repartition(3)

    ordered = in_key_order(prediction_rows(predicted, _card(), REFERENCE, keep_label=True))

    assert ordered.rdd.getNumPartitions() == 1
    keys = [(row["as_of_date"], row["subscriber"]) for row in ordered.collect()]
    assert keys == sorted((row[0], row[1]) for row in _ROWS)


def test_store_scores_writes_a_new_range_then_replaces_it(
    spark: Any, db_settings: Settings
) -> None:
    _write_reference(spark, db_settings)
    later = [(d + timedelta(days=10), *rest) for d, *rest in _ROWS]
    start, end = DAY + timedelta(days=10), DAY + timedelta(days=11)
    rows = prediction_rows(
        spark.createDataFrame(later, _SCHEMA), _card(), ANALYSIS, keep_label=False
    )

    def analysis() -> pd.DataFrame:
        with connection(db_settings) as conn:
            return load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=0)

    assert store_scores(db_settings, rows, VERSION, start, end) == len(later)  # empty range
    first = analysis()
    assert store_scores(db_settings, rows, VERSION, start, end) == len(later)  # replaces
    second = analysis()

    assert len(second) == len(later)
    assert (second["prediction_id"] > first["prediction_id"].max()).all()
    columns = [c for c in first.columns if c != "prediction_id"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    for name in (*CONTINUOUS, *CATEGORICAL):
        assert _same(first[name].tolist(), _expected(name)), name


def test_a_failed_write_into_a_new_range_stores_no_row(spark: Any, db_settings: Settings) -> None:
    _write_reference(spark, db_settings)
    # The last row in key order has no probability: the server refuses it after the
    # others were sent, one per round trip.
    nullable = StructType([StructField(f.name, f.dataType, True) for f in _SCHEMA.fields])
    later = [(d + timedelta(days=10), *rest) for d, *rest in _ROWS]
    later[-1] = (*later[-1][:-1], None)
    start, end = DAY + timedelta(days=10), DAY + timedelta(days=11)
    rows = prediction_rows(
        spark.createDataFrame(later, nullable), _card(), ANALYSIS, keep_label=False
    )
    one_by_one = db_settings.model_copy(update={"jdbc_batch_size": 1})

    # Spark wraps the driver's error in its own exception types.
    with pytest.raises(Exception, match="probability"):
        store_scores(one_by_one, rows, VERSION, start, end)

    with connection(db_settings) as conn:
        assert load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=0).empty


@pytest.mark.slow
def test_scored_features_are_the_built_features_and_errors_write_nothing(
    spark: Any,
    trained_history: TrainedHistory,
    db_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = db_settings.model_copy(update={"output_dir": tmp_path_factory.mktemp("out")})
    with pytest.raises(NoModelError):
        run_score(spark, settings)
    trained_history.copy_into(settings)
    with connection(settings) as conn:
        model = current_model(conn)
    assert model is not None

    scored = run_score(spark, settings)
    _, card = load_model(Path(model.path))
    features = card.continuous_features, card.categorical_features
    with connection(settings) as conn:
        analysis = load_analysis(conn, model.version, *features, label_delay_days=0)
        reference = load_reference(conn, model.version, *features)
        before = _count(conn)

    # Every stored feature is the value Spark built for that subscriber-day, unrounded.
    first_day = scored.start - timedelta(days=card.long_window_days - 1)
    processed = read_processed(spark, settings, first_day, scored.end)
    features_built = build_features(processed, first_day, card.min_history_days)
    built = cast(pd.DataFrame, features_built.where(F.col(DATE) >= F.lit(scored.start)).toPandas())
    built = built.sort_values([DATE, USER]).reset_index(drop=True)
    assert len(analysis) == len(built) == scored.rows
    assert analysis["subscriber"].tolist() == built[USER].tolist()
    for name in (*card.continuous_features, *card.categorical_features):
        assert _same(analysis[name].tolist(), built[name].tolist()), name
    assert reference[list(card.continuous_features)].notna().all().all()

    again = run_score(spark, settings)
    with connection(settings) as conn:
        rescored = load_analysis(conn, model.version, *features, label_delay_days=0)
        columns = [c for c in rescored.columns if c != "prediction_id"]
        pd.testing.assert_frame_equal(analysis[columns], rescored[columns])
        assert again.rows == scored.rows and _count(conn) == before

        with pytest.raises(ScoreRangeError, match="overlaps"):
            run_score(spark, settings, model.test_end, scored.end)
        with pytest.raises(ScoreRangeError, match="nothing to score"):
            run_score(spark, settings, scored.end + timedelta(days=1))
        assert _count(conn) == before


def _count(conn: Connection) -> int:
    with transaction(conn) as cursor:
        cursor.execute("SELECT COUNT(*) FROM model_predictions")
        return int(cursor.fetchone()[0])
