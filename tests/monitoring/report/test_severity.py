"""Verdicts from stored rows, drift ranked by severity, alerts as runs, histograms."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.report.histograms import OTHER, compare_histograms
from monitoring.report.severity import alert_runs, chunk_verdicts, rank_statistics

DAYS = pd.date_range("2024-03-01", periods=8, freq="D")


def statistic(
    feature: str,
    alerts: list[bool],
    values: list[float] | None = None,
    kind: str = "continuous",
    upper: float | None = 0.1,
) -> pd.DataFrame:
    """One statistic's chunk rows over the first ``len(alerts)`` days."""
    count = len(alerts)
    return pd.DataFrame(
        {
            "kind": kind,
            "feature": feature,
            "method": "jensen_shannon",
            "chunk_key": [f"{day:%Y-%m-%d}" for day in DAYS[:count]],
            "chunk_start": DAYS[:count],
            "chunk_end": DAYS[:count] + pd.Timedelta(days=1),
            "value": values if values is not None else [0.2 if a else 0.05 for a in alerts],
            "sampling_error": math.nan,
            "lower_threshold": math.nan,
            "upper_threshold": math.nan if upper is None else upper,
            "alert": alerts,
        }
    )


def metric_rows(realized: list[float], realized_alert: list[Any]) -> pd.DataFrame:
    count = len(realized)
    return pd.DataFrame(
        {
            "metric": "roc_auc",
            "chunk_key": [f"{day:%Y-%m-%d}" for day in DAYS[:count]],
            "chunk_start": DAYS[:count],
            "chunk_end": DAYS[:count] + pd.Timedelta(days=1),
            "alert": False,
            "realized": realized,
            "realized_alert": realized_alert,
            "estimate_realized_alert": realized_alert,
        }
    )


def test_consecutive_alerts_collapse_into_runs() -> None:
    rows = statistic("usage", [False, True, True, False, True, True, True, False])

    runs = alert_runs(rows.iloc[::-1])  # taken in chunk order whatever the row order

    assert [run.label for run in runs] == [
        "2024-03-02–2024-03-03 (2 chunks)",
        "2024-03-05–2024-03-07 (3 chunks)",
    ]
    assert runs[1].start == DAYS[4] and runs[1].end == DAYS[7]


def test_a_single_alerted_chunk_is_a_run_of_one() -> None:
    (run,) = alert_runs(statistic("usage", [False, False, True]))

    assert run.label == "2024-03-03 (1 chunk)"


def test_drift_is_ranked_by_share_in_alert_then_by_peak_over_threshold() -> None:
    rows = pd.concat(
        [
            statistic("calm", [False] * 4),
            statistic("mild", [True, False, False, False], [0.3, 0, 0, 0]),
            statistic("strong_once", [True, False, False, False], [0.9, 0, 0, 0]),
            statistic("persistent", [False, True, True, True]),
            statistic("missing", [True] * 4, kind="missing_values"),
        ]
    )

    ranked = rank_statistics(rows, ("continuous", "categorical"))
    alerting = rank_statistics(rows, ("continuous",), alerting_only=True)

    assert [item.feature for item in ranked] == ["persistent", "strong_once", "mild", "calm"]
    assert ranked[1].peak == pytest.approx(9.0)
    assert ranked[0].share == 0.75
    assert [item.feature for item in alerting] == ["persistent", "strong_once", "mild"]


def test_verdicts_are_recomputed_from_the_stored_rows_most_urgent_first() -> None:
    results = metric_rows([0.8, 0.6, math.nan], [False, True, math.nan])
    drift = pd.concat(
        [
            statistic("usage", [True, True, True]),
            statistic("spend", [False, False, True], kind="missing_values"),
        ]
    )

    verdicts = chunk_verdicts(results, drift)

    assert list(verdicts["verdict"]) == ["data_drift", "performance_degraded", "data_quality"]
    # A realized flag without a realized value (NULL read back as NaN) is no alert.
    assert verdicts["reasons"].iloc[2] == ("missing_values:spend", "univariate_drift:usage")
    assert "realized_performance:roc_auc" in verdicts["reasons"].iloc[1]


def test_histograms_of_a_shifted_chunk_share_their_bins() -> None:
    rng = np.random.default_rng(1)
    reference = [*rng.normal(0, 1, 1000), None]
    chunk = list(rng.normal(2, 1, 200))

    histogram = compare_histograms("usage", "2024-03-05", reference, chunk, categorical=False)

    assert sum(histogram.reference_share) == pytest.approx(1.0)
    assert sum(histogram.chunk_share) == pytest.approx(1.0)
    assert len(histogram.centers) == len(histogram.widths) == len(histogram.labels) == 30
    assert (histogram.reference_rows, histogram.reference_missing) == (1000, 1)
    middle = len(histogram.centers) // 2
    assert sum(histogram.chunk_share[middle:]) > sum(histogram.reference_share[middle:])


def test_categorical_histograms_sum_the_rare_categories() -> None:
    reference = [f"c{i:02d}" for i in range(25) for _ in range(25 - i)]
    chunk = ["c00", "new", "new"]

    histogram = compare_histograms("plan", "k", reference, chunk, categorical=True)

    assert histogram.labels[0] == "c00"
    assert histogram.labels[-1] == OTHER
    assert len(histogram.labels) == 21
    assert sum(histogram.reference_share) == pytest.approx(1.0)
    assert histogram.chunk_share[-1] == pytest.approx(2 / 3)  # "new" is among the rare
