"""Summary statistics, pooling, weighting and correlations on small hand-checkable frames."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from db.eda_queries import FEATURE_NAMES, LABEL, MOMENT_COLUMNS
from eda.summary import (
    feature_moments,
    is_heavy_tailed,
    label_groups,
    missing_days,
    pool_moments,
    sample_weights,
    summarize_features,
    weighted_correlation,
    weighted_quantiles,
)

CALLS, MEGABYTES = "M_Out_Call_Count", "M_Data_Sum"
NAN = math.nan


def _rows(records: Sequence[tuple[float, float, float]]) -> pd.DataFrame:
    """Rows of (calls, megabytes, label); the other features are 0."""
    frame = pd.DataFrame(records, columns=[CALLS, MEGABYTES, LABEL], dtype="float64")
    for name in FEATURE_NAMES:
        if name not in frame:
            frame[name] = 0.0
    return frame[[*FEATURE_NAMES, LABEL]]


TINY = _rows(
    [
        (1, 10, 0),
        (2, 20, 0),
        (3, NAN, 0),
        (4, 40, 0),
        (10, 0, 1),
        (NAN, 0, 1),
        (5, 1, NAN),
    ]
)


def _stats(summary: pd.DataFrame, group: str, feature: str) -> dict[str, Any]:
    return dict(summary.loc[(group, feature)])


def test_label_groups_name_0_1_and_missing() -> None:
    groups = label_groups(pd.Series([1.0, 0.0, NAN, 1.0]))

    assert list(groups) == ["1", "0", "unknown", "1"]
    assert list(groups.cat.categories) == ["0", "1", "unknown"]


def test_summary_per_label_by_hand() -> None:
    summary = summarize_features(TINY)

    assert _stats(summary, "0", CALLS) == pytest.approx(
        {
            "count": 4,
            "missing": 0,
            "mean": 2.5,
            "std": math.sqrt(5 / 3),
            "min": 1,
            "25%": 1.75,
            "50%": 2.5,
            "75%": 3.25,
            "max": 4,
        }
    )
    zero_mb = _stats(summary, "0", MEGABYTES)
    assert (zero_mb["count"], zero_mb["missing"]) == (3, 1)
    assert (zero_mb["mean"], zero_mb["25%"], zero_mb["50%"], zero_mb["75%"]) == pytest.approx(
        (70 / 3, 15, 20, 30)
    )
    one = _stats(summary, "1", CALLS)
    assert (one["count"], one["missing"], one["mean"], one["min"], one["max"]) == (1, 1, 10, 10, 10)
    assert math.isnan(one["std"])  # one value has no sample standard deviation
    assert _stats(summary, "unknown", CALLS)["50%"] == 5


def test_summary_of_all_rows_by_hand() -> None:
    calls = _stats(summarize_features(TINY), "all", CALLS)

    values = [1, 2, 3, 4, 10, 5]
    assert calls == pytest.approx(
        {
            "count": 6,
            "missing": 1,
            "mean": 25 / 6,
            "std": statistics.stdev(values),
            "min": 1,
            "25%": 2.25,  # sorted 1 2 3 4 5 10: a quarter of the way from 2 to 3
            "50%": 3.5,
            "75%": 4.75,
            "max": 10,
        }
    )


def test_summary_lists_the_groups_in_order_and_leaves_out_empty_ones() -> None:
    summary = summarize_features(TINY[TINY[LABEL].notna()])

    assert list(summary.index.get_level_values("group").unique()) == ["all", "0", "1"]
    assert list(summary.columns) == [
        "count", "missing", "mean", "std", "min", "25%", "50%", "75%", "max",
    ]  # fmt: skip
    assert len(summary) == 3 * len(FEATURE_NAMES)


def test_pooled_moments_equal_those_of_the_union() -> None:
    rng = np.random.default_rng(7)
    a, b, c = rng.exponential(3, 300), rng.normal(9, 2, 90), np.array([4.0])
    rows = pd.DataFrame({CALLS: np.concatenate([a, b, c]), LABEL: [0.0] * 300 + [1.0] * 90 + [NAN]})

    pooled = pool_moments(feature_moments(rows, [CALLS])).loc[CALLS]

    union = rows[CALLS]
    assert pooled["count"] == pooled["rows"] == 391
    assert pooled["mean"] == pytest.approx(union.mean(), rel=1e-12)
    assert pooled["std"] == pytest.approx(union.std(), rel=1e-12)
    assert (pooled["min"], pooled["max"]) == (union.min(), union.max())


def test_a_capped_sample_is_weighted_back_to_the_labels_shares() -> None:
    # The range: 300 rows labelled 0, all 0 calls; 100 labelled 1, all 10 calls. The sample
    # holds 3 of each. Unweighted its median would be 5; the range's is 0.
    sample = _rows([(0, 0, 0)] * 3 + [(10, 0, 1)] * 3)
    moments = pd.DataFrame(
        [
            {LABEL: 0.0, "feature": CALLS, "rows": 300, "count": 300, "mean": 0.0, "std": 0.0,
             "min": 0.0, "max": 0.0},
            {LABEL: 1.0, "feature": CALLS, "rows": 100, "count": 100, "mean": 10.0, "std": 0.0,
             "min": 10.0, "max": 10.0},
        ],
        columns=[LABEL, "feature", *MOMENT_COLUMNS],
    )  # fmt: skip

    summary = summarize_features(sample, moments)

    everything = _stats(summary, "all", CALLS)
    assert (everything["count"], everything["mean"]) == (400, 2.5)
    assert (everything["25%"], everything["50%"]) == (0, 0)
    assert _stats(summary, "1", CALLS)["50%"] == 10
    assert list(sample_weights(sample, {"0": 300, "1": 100})) == [100] * 3 + [100 / 3] * 3


def test_weighted_quantiles_with_equal_weights_are_pandas_quantiles() -> None:
    values = pd.Series(np.random.default_rng(1).gamma(2, 5, 101))
    values[[3, 50]] = NAN

    got = weighted_quantiles(values, pd.Series(np.full(101, 7.0)), (0.1, 0.25, 0.5, 0.9))

    assert got == pytest.approx(list(values.quantile([0.1, 0.25, 0.5, 0.9])), rel=1e-12)
    assert (
        weighted_quantiles(pd.Series([NAN]), pd.Series([1.0]))
        == [pytest.approx(NAN, nan_ok=True)] * 3
    )


def test_weighted_correlation_with_equal_weights_is_pandas_pairwise_pearson() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    frame["b"] += frame["a"]
    frame.loc[[1, 7, 9], "a"] = NAN
    frame.loc[[2, 7], "c"] = NAN

    got = weighted_correlation(frame, pd.Series(np.ones(50)))

    pd.testing.assert_frame_equal(got, frame.corr(), rtol=1e-12)


def test_a_weight_of_two_counts_as_a_duplicated_row() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 3.0], "y": [2.0, 1.0, 5.0, 0.0]})
    weights = pd.Series([1.0, 2.0, 1.0, 1.0])

    got = weighted_correlation(frame, weights)

    duplicated = pd.concat([frame, frame.iloc[[1]]])
    assert got.loc["x", "y"] == pytest.approx(duplicated.corr().loc["x", "y"], rel=1e-12)


def test_a_constant_column_has_no_correlation() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [5.0, 5.0, 5.0]})

    assert math.isnan(weighted_correlation(frame, pd.Series([1.0, 1.0, 1.0])).loc["x", "y"])


def test_missing_days_lists_the_days_without_rows() -> None:
    daily = pd.DataFrame({"day": pd.to_datetime(["2024-01-01", "2024-01-03"])})

    assert missing_days(daily, date(2024, 1, 1), date(2024, 1, 4)) == [
        date(2024, 1, 2),
        date(2024, 1, 4),
    ]


def test_heavy_tails_are_told_from_even_spreads() -> None:
    rng = np.random.default_rng(5)

    assert is_heavy_tailed(pd.Series(rng.lognormal(0, 1.5, 2000)))
    assert not is_heavy_tailed(pd.Series(rng.uniform(0, 10, 2000)))
    assert not is_heavy_tailed(pd.Series([0.0, 0.0, 100.0]))  # too few distinct values
    assert not is_heavy_tailed(pd.Series(-rng.lognormal(0, 1.5, 2000)))
