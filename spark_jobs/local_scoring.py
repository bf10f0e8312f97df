"""The score job's features, forest and calibration in NumPy, for a micro-batch on the driver.

A streamed micro-batch is already on the driver, in Arrow, a few thousand subscriber-days
at most: planning and running the DataFrame version (:func:`spark_jobs.features.build_features`,
the fitted `PipelineModel`, :func:`spark_jobs.scoring.calibrated`) costs Spark about a
second per batch whatever its size, the NumPy version milliseconds. Both give the same
numbers, held together by a test:

- the windows are Spark's: a count's trailing sum is exact in any order (integers), an
  amount's is added row by row from the frame's first day, as Spark's sliding frame does;
  a day without a row counts as no usage;
- the forest walks Spark's saved trees (a continuous split goes left when the value is at
  most the threshold, so NaN goes right; a categorical one when the category is in the
  left set), and votes as `RandomForestClassificationModel` does: each tree's leaf class
  counts over their total, added tree by tree, then normalised;
- the string indexer (unseen and NULL categories: the index after the labels) and the
  assembler (NULL kept as NaN) in front of it.

``log1p``, ``log`` and ``exp`` are fdlibm's, as Java's ``StrictMath`` in Spark
(:mod:`spark_jobs.fdlibm`): the C library's differ in the last bit for a few inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs import fdlibm
from spark_jobs.errors import UnsupportedModelError
from spark_jobs.features import (
    CONTINUOUS_FEATURES,
    LABEL_COLUMN,
    LONG_WINDOW,
    SHORT_WINDOW,
    USAGE_PROFILES,
)
from spark_jobs.schemas import AMOUNT_FEATURES, COUNT_FEATURES, DATE, LABEL, USAGE_FEATURES, USER

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from spark_jobs.artifacts import ModelCard
    from spark_jobs.storage import Location

_EPOCH = date(1970, 1, 1)
_CLIP = 1e-6


# --- features --------------------------------------------------------------------------------


def trailing_features(
    processed: pa.Table,
    first_day: date,
    min_history_days: int,
    days: pa.Table | None = None,
) -> pa.Table:
    """:func:`spark_jobs.features.build_features` of ``processed``, computed in NumPy.

    Args:
        processed: `Processed_Data` rows (Arrow types), one per subscriber-day.
        first_day: The first date of the data read, as in ``build_features``.
        min_history_days: As in ``build_features``.
        days: `Date` and `User` of the rows wanted (all rows when None); the other rows
            only serve as history.

    Returns:
        `Date`, `User`, ``label`` and ``FEATURE_COLUMNS`` of the rows wanted that have
        ``min_history_days`` behind them, ordered by subscriber and date.
    """
    codes = pc.dictionary_encode(processed[USER].combine_chunks()).indices.to_numpy()
    day = _days(processed[DATE]) - (first_day - _EPOCH).days
    order = np.lexsort((day, codes))
    table = processed.take(pa.array(order))
    day, codes = day[order], codes[order].astype(np.int64)
    if table.num_rows:
        # One sorted key per (subscriber, day), spaced so that no window reaches the
        # previous subscriber's days.
        span = int(day.max() - day.min()) + LONG_WINDOW + 1
        key = codes * span + (day - day.min())
    else:
        key = np.zeros(0, dtype=np.int64)
    wanted = day + 1 >= min_history_days
    if days is not None:
        chosen = np.zeros(table.num_rows, dtype=bool)
        rows = table.select([DATE, USER]).append_column("_row", pa.array(np.arange(len(key))))
        kept = rows.join(days.select([DATE, USER]), [DATE, USER], join_type="left semi")["_row"]
        chosen[kept.to_numpy()] = True
        wanted &= chosen
    target = np.flatnonzero(wanted)
    at = day[target]
    short_start = np.searchsorted(key, key[target] - (SHORT_WINDOW - 1))
    long_start = np.searchsorted(key, key[target] - (LONG_WINDOW - 1))

    sums: dict[str, np.ndarray] = {}
    for usage in COUNT_FEATURES:
        values = table[usage].to_numpy().astype(np.int64)
        sums[f"{usage}_7"] = _integer_window(values, short_start, target)
        sums[f"{usage}_28"] = _integer_window(values, long_start, target)
    for usage in AMOUNT_FEATURES:
        values = table[usage].to_numpy().astype(np.float64)
        sums[f"{usage}_7"] = _sliding_sum(values, short_start, target, SHORT_WINDOW)
        sums[f"{usage}_28"] = _sliding_sum(values, long_start, target, LONG_WINDOW)

    covered_short = np.minimum(SHORT_WINDOW, at + 1).astype(np.float64)
    covered_long = np.minimum(LONG_WINDOW, at + 1).astype(np.float64)
    covered_prior = np.maximum(covered_long - covered_short, 1.0)
    features: dict[str, np.ndarray] = {}
    for usage in USAGE_FEATURES:
        recent, whole = sums[f"{usage}_7"], sums[f"{usage}_28"]
        # A count's difference is a long before the division, as in Spark.
        prior_mean = (whole - recent).astype(np.float64) / covered_prior
        features[f"{usage}_mean_7"] = recent.astype(np.float64) / covered_short
        features[f"{usage}_mean_28"] = whole.astype(np.float64) / covered_long
        features[f"{usage}_trend"] = fdlibm.log1p(features[f"{usage}_mean_7"]) - fdlibm.log1p(
            prior_mean
        )
    features["active_share_7"] = (target - short_start + 1) / covered_short
    features["active_share_28"] = (target - long_start + 1) / covered_long
    first_of_user = (target == 0) | (codes[target] != codes[np.maximum(target - 1, 0)])
    since_previous = np.where(first_of_user, at + 1, at - day[np.maximum(target - 1, 0)])
    features["days_since_previous_activity"] = np.minimum(since_previous, LONG_WINDOW).astype(
        np.float64
    )
    out_calls, in_calls = sums["M_Out_Call_Count_28"], sums["M_In_Call_Count_28"]
    features["out_in_call_ratio"] = fdlibm.log1p(out_calls.astype(np.float64)) - fdlibm.log1p(
        in_calls.astype(np.float64)
    )
    voice = out_calls + in_calls
    sms = sums["M_Out_SMS_Count_28"] + sums["M_In_SMS_Count_28"]
    data = sums["M_Data_Count_28"]
    total = voice + sms + data
    with np.errstate(invalid="ignore", divide="ignore"):
        share = data.astype(np.float64) / total.astype(np.float64)
    features["data_share_28"] = np.where(total > 0, share, 0.0)
    profile = np.select(
        [total == 0, (voice >= sms) & (voice >= data), data >= sms],
        [USAGE_PROFILES.index("none"), USAGE_PROFILES.index("voice"), USAGE_PROFILES.index("data")],
        USAGE_PROFILES.index("sms"),
    )
    picked = table.take(pa.array(target))
    return pa.table(
        {
            DATE: picked[DATE],
            USER: picked[USER],
            LABEL_COLUMN: pc.cast(picked[LABEL], pa.int32()),
            **{name: pa.array(features[name], pa.float64()) for name in CONTINUOUS_FEATURES},
            "usage_profile": pc.take(pa.array(USAGE_PROFILES, pa.string()), pa.array(profile)),
        }
    )


def _days(column: pa.ChunkedArray) -> np.ndarray:
    """Days since 1970-01-01 of a date32 column."""
    return pc.cast(column, pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


def _integer_window(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sums of ``values[start:end + 1]``: exact integers, whatever the order of addition."""
    running = np.concatenate([[0], np.cumsum(values)])
    return running[end + 1] - running[start]


def _sliding_sum(values: np.ndarray, start: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    """Sums of ``values[start:end + 1]`` added one by one from ``start`` (Spark's sliding
    frame re-adds its rows in order for each row: the same additions, bit for bit).
    A frame holds at most ``length`` rows: one per day."""
    total = np.zeros(len(end), dtype=np.float64)
    for offset in range(length):
        index = start + offset
        inside = index <= end
        total = np.where(inside, total + values[np.minimum(index, end)], total)
    return total


# --- the fitted pipeline -----------------------------------------------------------------------


@dataclass(frozen=True)
class Forest:
    """A fitted random forest's trees as flat arrays: all trees' nodes one after another.

    A leaf is its own left and right child (a split on feature 0 at +inf), so a row that
    reaches it stays there for the remaining levels.
    """

    roots: np.ndarray  # each tree's root node
    feature: np.ndarray  # the split's feature
    threshold: np.ndarray  # a continuous split's threshold (NaN for a categorical split)
    categorical: np.ndarray  # whether the split is categorical
    left_categories: np.ndarray  # nodes x categories: True where a category goes left
    children: np.ndarray  # nodes x 2: left child, right child
    votes: np.ndarray  # classes x nodes: a leaf's class counts over their total, else 0
    depth: int

    @classmethod
    def from_saved(cls, data: pa.Table) -> Forest:
        """The forest of a saved tree ensemble's ``data`` parquet rows (treeID, nodeData)."""
        flat = data.flatten().flatten()
        trees = flat["treeID"].to_numpy()
        ids = flat["nodeData.id"].to_numpy()
        order = np.lexsort((ids, trees))
        flat = flat.take(pa.array(order))
        trees, ids = trees[order], ids[order]
        tree_ids = np.unique(trees)
        sizes = np.array([np.count_nonzero(trees == tree) for tree in tree_ids])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        base = offsets[np.searchsorted(tree_ids, trees)]
        if not np.array_equal(ids, np.arange(len(ids)) - base):
            raise UnsupportedModelError(
                "a saved tree's node ids are not 0..n-1: an unknown Spark model format"
            )

        nodes = np.arange(len(ids))
        left = flat["nodeData.leftChild"].to_numpy()
        leaf = left < 0
        left = np.where(leaf, nodes, left + base)
        right = np.where(leaf, nodes, flat["nodeData.rightChild"].to_numpy() + base)
        categories = flat["nodeData.split.numCategories"].to_numpy()
        splits = flat["nodeData.split.leftCategoriesOrThreshold"].to_pylist()
        categorical = (categories >= 0) & ~leaf
        threshold = np.array(
            [
                np.inf if is_leaf else np.nan if is_categorical else split[0]
                for split, is_leaf, is_categorical in zip(splits, leaf, categorical, strict=True)
            ],
            dtype=np.float64,
        )
        left_categories = np.zeros((len(ids), max(1, int(categories.max(initial=0)))), dtype=bool)
        for node in np.flatnonzero(categorical):
            left_categories[node, np.asarray(splits[node], dtype=np.int64)] = True
        stats = np.array(flat["nodeData.impurityStats"].to_pylist(), dtype=np.float64)
        total = np.zeros(len(stats))
        for column in stats.T:  # Scala's Array.sum: from the first class on
            total = total + column
        votes = np.divide(
            stats, total[:, None], out=np.zeros_like(stats), where=(total != 0)[:, None]
        )
        feature = np.where(leaf, 0, flat["nodeData.split.featureIndex"].to_numpy())
        return cls(
            roots=offsets,
            feature=feature.astype(np.int64),
            threshold=threshold,
            categorical=categorical,
            left_categories=left_categories,
            children=np.column_stack([left, right]).astype(np.int64),
            votes=np.where(leaf[:, None], votes, 0.0).T.copy(),
            depth=_depth(left, right, offsets),
        )

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities (rows x classes) of feature ``vectors`` (rows x features)."""
        rows, width = vectors.shape
        values = np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1)
        start = (np.arange(rows) * width)[None, :]
        node = np.repeat(self.roots[:, None], rows, axis=1)  # trees x rows
        children = self.children.reshape(-1)
        for _ in range(self.depth):
            value = values[start + self.feature[node]]
            with np.errstate(invalid="ignore"):
                goes_left = value <= self.threshold[node]  # NaN goes right
            split = np.flatnonzero(self.categorical[node])
            if len(split):
                category, at = value.reshape(-1)[split], node.reshape(-1)[split]
                known = (category >= 0) & (category < self.left_categories.shape[1])
                index = np.where(known, category, 0).astype(np.int64)
                goes_left.reshape(-1)[split] = known & self.left_categories[at, index]
            node = children[2 * node + 1 - goes_left]
        votes = [np.zeros(rows) for _ in range(len(self.votes))]
        for tree in node:  # tree by tree, as Spark adds them
            votes = [total + leaf[tree] for total, leaf in zip(votes, self.votes, strict=True)]
        total = np.zeros(rows)
        for column in votes:
            total = total + column
        return np.column_stack(votes) / total[:, None]


def _depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """The number of splits on the longest path from a root to a leaf (its own child)."""
    depth, level = 0, roots
    while True:
        level = level[left[level] != level]
        if not len(level):
            return depth
        level = np.concatenate([left[level], right[level]])
        depth += 1


@dataclass(frozen=True)
class LocalPipeline:
    """A fitted `PipelineModel` (string indexers, assembler, random forest) in NumPy."""

    # Each indexer's input column and its labels, in index order.
    indexers: dict[str, tuple[str, ...]]
    # The assembler's inputs, each a continuous feature or an indexed categorical one.
    inputs: tuple[str, ...]
    forest: Forest

    @classmethod
    def load(cls, spark: SparkSession, pipeline: PipelineModel, folder: Location) -> LocalPipeline:
        """The trees saved with ``pipeline`` in the model folder ``folder`` (read by Spark,
        so a URI works as for ``PipelineModel.load``), and its indexers' labels."""
        from pyspark.ml.classification import RandomForestClassificationModel
        from pyspark.ml.feature import StringIndexerModel, VectorAssembler

        from spark_jobs.artifacts import PIPELINE_FOLDER
        from spark_jobs.storage import hadoop_uri, join

        indexed: dict[str, str] = {}
        indexers: dict[str, tuple[str, ...]] = {}
        inputs: tuple[str, ...] = ()
        data: pa.Table | None = None
        stages = pipeline.stages
        for position, stage in enumerate(stages):
            if isinstance(stage, StringIndexerModel):
                column = stage.getInputCol()
                indexed[stage.getOutputCol()] = column
                indexers[column] = tuple(stage.labelsArray[0])
            elif isinstance(stage, VectorAssembler):
                inputs = tuple(indexed.get(name, name) for name in stage.getInputCols())
            elif isinstance(stage, RandomForestClassificationModel):
                # Spark names a stage's folder <index, as many digits as the count>_<uid>.
                name = f"{position:0{len(str(len(stages)))}d}_{stage.uid}"
                saved = join(folder, PIPELINE_FOLDER, "stages", name, "data")
                data = spark.read.parquet(hadoop_uri(saved)).toArrow()
            else:
                raise UnsupportedModelError(
                    f"the stream scores indexer + assembler + random-forest pipelines only, "
                    f"not the stage {stage.uid}: score this model with `spark_jobs score`"
                )
        if data is None or not inputs:
            raise UnsupportedModelError("the pipeline has no assembler or no random forest")
        return cls(indexers, inputs, Forest.from_saved(data))

    def vectors(self, features: pa.Table) -> np.ndarray:
        """The assembled feature vectors (rows x features) of ``features``."""
        columns = []
        for name in self.inputs:
            if name in self.indexers:
                labels = pa.array(self.indexers[name], pa.string())
                index = pc.index_in(features[name], value_set=labels)
                columns.append(pc.fill_null(index, len(labels)).to_numpy().astype(np.float64))
            else:
                value = pc.cast(features[name], pa.float64())
                columns.append(value.to_numpy(zero_copy_only=False).astype(np.float64))
        return np.column_stack(columns) if columns else np.zeros((features.num_rows, 0))

    def probability(self, features: pa.Table) -> np.ndarray:
        """The forest's (uncalibrated) churn probability of each row of ``features``."""
        return self.forest.probability(self.vectors(features))[:, 1]


# --- prediction rows ---------------------------------------------------------------------------


def calibrated(raw: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """:func:`spark_jobs.scoring.calibrated`, operation for operation."""
    clipped = np.minimum(np.maximum(raw, _CLIP), 1 - _CLIP)
    logit = fdlibm.log(clipped / (1 - clipped))
    return 1 / (1 + fdlibm.exp(-(slope * logit + intercept)))


def prediction_table(
    features: pa.Table, local: LocalPipeline, card: ModelCard, period: str
) -> pa.Table:
    """:func:`spark_jobs.scoring.prediction_rows` (no label) of :func:`trailing_features`'
    rows, scored by ``local``: `model_predictions` columns, Spark's Arrow types."""
    from db.models import PREDICTION_COLUMNS, feature_columns

    p1 = calibrated(local.probability(features), card.platt_slope, card.platt_intercept)
    rows = features.num_rows
    slots = feature_columns(card.continuous_features, card.categorical_features)
    columns: dict[str, Any] = {
        "model_version": pa.array([card.version] * rows, pa.string()),
        "subscriber": features[USER],
        "as_of_date": features[DATE],
        "period": pa.array([period] * rows, pa.string()),
        "probability_0": pa.array(1 - p1, pa.float64()),
        "probability_1": pa.array(p1, pa.float64()),
        "prediction": pa.array((p1 >= card.threshold).astype(np.int32), pa.int32()),
        "label": pa.nulls(rows, pa.int32()),
    }
    for name in card.continuous_features:
        value = pc.cast(features[name], pa.float64())
        # MariaDB has no NaN: stored as NULL, as Spark's `nanvl` does.
        columns[slots[name]] = pc.if_else(pc.is_nan(value), pa.scalar(None, pa.float64()), value)
    for name in card.categorical_features:
        columns[slots[name]] = pc.cast(features[name], pa.string())
    return pa.table(
        {
            name: columns.get(
                name, pa.nulls(rows, pa.string() if name.startswith("c") else pa.float64())
            )
            for name in PREDICTION_COLUMNS
        }
    )
