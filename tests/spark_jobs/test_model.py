"""analysis -> model -> score on a small seeded database, with one local Spark session."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from config.settings import PipelineDates, Settings
from db.connection import connection, transaction
from db.models import (
    ANALYSIS,
    PREDICTION_COLUMNS,
    REFERENCE,
    count_predictions,
    current_model,
)
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import seed_from_generator, seed_from_source
from spark_jobs.__main__ import main as spark_main
from spark_jobs.analysis import run_analysis
from spark_jobs.errors import EmptyRangeError, NoModelError, ScoreRangeError, SplitError
from spark_jobs.model import (
    TrainingParams,
    count_parts,
    modelled_history_days,
    run_model,
    split_rows,
)
from spark_jobs.scoring import run_score

HISTORY = GeneratorConfig(subscribers=400, days=50, churn_rate=0.3, seed=5)
# One row per subscriber, one date: the shape of a single-snapshot CSV.
SNAPSHOT = GeneratorConfig(subscribers=800, days=1, churn_rate=0.3, seed=3)
DAY = date(2024, 1, 1)
PARAMS = TrainingParams(
    split="stratified",
    seed=1,
    test_fraction=0.25,
    embargo_days=14,
    min_history_days=14,
    calibration_fraction=0.2,
    cv_folds=2,
    tuning_max_rows=1000,
)
RAW = ("2024-01-01", "2024-02-19")
TRAINED = ("2024-01-01", "2024-02-08")


def _dates(split: str = "time", processed: tuple[str, str] = TRAINED) -> PipelineDates:
    return PipelineDates.model_validate(
        {
            "start_date": RAW[0],
            "end_date": RAW[1],
            "processed_start": processed[0],
            "processed_end": processed[1],
            "split": split,
        }
    )


@pytest.fixture(scope="module")
def analysed(
    spark: Any, module_db_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings = module_db_settings.model_copy(
        update={
            "output_dir": tmp_path_factory.mktemp("out"),
            "model_dir": tmp_path_factory.mktemp("models"),
            "model_embargo_days": 7,
            "model_cv_folds": 2,
            "model_tuning_max_rows": 3000,
        }
    )
    seed_from_generator(settings, HISTORY, progress=False)
    run_analysis(spark, settings, _dates())
    return settings


def _rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _total(settings: Settings) -> int:
    return int(_rows(settings, "SELECT COUNT(*) FROM model_predictions")[0][0])


def _predictions(settings: Settings) -> list[tuple[Any, ...]]:
    """Every stored prediction, value for value (the id and write time aside)."""
    return _rows(
        settings,
        f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM model_predictions "
        "ORDER BY model_version, as_of_date, subscriber",
    )


def _registry(settings: Settings) -> list[tuple[Any, ...]]:
    return _rows(
        settings,
        "SELECT version, split_kind, train_start, train_end, test_start, test_end, params, "
        "metrics, features, path, is_current FROM model_registry ORDER BY version",
    )


@pytest.mark.slow
def test_model_then_score_then_reruns(spark: Any, analysed: Settings) -> None:
    report = run_model(spark, analysed, _dates())
    windows = report.windows
    assert windows.test_end == date(2024, 2, 8)
    assert windows.train_end == windows.test_start - timedelta(days=8)  # 7-day embargo
    metrics = report.metrics
    assert 0.6 < metrics["roc_auc"] <= 1
    assert 0 <= metrics["ece"] < 0.1
    assert {"pr_auc", "f1", "accuracy", "threshold", "ece_uncalibrated"} <= metrics.keys()
    folder = Path(report.path)
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["test"]["roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert (folder / "pipeline").is_dir()

    with connection(analysed) as conn:
        model = current_model(conn)
        assert model is not None and model.version == report.version
        assert count_predictions(conn, report.version, REFERENCE) == report.rows["test"]
    [(first, last, unlabelled, bad_sum, wrong_side)] = _rows(
        analysed,
        "SELECT MIN(as_of_date), MAX(as_of_date), SUM(label IS NULL), "
        "SUM(ABS(probability_0 + probability_1 - 1) > 1e-9), "
        "SUM(prediction <> (probability_1 >= %s)) FROM model_predictions",
        metrics["threshold"],
    )
    assert (first, last) == (windows.test_start, windows.test_end)
    assert (unlabelled, bad_sum, wrong_side) == (0, 0, 0)

    reference, registry = _predictions(analysed), _registry(analysed)
    again = run_model(spark, analysed, _dates())
    assert again.version == report.version  # same data and settings: the same version
    assert _total(analysed) == report.rows["test"]
    assert _predictions(analysed) == reference
    assert _registry(analysed) == registry

    scored = run_score(spark, analysed)
    assert (scored.start, scored.end) == (date(2024, 2, 9), date(2024, 2, 19))
    [(count, labels, first_scored)] = _rows(
        analysed,
        "SELECT COUNT(*), COUNT(label), MIN(as_of_date) FROM model_predictions WHERE period = %s",
        ANALYSIS,
    )
    assert count == scored.rows > 0
    assert labels == 0 and first_scored == date(2024, 2, 9)
    before, stored = _total(analysed), _predictions(analysed)
    assert run_score(spark, analysed).rows == scored.rows
    assert _predictions(analysed) == stored
    narrower = run_score(spark, analysed, date(2024, 2, 12), date(2024, 2, 13))
    assert 0 < narrower.rows < scored.rows
    assert _total(analysed) == before
    assert _predictions(analysed) == stored

    with pytest.raises(ScoreRangeError, match="overlaps"):
        run_score(spark, analysed, date(2024, 2, 5), date(2024, 2, 12))
    with pytest.raises(ScoreRangeError, match="nothing to score"):
        run_score(spark, analysed, date(2024, 3, 1))
    assert _predictions(analysed) == stored


@pytest.mark.slow
def test_stratified_split_registers_a_new_current_version(spark: Any, analysed: Settings) -> None:
    report = run_model(spark, analysed, _dates("stratified"))
    assert report.split == "stratified"
    assert report.windows.test_start == report.windows.train_start
    [(versions, current)] = _rows(analysed, "SELECT COUNT(*), SUM(is_current) FROM model_registry")
    assert versions >= 1 and current == 1
    with connection(analysed) as conn:
        model = current_model(conn)
    assert model is not None and model.version == report.version
    assert model.split_kind == "stratified"


def test_model_on_an_empty_range_writes_nothing(spark: Any, analysed: Settings) -> None:
    before = _total(analysed)
    with pytest.raises(EmptyRangeError, match="no rows dated 2030-01-01 to 2030-02-01"):
        run_model(spark, analysed, _dates(processed=("2030-01-01", "2030-02-01")))
    assert _total(analysed) == before


def test_score_without_a_model_says_what_to_run(spark: Any, db_settings: Settings) -> None:
    with pytest.raises(NoModelError, match="python -m spark_jobs model"):
        run_score(spark, db_settings)


def test_cli_rejects_an_inverted_score_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert spark_main(["score", "--start", "2024-02-10", "--end", "2024-02-01"]) == 2
    assert "is after --end" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        spark_main(["score", "--start", "2024-13-01"])
    assert exit_info.value.code == 2


def test_min_history_is_capped_at_the_days_of_data() -> None:
    assert modelled_history_days(14, DAY, DAY) == 1  # a single snapshot
    assert modelled_history_days(14, DAY, DAY + timedelta(days=4)) == 5
    assert modelled_history_days(14, DAY, DAY + timedelta(days=59)) == 14
    assert modelled_history_days(1, DAY, DAY + timedelta(days=59)) == 1


def test_count_parts_weighs_the_classes_of_the_fit_rows_only(spark: Any) -> None:
    # part: (test, calibration); fit rows: six of label 0, two of label 1.
    rows = (
        [(False, False, 0)] * 6
        + [(False, False, 1)] * 2
        + [(False, True, 0), (False, True, 1), (True, False, 0), (True, True, 1)]
    )
    frame = spark.createDataFrame(rows, "_test boolean, _calibration boolean, label int")
    counts = count_parts(frame)
    assert counts.rows == {"fit": 8, "calibration": 2, "test": 2}
    assert counts.class_weights == {0: pytest.approx(8 / 12), 1: pytest.approx(8 / 4)}
    with pytest.raises(SplitError, match="the calibration rows hold no label 1"):
        count_parts(frame.where(~(F.col("_calibration") & ~F.col("_test") & (F.col("label") == 1))))


def test_split_rows_of_a_single_date(spark: Any) -> None:
    rows = [(DAY, f"u{i}", int(i % 4 == 0)) for i in range(200)]
    features = spark.createDataFrame(rows, "Date date, User string, label int")
    flagged, windows = split_rows(features, PARAMS)
    assert (windows.train_start, windows.train_end) == (DAY, DAY)
    assert (windows.test_start, windows.test_end) == (DAY, DAY)
    shares = flagged.agg(
        F.avg(F.col("_test").cast("int")), F.avg(F.col("_calibration").cast("int"))
    ).first()
    assert shares is not None
    assert shares[0] == pytest.approx(0.25, abs=0.01) and 0.1 < shares[1] < 0.3
    with pytest.raises(SplitError, match="stratified"):
        split_rows(features, replace(PARAMS, split="time"))
    with pytest.raises(SplitError, match="no labelled rows"):
        split_rows(features.where("false"), PARAMS)


@pytest.mark.slow
def test_a_single_snapshot_trains_with_the_default_settings(
    spark: Any, db_settings: Settings, tmp_path: Path
) -> None:
    csv = tmp_path / "snapshot.csv"
    generate_cdr(SNAPSHOT).to_csv(csv, index=False)
    seed_from_source(db_settings, str(csv), progress=False)
    settings = db_settings.model_copy(
        update={"output_dir": tmp_path / "out", "model_dir": tmp_path / "models"}
    )
    assert settings.model_min_history_days == 14  # the default, unchanged
    dates = PipelineDates.model_validate(
        {
            "start_date": str(DAY),
            "end_date": str(DAY),
            "processed_start": str(DAY),
            "processed_end": str(DAY),
            "split": "stratified",
        }
    )
    assert run_analysis(spark, settings, dates).processed_rows == len(generate_cdr(SNAPSHOT))
    report = run_model(spark, settings, dates)
    assert report.split == "stratified"
    assert (report.windows.train_start, report.windows.test_end) == (DAY, DAY)
    assert report.reference_rows == report.rows["test"] > 0
    assert 0.5 <= report.metrics["roc_auc"] <= 1
    card = json.loads((Path(report.path) / "model.json").read_text())
    assert card["min_history_days"] == 1
    # The time split cannot use one date, and says what to change.
    with pytest.raises(SplitError, match='"split": "stratified"'):
        run_model(spark, settings, dates.model_copy(update={"split": "time"}))
