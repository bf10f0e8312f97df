"""Summary statistics of the CDR features by churn label: pure functions of DataFrames.

The database gives exact per-label moments over the whole range (`db.eda_queries.label_moments`)
and a sample capped at N rows per label. Within one label the sample is uniform, so its
quartiles and correlations estimate that label's. Across labels it is not: the churners, a few
percent of the rows, make up half of a capped sample. The statistics of all rows therefore
weight each sampled row by how many rows of its label it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from db.eda_queries import FEATURE_NAMES, LABEL, MOMENT_COLUMNS

ALL = "all"
UNKNOWN = "unknown"
# The values of PSEUDO_CHURNED as group names; a missing label is a group of its own.
LABEL_GROUPS: tuple[str, ...] = ("0", "1", UNKNOWN)
STATISTICS: tuple[str, ...] = ("count", "missing", "mean", "std", "min", "25%", "50%", "75%", "max")
QUARTILES: tuple[float, ...] = (0.25, 0.5, 0.75)


def label_groups(labels: pd.Series) -> pd.Series:
    """Map label values 0, 1 and missing to the group names ``"0"``, ``"1"`` and ``"unknown"``."""
    groups = labels.map(lambda value: UNKNOWN if pd.isna(value) else str(int(value)))
    return groups.astype(pd.CategoricalDtype(LABEL_GROUPS, ordered=True))


def feature_moments(rows: pd.DataFrame, features: Sequence[str] = FEATURE_NAMES) -> pd.DataFrame:
    """Per-label moments of ``rows``, in the layout of `db.eda_queries.label_moments`.

    The in-memory counterpart of the server's query, for a frame that holds every row.
    """
    records = []
    for label, group in rows.groupby(rows[LABEL], dropna=False, sort=True):
        for name in features:
            values = group[name]
            records.append(
                {
                    LABEL: label,
                    "feature": name,
                    "rows": len(group),
                    "count": int(values.count()),
                    "mean": values.mean(),
                    "std": values.std(),
                    "min": values.min(),
                    "max": values.max(),
                }
            )
    frame = pd.DataFrame(records, columns=[LABEL, "feature", *MOMENT_COLUMNS])
    frame[LABEL] = frame[LABEL].astype("float64")
    return frame


def group_rows(moments: pd.DataFrame) -> dict[str, int]:
    """Rows per label group in the range, from a moments frame."""
    per_label = moments.drop_duplicates(LABEL)
    groups = label_groups(per_label[LABEL])
    return {str(group): int(rows) for group, rows in zip(groups, per_label["rows"], strict=True)}


def pool_moments(moments: pd.DataFrame) -> pd.DataFrame:
    """Moments of all rows, per feature, from the per-label moments.

    Args:
        moments: Per-label moments (`db.eda_queries.label_moments` layout).

    Returns:
        Indexed by feature: ``rows``, ``count``, ``mean``, ``std`` (sample standard deviation
        of the union, exact up to rounding), ``min`` and ``max``.
    """
    pooled = {}
    for name, part in moments.groupby("feature", sort=False):
        count = part["count"].to_numpy(dtype=float)
        present = count > 0
        total = count[present].sum()
        means = part["mean"].to_numpy(dtype=float)[present]
        mean = (count[present] * means).sum() / total if total else np.nan
        # Within-group sums of squares plus the between-group part; a one-value group has none.
        within = np.nan_to_num(
            (count[present] - 1) * part["std"].to_numpy(dtype=float)[present] ** 2
        )
        between = count[present] * (means - mean) ** 2
        pooled[name] = {
            "rows": int(part["rows"].sum()),
            "count": int(total),
            "mean": mean,
            "std": np.sqrt((within.sum() + between.sum()) / (total - 1)) if total > 1 else np.nan,
            "min": part["min"].min(),
            "max": part["max"].max(),
        }
    return pd.DataFrame.from_dict(pooled, orient="index", columns=list(MOMENT_COLUMNS))


def sample_weights(sample: pd.DataFrame, rows_per_group: Mapping[str, int]) -> pd.Series:
    """How many rows of the range each sampled row stands for: its label's rows / sampled rows."""
    groups = label_groups(sample[LABEL]).astype(object)
    factors = {
        group: rows_per_group[group] / sampled for group, sampled in groups.value_counts().items()
    }
    return groups.map(factors).astype("float64")


def weighted_quantiles(
    values: pd.Series, weights: pd.Series, quantiles: Iterable[float] = QUARTILES
) -> list[float]:
    """Quantiles of the non-missing ``values`` with frequency ``weights``.

    With equal weights this is pandas' default (linear interpolation between order
    statistics); a weight of 2 acts as the value appearing twice, up to interpolation.
    """
    present = values.notna()
    order = np.argsort(values[present].to_numpy(dtype=float), kind="stable")
    sorted_values = values[present].to_numpy(dtype=float)[order]
    sorted_weights = weights[present].to_numpy(dtype=float)[order]
    if len(sorted_values) == 0:
        return [np.nan for _ in quantiles]
    if len(sorted_values) == 1:
        return [float(sorted_values[0]) for _ in quantiles]
    # The k-th value sits at the weight below it, scaled so the first is at 0 and the last at 1.
    below = np.cumsum(sorted_weights) - sorted_weights
    positions = below / below[-1]
    return [float(np.interp(q, positions, sorted_values)) for q in quantiles]


def summarize_features(sample: pd.DataFrame, moments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Summary statistics per label group and feature.

    Args:
        sample: Rows with the features and ``LABEL``: every row of the range, or a sample that
            is uniform within each label.
        moments: Exact per-label moments of the range (`db.eda_queries.label_moments`); when
            None they are computed from ``sample``, which must then hold every row.

    Returns:
        Indexed by (``group``, ``feature``) with the groups ``"all"``, ``"0"``, ``"1"``,
        ``"unknown"`` in that order (those without rows left out), columns `STATISTICS`.
        count, missing, mean, std, min and max come from ``moments``; the quartiles from
        ``sample``, weighted across labels for ``"all"``.
    """
    if moments is None:
        moments = feature_moments(sample)
    features = list(dict.fromkeys(moments["feature"]))
    rows_per_group = group_rows(moments)
    groups = label_groups(sample[LABEL])
    weights = sample_weights(sample, rows_per_group)

    frames = {ALL: pool_moments(moments)}
    for group, part in moments.groupby(label_groups(moments[LABEL]), observed=True):
        frames[str(group)] = part.set_index("feature")[list(MOMENT_COLUMNS)]
    parts = []
    for group in (ALL, *LABEL_GROUPS):
        if group not in frames:
            continue
        stats = frames[group].loc[features].copy()
        stats["missing"] = stats["rows"] - stats["count"]
        in_group = slice(None) if group == ALL else groups == group
        for name in features:
            stats.loc[name, ["25%", "50%", "75%"]] = weighted_quantiles(
                sample.loc[in_group, name], weights[in_group]
            )
        stats.index = pd.MultiIndex.from_product([[group], features], names=["group", "feature"])
        parts.append(stats[list(STATISTICS)])
    summary = pd.concat(parts)
    return summary.astype({"count": "int64", "missing": "int64"})


def weighted_correlation(frame: pd.DataFrame, weights: pd.Series) -> pd.DataFrame:
    """Pearson correlation of every pair of columns over the rows where both are present.

    With equal weights this equals ``frame.corr()``.
    """
    columns = list(frame.columns)
    values = frame.to_numpy(dtype=float)
    w = weights.to_numpy(dtype=float)
    result = np.full((len(columns), len(columns)), np.nan)
    for i in range(len(columns)):
        for j in range(i, len(columns)):
            both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
            result[i, j] = result[j, i] = _pearson(values[both, i], values[both, j], w[both])
    return pd.DataFrame(result, index=columns, columns=columns)


def _pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    if len(x) < 2 or w.sum() <= 0:
        return np.nan
    dx = x - np.average(x, weights=w)
    dy = y - np.average(y, weights=w)
    denominator = np.sqrt((w * dx * dx).sum() * (w * dy * dy).sum())
    return float((w * dx * dy).sum() / denominator) if denominator > 0 else np.nan


def correlation_matrix(sample: pd.DataFrame, rows_per_group: Mapping[str, int]) -> pd.DataFrame:
    """Correlations of the features and the label over the range, estimated from ``sample``."""
    columns = [*FEATURE_NAMES, LABEL]
    return weighted_correlation(sample[columns], sample_weights(sample, rows_per_group))


def missing_days(daily: pd.DataFrame, start: date, end: date) -> list[date]:
    """The days from ``start`` to ``end`` (inclusive) that have no row in ``daily``."""
    present = set(pd.to_datetime(daily["day"]).dt.date)
    return [day.date() for day in pd.date_range(start, end, freq="D") if day.date() not in present]


def is_heavy_tailed(values: pd.Series) -> bool:
    """Whether non-negative ``values`` are skewed enough to need a logarithmic axis."""
    present = values.dropna()
    if len(present) < 3 or present.min() < 0 or present.nunique() < 3:
        return False
    # Skewness 2 is the exponential distribution's: beyond it a linear axis squashes the bulk.
    return bool(present.skew() > 2)
