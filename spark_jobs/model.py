"""The model job: features of `Processed_Data` -> a calibrated random-forest churn model.

Steps: build trailing-window features; hold out test rows (later dates by default, or a
label-stratified share); keep a fifth of the training subscribers for calibration; weight
the classes from the fitting rows only; choose the forest by subscriber-grouped
cross-validation on a small grid; calibrate its scores (Platt) and choose the decision
threshold on the calibration subscribers; evaluate once on the test rows. The fitted
pipeline goes to a versioned folder, the version to `model_registry`, and the scored test
rows, with their labels, to `model_predictions` as the monitoring reference.

A version is a hash of everything that shapes the model (the training rows' fingerprint,
the dates, the split, the settings, the grid and the feature set), so re-running the job
on the same data replaces that version instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from config.settings import PipelineDates, Settings
from db.connection import connection
from db.models import (
    PREDICTION_COLUMNS,
    PREDICTIONS_TABLE,
    REFERENCE,
    ModelRecord,
    register_model,
    training_fingerprint,
)
from db.processed import count_processed
from spark_jobs.artifacts import ModelCard, save_model
from spark_jobs.calibration import expected_calibration_error, fit_platt
from spark_jobs.errors import EmptyRangeError, SplitError
from spark_jobs.evaluation import best_f1_threshold, evaluate
from spark_jobs.features import (
    CATEGORICAL_FEATURES,
    CONTINUOUS_FEATURES,
    FEATURE_SET_VERSION,
    LABEL_COLUMN,
    LONG_WINDOW,
    build_features,
    feature_types,
)
from spark_jobs.io import read_processed, write_staged
from spark_jobs.schemas import DATE
from spark_jobs.scoring import predict, prediction_rows
from spark_jobs.session import shuffle_partitions_for
from spark_jobs.split import (
    SplitWindows,
    sample_subscribers,
    stratified_test_flag,
    subscriber_bucket,
    time_split,
)

log = logging.getLogger(__name__)

GRID: dict[str, tuple[int, ...]] = {"numTrees": (30, 60), "maxDepth": (5, 8)}
_VECTOR = "features_vector"
_WEIGHT = "_weight"


@dataclass(frozen=True)
class ModelReport:
    """What one model run trained, measured and stored."""

    version: str
    path: str
    split: str
    windows: SplitWindows
    rows: dict[str, int]
    params: dict[str, int]
    metrics: dict[str, Any]
    reference_rows: int
    seconds: float
    cross_validation: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        m = self.metrics
        w = self.windows
        return "\n".join(
            [
                f"model {self.version} ({self.split} split) saved to {self.path}",
                f"  train {w.train_start}..{w.train_end}: {self.rows['fit']:,} rows fitted, "
                f"{self.rows['calibration']:,} for calibration; "
                f"test {w.test_start}..{w.test_end}: {self.rows['test']:,} rows",
                f"  forest: {self.params}",
                f"  test ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  "
                f"F1 {m['f1']:.3f}  accuracy {m['accuracy']:.3f}  "
                f"ECE {m['ece']:.3f} (uncalibrated {m['ece_uncalibrated']:.3f})  "
                f"threshold {m['threshold']:.3f}",
                f"  {self.reference_rows:,} reference rows in {PREDICTIONS_TABLE}; "
                f"{self.seconds:.1f} s",
            ]
        )


def model_version(settings: Settings, dates: PipelineDates, fingerprint: list[Any]) -> str:
    """The version of the model these inputs produce: ``churn-<data end>-<hash>``."""
    identity = {
        "processed": [str(dates.processed_start), str(dates.processed_end)],
        "split": dates.split,
        "fingerprint": fingerprint,
        "grid": GRID,
        "feature_set": FEATURE_SET_VERSION,
        "settings": {
            name: value
            for name, value in settings.model_dump().items()
            if name.startswith("model_") and name != "model_dir"
        },
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"churn-{dates.processed_end:%Y%m%d}-{digest[:10]}"


def build_pipeline(seed: int) -> Pipeline:
    """Index the categorical features, assemble every feature, fit a weighted forest."""
    indexed = [f"{name}_index" for name in CATEGORICAL_FEATURES]
    return Pipeline(
        stages=[
            *(
                # Categories unseen when fitting get an index of their own instead of failing.
                StringIndexer(
                    inputCol=name,
                    outputCol=out,
                    handleInvalid="keep",
                    stringOrderType="alphabetAsc",
                )
                for name, out in zip(CATEGORICAL_FEATURES, indexed, strict=True)
            ),
            VectorAssembler(
                inputCols=[*CONTINUOUS_FEATURES, *indexed], outputCol=_VECTOR, handleInvalid="keep"
            ),
            RandomForestClassifier(
                labelCol=LABEL_COLUMN,
                featuresCol=_VECTOR,
                weightCol=_WEIGHT,
                featureSubsetStrategy="sqrt",
                minInstancesPerNode=5,
                seed=seed,
            ),
        ]
    )


def run_model(spark: SparkSession, settings: Settings, dates: PipelineDates) -> ModelReport:
    """Train, calibrate, evaluate and register the churn model on the processed range.

    Raises:
        EmptyRangeError: `Processed_Data` has no rows in [processed_start, processed_end].
        SplitError: the rows cannot be split into fit, calibration and test rows with both
            classes in each.
    """
    started = time.perf_counter()
    start, end = dates.processed_start, dates.processed_end
    with connection(settings) as conn:
        available = count_processed(conn, start, end)
        fingerprint = training_fingerprint(conn, start, end)
    if available == 0:
        raise EmptyRangeError(
            f"Processed_Data has no rows dated {start} to {end}: run "
            "`python -m spark_jobs analysis` over these dates first, or check "
            "processed_start/processed_end in the config file"
        )
    version = model_version(settings, dates, fingerprint)
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(available, settings)))
    seed = settings.model_seed

    features = build_features(
        read_processed(spark, settings, start, end), start, settings.model_min_history_days
    ).where(F.col(LABEL_COLUMN).isNotNull())
    labelled, windows = _split(features, dates.split, settings)
    labelled = labelled.withColumn(
        "_calibration",
        subscriber_bucket(seed, 100) < round(100 * settings.model_calibration_fraction),
    ).cache()
    try:
        counts = _count_parts(labelled)
        rows = {part: sum(n for (p, _), n in counts.items() if p == part) for part in _PARTS}
        weights = {
            label: rows["fit"] / (2 * counts[("fit", label)]) for label in (0, 1)
        }  # balanced: each class weighs half of the fitting rows
        log.info("rows %s, class weights %s", rows, weights)
        weight = F.when(F.col(LABEL_COLUMN) == 1, weights[1]).otherwise(weights[0])
        fit = (
            labelled.where(~F.col("_test") & ~F.col("_calibration"))
            .withColumn(_WEIGHT, weight)
            .withColumn("_fold", subscriber_bucket(seed + 1, settings.model_cv_folds))
            .cache()
        )
        fitted, params, cross_validation = _tune(fit, rows["fit"], settings)
        fit.unpersist()

        card = _calibrate(
            fitted, labelled.where(~F.col("_test") & F.col("_calibration")), version, settings
        )
        tested = predict(fitted, card, labelled.where(F.col("_test"))).cache()
        scored = tested.select(
            vector_to_array(F.col("probability")).getItem(1).alias("raw"),
            F.col("_probability_1").alias("calibrated"),
            F.col(LABEL_COLUMN),
        )
        scores = cast(pd.DataFrame, scored.toPandas())
        metrics = evaluate(scores["calibrated"], scores[LABEL_COLUMN], card.threshold)
        metrics["ece_uncalibrated"] = expected_calibration_error(
            scores["raw"], scores[LABEL_COLUMN]
        )

        folder = settings.model_dir / version
        save_model(
            folder,
            fitted,
            card,
            {
                "version": version,
                "split": dates.split,
                "windows": {k: str(v) for k, v in vars(windows).items()},
                "rows": rows,
                "class_weights": {str(k): v for k, v in weights.items()},
                "params": params,
                "cross_validation": cross_validation,
                "test": metrics,
            },
        )
        record = ModelRecord(
            version=version,
            split_kind=dates.split,
            train_start=windows.train_start,
            train_end=windows.train_end,
            test_start=windows.test_start,
            test_end=windows.test_end,
            params={**params, "grid": GRID, "seed": seed, "class_weights": weights},
            metrics=metrics,
            features=feature_types(),
            path=str(folder),
        )
        reference = write_staged(
            prediction_rows(tested, card, REFERENCE, keep_label=True),
            settings,
            PREDICTIONS_TABLE,
            partial(register_model, record=record),
            columns=PREDICTION_COLUMNS,
        )
        tested.unpersist()
    finally:
        labelled.unpersist()
    return ModelReport(
        version=version,
        path=str(folder),
        split=dates.split,
        windows=windows,
        rows=rows,
        params=params,
        metrics=metrics,
        reference_rows=reference,
        seconds=time.perf_counter() - started,
        cross_validation=cross_validation,
    )


_PARTS = ("fit", "calibration", "test")


def _split(features: DataFrame, kind: str, settings: Settings) -> tuple[DataFrame, SplitWindows]:
    """``features`` with a boolean ``_test`` column, and the dates of each part."""
    if kind == "time":
        days = [row[0] for row in features.select(DATE).distinct().collect()]
        windows = time_split(days, settings.model_test_fraction, settings.model_embargo_days)
        test = F.col(DATE) >= F.lit(windows.test_start)
        kept = features.where(test | (F.col(DATE) <= F.lit(windows.train_end)))
        return kept.withColumn("_test", test), windows
    first, last = features.select(F.min(DATE), F.max(DATE)).first() or (None, None)
    if first is None or last is None:
        raise SplitError("no labelled rows with enough history to model")
    flagged = features.withColumn(
        "_test", stratified_test_flag(settings.model_test_fraction, settings.model_seed)
    )
    return flagged, SplitWindows(first, last, first, last)


def _count_parts(labelled: DataFrame) -> dict[tuple[str, int], int]:
    """Rows per (part, label); raises SplitError when a part lacks a class."""
    part = (
        F.when(F.col("_test"), "test").when(F.col("_calibration"), "calibration").otherwise("fit")
    )
    counts = {
        (row["part"], int(row[LABEL_COLUMN])): int(row["count"])
        for row in labelled.groupBy(part.alias("part"), LABEL_COLUMN).count().collect()
    }
    for name in _PARTS:
        for label in (0, 1):
            if counts.get((name, label), 0) == 0:
                raise SplitError(
                    f"the {name} rows hold no label {label}: the processed range is too "
                    "short or has too few churners; widen processed_start/processed_end"
                )
    return counts


def _tune(
    fit: DataFrame, fit_rows: int, settings: Settings
) -> tuple[PipelineModel, dict[str, int], list[dict[str, Any]]]:
    """Choose the forest by subscriber-grouped cross-validation; refit it on ``fit``."""
    seed = settings.model_seed
    pipeline = build_pipeline(seed)
    forest = cast(RandomForestClassifier, pipeline.getStages()[-1])
    grid = (
        ParamGridBuilder()
        .addGrid(forest.numTrees, list(GRID["numTrees"]))
        .addGrid(forest.maxDepth, list(GRID["maxDepth"]))
        .build()
    )
    tuning = sample_subscribers(fit, settings.model_tuning_max_rows, fit_rows, seed)
    validator = CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=grid,
        evaluator=BinaryClassificationEvaluator(
            labelCol=LABEL_COLUMN, rawPredictionCol="probability", metricName="areaUnderROC"
        ),
        numFolds=settings.model_cv_folds,
        foldCol="_fold",
        parallelism=2,
        seed=seed,
    )
    log.info("cross-validating %d forests x %d folds", len(grid), settings.model_cv_folds)
    tuned = validator.fit(tuning)
    cross_validation = [
        {"params": {p.name: v for p, v in point.items()}, "roc_auc": float(score)}
        for point, score in zip(grid, tuned.avgMetrics, strict=True)
    ]
    best = max(range(len(grid)), key=lambda i: tuned.avgMetrics[i])
    params = {p.name: int(v) for p, v in grid[best].items()}
    if tuning is fit:
        return cast(PipelineModel, tuned.bestModel), params, cross_validation
    log.info("refitting %s on all %d fitting rows", params, fit_rows)
    return pipeline.fit(fit, params=grid[best]), params, cross_validation


def _calibrate(
    fitted: PipelineModel, calibration: DataFrame, version: str, settings: Settings
) -> ModelCard:
    """Fit Platt scaling and choose the F1-best threshold on the calibration subscribers."""
    scored = fitted.transform(calibration).select(
        vector_to_array(F.col("probability")).getItem(1).alias("p"), LABEL_COLUMN
    )
    scores = cast(pd.DataFrame, scored.toPandas())
    platt = fit_platt(scores["p"], scores[LABEL_COLUMN])
    threshold = best_f1_threshold(platt.apply(scores["p"]), scores[LABEL_COLUMN])
    return ModelCard(
        version=version,
        feature_set_version=FEATURE_SET_VERSION,
        continuous_features=CONTINUOUS_FEATURES,
        categorical_features=CATEGORICAL_FEATURES,
        min_history_days=settings.model_min_history_days,
        long_window_days=LONG_WINDOW,
        platt_slope=platt.slope,
        platt_intercept=platt.intercept,
        threshold=threshold,
    )
