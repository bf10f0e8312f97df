"""Scoring: churn probabilities of feature rows, shaped as `model_predictions` rows, and
the score job that writes later dates with the current model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from config.settings import Settings
from db.connection import connection
from db.models import (
    ANALYSIS,
    PREDICTION_COLUMNS,
    PREDICTIONS_TABLE,
    ModelRecord,
    count_scored,
    current_model,
    feature_columns,
    replace_scored_range,
)
from db.processed import count_processed, processed_bounds
from spark_jobs.artifacts import ModelCard, load_model
from spark_jobs.calibration import PlattScaling
from spark_jobs.errors import NoModelError, ScoreRangeError
from spark_jobs.features import LABEL_COLUMN, build_features
from spark_jobs.io import append_in_one_transaction, read_processed, write_staged
from spark_jobs.schemas import DATE, USER
from spark_jobs.session import shuffle_partitions_for

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)

_PROBABILITY = "_probability_1"


def calibrated(raw: Column, platt: PlattScaling) -> Column:
    """Spark twin of :meth:`PlattScaling.apply` (tests check that both agree)."""
    clipped = F.least(F.greatest(raw, F.lit(1e-6)), F.lit(1 - 1e-6))
    logit = F.log(clipped / (1 - clipped))
    return 1 / (1 + F.exp(-(F.lit(platt.slope) * logit + F.lit(platt.intercept))))


def predict(pipeline: PipelineModel, card: ModelCard, features: DataFrame) -> DataFrame:
    """``features`` with the calibrated churn probability in ``_probability_1``."""
    scored = pipeline.transform(features)
    raw = vector_to_array(F.col("probability")).getItem(1)
    return scored.withColumn(_PROBABILITY, calibrated(raw, card.calibration))


def prediction_rows(
    predicted: DataFrame, card: ModelCard, period: str, *, keep_label: bool
) -> DataFrame:
    """Rows in `model_predictions`' column order from the output of :func:`predict`.

    Each feature goes, typed and unrounded, to its slot column (`db.models.feature_columns`);
    the slots its features do not use are NULL. A NaN feature is stored as NULL (MariaDB
    has no NaN), which monitoring reads back as NaN.

    ``keep_label``: reference rows carry their known label; analysis rows leave it NULL
    until it arrives.
    """
    p1 = F.col(_PROBABILITY)
    slots = feature_columns(card.continuous_features, card.categorical_features)
    features = {
        **{
            slots[name]: F.nanvl(F.col(name).cast("double"), F.lit(None).cast("double"))
            for name in card.continuous_features
        },
        **{slots[name]: F.col(name).cast("string") for name in card.categorical_features},
    }
    label = F.col(LABEL_COLUMN) if keep_label else F.lit(None)
    columns = {
        "model_version": F.lit(card.version),
        "subscriber": F.col(USER),
        "as_of_date": F.col(DATE),
        "period": F.lit(period),
        "probability_0": 1 - p1,
        "probability_1": p1,
        "prediction": (p1 >= F.lit(card.threshold)).cast("int"),
        "label": label.cast("int"),
        **features,
    }
    unused = F.lit(None)
    return predicted.select(
        *(
            columns.get(name, unused.cast("string" if name.startswith("c") else "double")).alias(
                name
            )
            for name in PREDICTION_COLUMNS
        )
    )


def in_key_order(rows: DataFrame) -> DataFrame:
    """``rows`` in one partition, sorted by `model_predictions`' key (date, subscriber).

    One partition is one JDBC connection, hence one transaction (see
    :func:`spark_jobs.io.append_in_one_transaction`), and rows in key order fill the
    clustered index sequentially instead of splitting pages. A range partitioning into
    several sorted writers would cost a sampling pass, which recomputes every feature and
    prediction once more.
    """
    return rows.repartition(1).sortWithinPartitions("as_of_date", "subscriber")


@dataclass(frozen=True)
class ScoreReport:
    """What one score run wrote."""

    version: str
    start: date
    end: date
    rows: int
    seconds: float

    def describe(self) -> str:
        return (
            f"score {self.start}..{self.end} with model {self.version}: {self.rows:,} rows "
            f"in {PREDICTIONS_TABLE} (period {ANALYSIS}) ({self.seconds:.1f} s)"
        )


def run_score(
    spark: SparkSession, settings: Settings, start: date | None = None, end: date | None = None
) -> ScoreReport:
    """Score the subscriber-days of [start, end] with the current model.

    ``start`` defaults to the day after the model's test window, ``end`` to the latest
    date in `Processed_Data`. Re-scoring a range replaces it.

    Raises:
        NoModelError: no model trained yet, or its folder is gone.
        ScoreRangeError: the range is empty, inverted, or overlaps the reference dates.
    """
    started = time.perf_counter()
    with connection(settings) as conn:
        model = current_model(conn)
        _, last_processed, _ = processed_bounds(conn)
    model, start, end = plan_score(model, last_processed, start, end)
    pipeline, card = load_model(model.path)
    first_day = reading_start(card, start)
    with connection(settings) as conn:
        rows_read = count_processed(conn, first_day, end)
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(rows_read, settings)))
    processed = read_processed(spark, settings, first_day, end)
    rows = score_rows(processed, pipeline, card, start, end)
    stored = store_scores(settings, rows, model.version, start, end)
    if stored == 0:
        raise ScoreRangeError(f"Processed_Data has no subscriber-days from {start} to {end}")
    return ScoreReport(model.version, start, end, stored, time.perf_counter() - started)


def plan_score(
    model: ModelRecord | None, last_processed: date | None, start: date | None, end: date | None
) -> tuple[ModelRecord, date, date]:
    """The model and the dates to score: ``start``/``end`` or their defaults, checked.

    Raises:
        NoModelError: ``model`` is None.
        ScoreRangeError: the range is empty, inverted, or overlaps the reference dates.
    """
    if model is None:
        raise NoModelError("no model trained yet: run `python -m spark_jobs model` first")
    start = start or model.test_end + timedelta(days=1)
    end = end or last_processed
    if end is None or start > end:
        raise ScoreRangeError(
            f"nothing to score from {start}"
            + ("" if end is None else f" to {end}")
            + f": Processed_Data ends {last_processed}; run the analysis over later dates "
            "(end_date in the config file) or pass --start/--end"
        )
    if start <= model.test_end and end >= model.test_start:
        raise ScoreRangeError(
            f"{start}..{end} overlaps model {model.version}'s reference dates "
            f"({model.test_start}..{model.test_end}); score dates after {model.test_end}"
        )
    return model, start, end


def reading_start(card: ModelCard, start: date) -> date:
    """The first date to read so that the first scored date has full windows."""
    return start - timedelta(days=card.long_window_days - 1)


def score_rows(
    processed: DataFrame, pipeline: PipelineModel, card: ModelCard, start: date, end: date
) -> DataFrame:
    """`model_predictions` rows (period analysis, no label) of the dates [start, end].

    ``processed`` holds `Processed_Data` rows from :func:`reading_start` to ``end``.
    """
    features = build_features(processed, reading_start(card, start), card.min_history_days)
    in_range = features.where(F.col(DATE).between(F.lit(start), F.lit(end)))
    return prediction_rows(predict(pipeline, card, in_range), card, ANALYSIS, keep_label=False)


def store_scores(settings: Settings, rows: DataFrame, version: str, start: date, end: date) -> int:
    """Replace ``version``'s analysis rows of [start, end] with ``rows``; the rows stored.

    A range with no rows yet (the usual case: new dates) is written straight into
    `model_predictions` in one transaction; a re-score goes through a staging table, so
    that deleting the old rows and inserting the new ones commit together. Either way a
    failure writes nothing, and the primary key keeps a concurrent writer of the same range
    from duplicating a row.
    """
    ordered = in_key_order(rows)
    with connection(settings) as conn:
        stored_before = count_scored(conn, version, start, end)
    if stored_before:
        return write_staged(
            ordered,
            settings,
            PREDICTIONS_TABLE,
            partial(replace_scored_range, version=version, start=start, end=end),
            columns=PREDICTION_COLUMNS,
        )
    append_in_one_transaction(ordered, settings, PREDICTIONS_TABLE)
    with connection(settings) as conn:
        return count_scored(conn, version, start, end)
