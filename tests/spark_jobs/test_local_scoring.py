"""The NumPy scorer of micro-batches gives the Spark path's numbers: the same features, bit
for bit, and the same forest votes, from a real model trained and saved by the model job."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from config.settings import PipelineDates, Settings
from db.connection import connection
from db.models import ANALYSIS, current_model
from ingest.generator import GeneratorConfig
from ingest.seeding import seed_from_generator
from spark_jobs import fdlibm
from spark_jobs.analysis import run_analysis
from spark_jobs.artifacts import load_model
from spark_jobs.features import CONTINUOUS_FEATURES, build_features
from spark_jobs.io import read_processed
from spark_jobs.local_scoring import LocalPipeline, prediction_table, trailing_features
from spark_jobs.model import run_model
from spark_jobs.schemas import AMOUNT_FEATURES, COUNT_FEATURES, DATE, LABEL, PROCESSED_SCHEMA, USER
from spark_jobs.scoring import predict, prediction_rows
from spark_jobs.stream import processed_arrow_schema

FIRST = date(2024, 3, 1)


def _history(days: int, subscribers: int, seed: int) -> pa.Table:
    """`Processed_Data` rows of subscribers active on about two days in three, with amounts
    of many magnitudes (their sums depend on the order of addition) and a few quiet days."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {f.name: [] for f in processed_arrow_schema()}
    for subscriber in range(subscribers):
        for day in range(days):
            if rng.random() < 0.35:
                continue
            quiet = rng.random() < 0.1
            rows[DATE].append(FIRST + timedelta(days=day))
            rows[USER].append(f"27{subscriber:04d}")
            for name in COUNT_FEATURES:
                rows[name].append(0 if quiet else int(rng.integers(0, 12)))
            for name in AMOUNT_FEATURES:
                amount = rng.exponential() * 10.0 ** rng.integers(-3, 9)
                rows[name].append(0.0 if quiet else float(amount))
            rows["Record_Count"].append(int(rng.integers(1, 5)))
            rows[LABEL].append([0, 1, None][int(rng.integers(0, 3))])
    return pa.table(rows, schema=processed_arrow_schema())


def _sorted_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    return sorted(zip(*columns, strict=True), key=lambda row: (row[1], row[0]))


def _assert_same_features(ours: pa.Table, theirs: pa.Table) -> None:
    """Every column equal, bit for bit (``==`` on floats), in (User, Date) order."""
    assert ours.column_names == theirs.column_names
    key = [(USER, "ascending"), (DATE, "ascending")]
    ours, theirs = ours.sort_by(key), theirs.sort_by(key)
    for name in ours.column_names:
        assert ours[name].to_pylist() == theirs[name].to_pylist(), name


def test_fdlibm_functions_are_spark_s_bit_for_bit(spark: Any) -> None:
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 1.0, -0.5, 0.3, 0.35, 1e-300, 5e-324, 2.0**-30, 2.0**-56, 700.0]
    special += [0.5 * np.log(2), 1.5 * np.log(2), 710.0, -746.0, np.inf, -np.inf, np.nan]
    amounts = rng.exponential(size=100_000) * 10.0 ** rng.integers(-3, 9, 100_000)
    shares = rng.random(50_000)
    exponents = rng.uniform(-40, 40, 100_000)  # Platt's: -(slope * logit + intercept)
    x = np.concatenate([special, amounts, shares, exponents])
    expected = (
        spark.createDataFrame(pa.table({"x": x}))
        .select(F.log1p("x").alias("log1p"), F.log("x").alias("log"), F.exp("x").alias("exp"))
        .toArrow()
    )
    for name, ours in (
        ("log1p", fdlibm.log1p(x)),
        ("log", fdlibm.log(x)),
        ("exp", fdlibm.exp(x)),
    ):
        # Spark's log and log1p are NULL outside their domain: x <= 0, x <= -1.
        defined = expected[name].is_valid().to_numpy(zero_copy_only=False)
        theirs = expected[name].to_numpy(zero_copy_only=False).astype(np.float64)
        same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs)) | ~defined
        assert same.all(), (name, x[~same][:5], ours[~same][:5], theirs[~same][:5])
        assert defined.sum() > 190_000


@pytest.mark.parametrize(("first_day", "min_history_days"), [(FIRST, 1), (FIRST, 10)])
def test_features_are_build_features_bit_for_bit(
    spark: Any, first_day: date, min_history_days: int
) -> None:
    history = _history(days=70, subscribers=12, seed=3)
    frame = spark.createDataFrame(history, PROCESSED_SCHEMA)
    expected = build_features(frame, first_day, min_history_days).toArrow()
    ours = trailing_features(history, first_day, min_history_days)
    assert ours.num_rows == expected.num_rows > 0
    # The amounts' window sums are equal only when added in Spark's order.
    _assert_same_features(ours, expected)


def test_features_of_chosen_days_use_the_other_rows_as_history(spark: Any) -> None:
    history = _history(days=40, subscribers=5, seed=4)
    everything = trailing_features(history, FIRST, 1)
    days = history.filter(pc.greater_equal(history[DATE], pa.scalar(FIRST + timedelta(days=30))))
    days = days.filter(pc.not_equal(days[USER], "270002")).select([DATE, USER])
    chosen = trailing_features(history, FIRST, 1, days)
    wanted = everything.join(days, [DATE, USER], join_type="left semi")
    assert chosen.num_rows == days.num_rows > 0
    assert _sorted_rows(chosen) == _sorted_rows(wanted)
    assert trailing_features(history.slice(0, 0), FIRST, 1).num_rows == 0


HISTORY = GeneratorConfig(subscribers=300, days=45, churn_rate=0.3, seed=11)
DATES = PipelineDates.model_validate(
    {
        "start_date": "2024-01-01",
        "end_date": "2024-02-14",
        "processed_start": "2024-01-01",
        "processed_end": "2024-02-04",
    }
)


@pytest.fixture(scope="module")
def trained(
    spark: Any, module_db_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings = module_db_settings.model_copy(
        update={
            "output_dir": tmp_path_factory.mktemp("out"),
            "model_dir": tmp_path_factory.mktemp("models"),
            "model_embargo_days": 7,
            "model_cv_folds": 2,
            "model_tuning_max_rows": 2000,
        }
    )
    seed_from_generator(settings, HISTORY, progress=False)
    run_analysis(spark, settings, DATES)
    run_model(spark, settings, DATES)
    return settings


@pytest.mark.slow
def test_a_saved_model_scores_as_the_spark_path_does(spark: Any, trained: Settings) -> None:
    with connection(trained) as conn:
        record = current_model(conn)
    assert record is not None
    pipeline, card = load_model(Path(record.path))
    local = LocalPipeline.load(spark, pipeline, record.path)
    start, end = record.test_end + timedelta(days=1), DATES.end_date
    first_day = start - timedelta(days=card.long_window_days - 1)
    processed = read_processed(spark, trained, first_day, end)
    built = build_features(processed, first_day, card.min_history_days)
    in_range = built.where(F.col(DATE) >= F.lit(start))
    expected = prediction_rows(predict(pipeline, card, in_range), card, ANALYSIS, keep_label=False)

    history = processed.toArrow().cast(processed_arrow_schema())
    features = trailing_features(history, first_day, card.min_history_days)
    features = features.filter(pc.greater_equal(features[DATE], pa.scalar(start)))
    _assert_same_features(features, in_range.toArrow())
    ours = _sorted_rows(prediction_table(features, local, card, ANALYSIS))
    theirs = _sorted_rows(expected.toArrow())
    assert len(ours) == len(theirs) > 1000
    assert {row[6] for row in ours} == {0, 1}  # both decisions occur
    for mine, spark_row in zip(ours, theirs, strict=True):
        assert mine[:4] == spark_row[:4]  # version, subscriber, date, period
        assert mine[4:] == spark_row[4:]  # probabilities, decision, label, every feature slot


@pytest.mark.slow
def test_the_forest_votes_as_spark_does_on_unseen_categories_and_nan(
    spark: Any, trained: Settings
) -> None:
    with connection(trained) as conn:
        record = current_model(conn)
    assert record is not None
    pipeline, _ = load_model(Path(record.path))
    local = LocalPipeline.load(spark, pipeline, record.path)
    first_day = DATES.processed_start
    features = build_features(
        read_processed(spark, trained, first_day, DATES.end_date), first_day, 1
    ).toArrow()
    rows = features.num_rows
    profile = np.array(features["usage_profile"].to_pylist(), dtype=object)
    profile[::7] = "satellite"  # a category the indexer never saw
    profile[3::11] = None
    columns = {name: features[name] for name in features.column_names}
    columns["usage_profile"] = pa.array(profile.tolist(), pa.string())
    for position, name in enumerate(CONTINUOUS_FEATURES[:6]):
        value = features[name].to_numpy().copy()
        value[position::5] = np.nan  # goes right at every split on it
        columns[name] = pa.array(value)
    edited = pa.table(columns)
    transformed = pipeline.transform(spark.createDataFrame(edited)).select(
        USER, DATE, vector_to_array(F.col("probability")).getItem(1).alias("p")
    )
    theirs = transformed.toArrow().sort_by([(USER, "ascending"), (DATE, "ascending")])
    order = pc.sort_indices(edited, [(USER, "ascending"), (DATE, "ascending")])
    ours = local.probability(edited.take(order))
    assert len(ours) == rows > 1000
    # The forest's votes are sums and divisions in Spark's order: the same bits.
    assert ours.tolist() == theirs["p"].to_pylist()
    assert len(set(ours.tolist())) > 50


def test_a_pipeline_without_a_numpy_twin_is_refused_with_a_clear_error(
    spark: Any, tmp_path: Path
) -> None:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    from spark_jobs.errors import SparkJobError

    pipeline = PipelineModel(stages=[SQLTransformer(statement="SELECT * FROM __THIS__")])
    with pytest.raises(SparkJobError, match=r"random-forest pipelines only.*spark_jobs score"):
        LocalPipeline.load(spark, pipeline, str(tmp_path))
