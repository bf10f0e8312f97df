"""The model job: features of `Processed_Data` -> a calibrated random-forest churn model.

Steps, each a function of its inputs: build trailing-window features
(:func:`labelled_features`); hold out test rows, later dates by default or a
label-stratified share, and keep a fifth of the training subscribers for calibration
(:func:`split_rows`); weight the classes from the fitting rows only (:func:`count_parts`);
choose the forest by subscriber-grouped cross-validation on a small grid
(:func:`tune_forest`); calibrate its scores (Platt) and choose the decision threshold on
the calibration subscribers (:func:`calibrate`); evaluate once on the test rows
(:func:`evaluate_model`). :func:`train_churn_model` chains them; :func:`run_model` only
reads, trains and stores. The fitted pipeline goes to a versioned folder, the version to
`model_registry`, and the scored test rows, with their labels, to `model_predictions` as
the monitoring reference, in the same transaction (:func:`store_model`).

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
from datetime import date
from functools import partial
from typing import Any, Self, cast

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
from db.processed import count_processed, processed_bounds
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
from spark_jobs.storage import join

log = logging.getLogger(__name__)

GRID: dict[str, tuple[int, ...]] = {"numTrees": (30, 60), "maxDepth": (5, 8)}
PARTS = ("fit", "calibration", "test")
_VECTOR = "features_vector"
_WEIGHT = "_weight"


@dataclass(frozen=True)
class TrainingParams:
    """Everything that shapes training besides the rows (from the ``MODEL_*`` settings)."""

    split: str
    seed: int
    test_fraction: float
    embargo_days: int
    min_history_days: int
    calibration_fraction: float
    cv_folds: int
    tuning_max_rows: int


def modelled_history_days(min_history_days: int, first_day: date, last_day: date) -> int:
    """``MODEL_MIN_HISTORY_DAYS``, capped at the days from ``first_day`` to ``last_day``.

    The rule leaves out dates whose trailing windows are too short; capped, it never leaves
    out the data's last date, so a single snapshot (one date) is modelled as it is.
    """
    return max(1, min(min_history_days, (last_day - first_day).days + 1))


def training_params(settings: Settings, dates: PipelineDates, last_day: date) -> TrainingParams:
    """The training parameters for ``dates``'s processed range, whose data ends ``last_day``."""
    return TrainingParams(
        split=dates.split,
        seed=settings.model_seed,
        test_fraction=settings.model_test_fraction,
        embargo_days=settings.model_embargo_days,
        min_history_days=modelled_history_days(
            settings.model_min_history_days,
            dates.processed_start,
            min(last_day, dates.processed_end),
        ),
        calibration_fraction=settings.model_calibration_fraction,
        cv_folds=settings.model_cv_folds,
        tuning_max_rows=settings.model_tuning_max_rows,
    )


@dataclass(frozen=True)
class PartCounts:
    """Rows per part (fit, calibration, test) and the balanced class weights of the fit rows."""

    rows: dict[str, int]
    class_weights: dict[int, float]


@dataclass(frozen=True)
class TunedForest:
    """The forest chosen by cross-validation and refitted on every fitting row."""

    pipeline: PipelineModel
    params: dict[str, int]
    cross_validation: list[dict[str, Any]]


@dataclass(frozen=True)
class Evaluation:
    """The test rows scored by the calibrated model (cached), and the held-out metrics."""

    predictions: DataFrame
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TrainedModel:
    """A trained, calibrated and evaluated model, ready to be stored."""

    version: str
    params: TrainingParams
    windows: SplitWindows
    counts: PartCounts
    forest: TunedForest
    card: ModelCard
    evaluation: Evaluation

    @property
    def metrics(self) -> dict[str, Any]:
        """Held-out metrics of the test rows."""
        return self.evaluation.metrics

    def summary(self) -> dict[str, Any]:
        """What `metrics.json` holds: split, rows, weights, forest, cross-validation, test."""
        return {
            "version": self.version,
            "split": self.params.split,
            "windows": {k: str(v) for k, v in vars(self.windows).items()},
            "rows": self.counts.rows,
            "class_weights": {str(k): v for k, v in self.counts.class_weights.items()},
            "params": self.forest.params,
            "cross_validation": self.forest.cross_validation,
            "test": self.metrics,
        }

    def record(self, path: str) -> ModelRecord:
        """The `model_registry` row of this model saved at ``path`` (a path or a URI)."""
        w = self.windows
        return ModelRecord(
            version=self.version,
            split_kind=self.params.split,
            train_start=w.train_start,
            train_end=w.train_end,
            test_start=w.test_start,
            test_end=w.test_end,
            params={
                **self.forest.params,
                "grid": GRID,
                "seed": self.params.seed,
                "class_weights": self.counts.class_weights,
            },
            metrics=self.metrics,
            features=feature_types(),
            path=path,
        )

    def reference_rows(self) -> DataFrame:
        """The scored test rows with their labels, in `model_predictions`' columns."""
        return prediction_rows(self.evaluation.predictions, self.card, REFERENCE, keep_label=True)

    def release(self) -> None:
        """Drop the cached test predictions once stored."""
        self.evaluation.predictions.unpersist()


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

    @classmethod
    def of(cls, trained: TrainedModel, path: str, reference_rows: int, seconds: float) -> Self:
        """The report of ``trained``, stored at ``path`` with ``reference_rows`` rows."""
        return cls(
            version=trained.version,
            path=path,
            split=trained.params.split,
            windows=trained.windows,
            rows=trained.counts.rows,
            params=trained.forest.params,
            metrics=trained.metrics,
            reference_rows=reference_rows,
            seconds=seconds,
            cross_validation=trained.forest.cross_validation,
        )

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
        _, last_processed, _ = processed_bounds(conn)
    if available == 0 or last_processed is None:
        raise EmptyRangeError(
            f"Processed_Data has no rows dated {start} to {end}: run "
            "`python -m spark_jobs analysis` over these dates first, or check "
            "processed_start/processed_end in the config file"
        )
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(available, settings)))
    params = training_params(settings, dates, last_processed)
    processed = read_processed(spark, settings, start, end)
    features = labelled_features(processed, start, params.min_history_days)
    trained = train_churn_model(features, params, model_version(settings, dates, fingerprint))
    try:
        folder = join(settings.model_dir, trained.version)
        reference_rows = store_model(settings, trained, folder)
    finally:
        trained.release()
    return ModelReport.of(trained, folder, reference_rows, time.perf_counter() - started)


def store_model(settings: Settings, trained: TrainedModel, folder: str) -> int:
    """Save the model folder, then register the version and its reference rows at once.

    Returns the reference rows stored.

    Raises:
        StorageError: the model folder cannot be written (nothing is registered).
    """
    save_model(folder, trained.forest.pipeline, trained.card, trained.summary())
    return register_trained(settings, trained, folder)


def register_trained(settings: Settings, trained: TrainedModel, folder: str) -> int:
    """Make ``trained`` (saved at ``folder``) current with its reference rows, at once."""
    return write_staged(
        trained.reference_rows(),
        settings,
        PREDICTIONS_TABLE,
        partial(register_model, record=trained.record(folder)),
        columns=PREDICTION_COLUMNS,
    )


def labelled_features(processed: DataFrame, first_day: date, min_history_days: int) -> DataFrame:
    """The features of every labelled subscriber-day with enough history (see build_features)."""
    features = build_features(processed, first_day, min_history_days)
    return features.where(F.col(LABEL_COLUMN).isNotNull())


def train_churn_model(features: DataFrame, params: TrainingParams, version: str) -> TrainedModel:
    """Split, weight, tune, calibrate and evaluate a forest on labelled feature rows.

    Raises:
        SplitError: the rows cannot be split into fit, calibration and test rows with both
            classes in each.
    """
    labelled, windows = split_rows(features, params)
    labelled = labelled.cache()
    try:
        counts = count_parts(labelled)
        log.info("rows %s, class weights %s", counts.rows, counts.class_weights)
        fit = fitting_rows(labelled, counts, params).cache()
        try:
            forest = tune_forest(fit, counts.rows["fit"], params)
        finally:
            fit.unpersist()
        calibration = labelled.where(~F.col("_test") & F.col("_calibration"))
        card = calibrate(forest.pipeline, calibration, version, params)
        evaluation = evaluate_model(forest.pipeline, card, labelled.where(F.col("_test")))
    finally:
        # The test predictions are cached and loaded by now: they outlive these rows.
        labelled.unpersist()
    return TrainedModel(version, params, windows, counts, forest, card, evaluation)


def split_rows(features: DataFrame, params: TrainingParams) -> tuple[DataFrame, SplitWindows]:
    """``features`` with boolean ``_test`` and ``_calibration`` columns, and each part's dates.

    Raises:
        SplitError: no rows to split, or too few dates for a time split.
    """
    if params.split == "time":
        days = [row[0] for row in features.select(DATE).distinct().collect()]
        windows = time_split(days, params.test_fraction, params.embargo_days)
        test = F.col(DATE) >= F.lit(windows.test_start)
        kept = features.where(test | (F.col(DATE) <= F.lit(windows.train_end)))
        flagged = kept.withColumn("_test", test)
    else:
        first, last = features.select(F.min(DATE), F.max(DATE)).first() or (None, None)
        if first is None or last is None:
            raise SplitError(
                "no labelled rows to model: Processed_Data's label "
                "(Churn_Within_Horizon) is empty in processed_start..processed_end"
            )
        flagged = features.withColumn(
            "_test", stratified_test_flag(params.test_fraction, params.seed)
        )
        windows = SplitWindows(first, last, first, last)
    calibration = subscriber_bucket(params.seed, 100) < round(100 * params.calibration_fraction)
    return flagged.withColumn("_calibration", calibration), windows


def count_parts(labelled: DataFrame) -> PartCounts:
    """Rows per part and label, and balanced class weights of the fit rows.

    Raises:
        SplitError: a part lacks a class.
    """
    part = (
        F.when(F.col("_test"), "test").when(F.col("_calibration"), "calibration").otherwise("fit")
    )
    counts = {
        (row["part"], int(row[LABEL_COLUMN])): int(row["count"])
        for row in labelled.groupBy(part.alias("part"), LABEL_COLUMN).count().collect()
    }
    for name in PARTS:
        for label in (0, 1):
            if counts.get((name, label), 0) == 0:
                raise SplitError(
                    f"the {name} rows hold no label {label}: the processed range is too "
                    "short or has too few churners; widen processed_start/processed_end"
                )
    rows = {name: sum(n for (p, _), n in counts.items() if p == name) for name in PARTS}
    # Balanced: each class weighs half of the fitting rows.
    weights = {label: rows["fit"] / (2 * counts[("fit", label)]) for label in (0, 1)}
    return PartCounts(rows, weights)


def fitting_rows(labelled: DataFrame, counts: PartCounts, params: TrainingParams) -> DataFrame:
    """The fit rows, with their class weight and a cross-validation fold per subscriber."""
    weights = counts.class_weights
    weight = F.when(F.col(LABEL_COLUMN) == 1, weights[1]).otherwise(weights[0])
    return (
        labelled.where(~F.col("_test") & ~F.col("_calibration"))
        .withColumn(_WEIGHT, weight)
        .withColumn("_fold", subscriber_bucket(params.seed + 1, params.cv_folds))
    )


def tune_forest(fit: DataFrame, fit_rows: int, params: TrainingParams) -> TunedForest:
    """Choose the forest by subscriber-grouped cross-validation; refit it on ``fit``."""
    seed = params.seed
    pipeline = build_pipeline(seed)
    forest = cast(RandomForestClassifier, pipeline.getStages()[-1])
    grid = (
        ParamGridBuilder()
        .addGrid(forest.numTrees, list(GRID["numTrees"]))
        .addGrid(forest.maxDepth, list(GRID["maxDepth"]))
        .build()
    )
    tuning = sample_subscribers(fit, params.tuning_max_rows, fit_rows, seed)
    validator = CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=grid,
        evaluator=BinaryClassificationEvaluator(
            labelCol=LABEL_COLUMN, rawPredictionCol="probability", metricName="areaUnderROC"
        ),
        numFolds=params.cv_folds,
        foldCol="_fold",
        parallelism=2,
        seed=seed,
    )
    log.info("cross-validating %d forests x %d folds", len(grid), params.cv_folds)
    tuned = validator.fit(tuning)
    cross_validation = [
        {"params": {p.name: v for p, v in point.items()}, "roc_auc": float(score)}
        for point, score in zip(grid, tuned.avgMetrics, strict=True)
    ]
    best = max(range(len(grid)), key=lambda i: tuned.avgMetrics[i])
    chosen = {p.name: int(v) for p, v in grid[best].items()}
    if tuning is fit:
        return TunedForest(cast(PipelineModel, tuned.bestModel), chosen, cross_validation)
    log.info("refitting %s on all %d fitting rows", chosen, fit_rows)
    return TunedForest(pipeline.fit(fit, params=grid[best]), chosen, cross_validation)


def calibrate(
    fitted: PipelineModel, calibration: DataFrame, version: str, params: TrainingParams
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
        min_history_days=params.min_history_days,
        long_window_days=LONG_WINDOW,
        platt_slope=platt.slope,
        platt_intercept=platt.intercept,
        threshold=threshold,
    )


def evaluate_model(fitted: PipelineModel, card: ModelCard, test: DataFrame) -> Evaluation:
    """Score the test rows once; metrics of the calibrated and the raw probabilities.

    The scored rows stay cached for the reference predictions: release them when stored.
    """
    tested = predict(fitted, card, test).cache()
    scored = tested.select(
        vector_to_array(F.col("probability")).getItem(1).alias("raw"),
        F.col("_probability_1").alias("calibrated"),
        F.col(LABEL_COLUMN),
    )
    scores = cast(pd.DataFrame, scored.toPandas())
    metrics: dict[str, Any] = evaluate(scores["calibrated"], scores[LABEL_COLUMN], card.threshold)
    metrics["ece_uncalibrated"] = expected_calibration_error(scores["raw"], scores[LABEL_COLUMN])
    return Evaluation(tested, metrics)
