"""Alert thresholds from the bootstrap of the reference, and the verdict of a chunk."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.chunking import chunk_bounds
from monitoring.compute.core import run_monitoring
from monitoring.compute.result import ChunkVerdict
from monitoring.compute.spec import AlertPolicy, Chunking, ColumnMapping
from monitoring.compute.thresholds import (
    Bounds,
    bootstrap_reference,
    distance_bound,
    performance_bounds,
    share_bound,
    upper_bound,
)
from tests.monitoring.frames import START, predictions


def test_bounds_alert_outside_the_band_and_never_on_nan() -> None:
    values = np.array([0.1, 0.5, 0.9, math.nan])

    assert Bounds(0.2, 0.8).alerts(values).tolist() == [True, False, True, False]
    assert Bounds(0.2, None).alerts(values).tolist() == [True, False, False, False]
    assert Bounds(None, None).alerts(values).tolist() == [False] * 4


def test_performance_bounds_are_one_sided_unless_both_are_asked_for() -> None:
    values = np.random.default_rng(1).normal(0.8, 0.01, 10_000)

    lower = performance_bounds(values, values[:10], 0.01, "lower")
    both = performance_bounds(values, values[:10], 0.01, "both")

    assert lower.upper is None
    assert lower.lower == pytest.approx(0.8 - 2.326 * 0.01, abs=5e-4)
    assert both.lower == pytest.approx(0.8 - 2.576 * 0.01, abs=5e-4)
    assert both.upper == pytest.approx(0.8 + 2.576 * 0.01, abs=5e-4)
    # The band holds the stated share of fresh values from the same distribution.
    fresh = np.random.default_rng(2).normal(0.8, 0.01, 100_000)
    assert lower.alerts(fresh).mean() == pytest.approx(0.01, abs=0.002)
    assert both.alerts(fresh).mean() == pytest.approx(0.01, abs=0.002)


def test_distance_and_upper_bounds_hold_their_rate_on_fresh_values() -> None:
    rng = np.random.default_rng(3)
    distances = rng.lognormal(-3, 0.3, 5000)
    errors = rng.normal(1.0, 0.05, 5000)

    distance = distance_bound(distances, 0.005)
    error = upper_bound(errors, 0.005)

    assert distance.lower is None and error.lower is None
    assert distance.alerts(rng.lognormal(-3, 0.3, 200_000)).mean() == pytest.approx(
        0.005, abs=0.001
    )
    assert error.alerts(rng.normal(1.0, 0.05, 200_000)).mean() == pytest.approx(0.005, abs=0.001)


def test_a_share_the_reference_never_shows_still_allows_a_stray_row() -> None:
    never = np.zeros(200)

    bound = share_bound(never, np.zeros(10), 1000, 0.001)

    assert bound.lower is None and bound.upper is not None
    # The rule-of-succession share 1/1002 on 1,000 rows: a few stray zeros pass, a column
    # that reads zero on a tenth of its rows does not.
    assert 0.003 < bound.upper < 0.02
    assert bound.alerts(np.array([0.002, 0.1, 1.0])).tolist() == [False, True, True]


def test_a_share_bound_holds_its_rate_on_fresh_binomial_shares() -> None:
    rng = np.random.default_rng(6)
    shares = rng.binomial(2000, 0.05, 2000) / 2000

    bound = share_bound(shares, shares[:10], 2000, 0.01)

    fresh = rng.binomial(2000, 0.05, 200_000) / 2000
    assert bound.alerts(fresh).mean() == pytest.approx(0.01, abs=0.004)


def test_too_few_values_give_no_bound() -> None:
    few = np.array([0.8, math.nan])
    assert performance_bounds(few, few, 0.01, "lower") == Bounds(None, None)
    assert distance_bound(np.array([math.nan]), 0.01) == Bounds(None, None)


def test_a_wider_spread_of_the_reference_chunks_widens_the_band() -> None:
    values = np.random.default_rng(1).normal(0.8, 0.01, 1000)
    chunks = np.array([0.75, 0.85, 0.78, 0.82])

    narrow = performance_bounds(values, values[:4], 0.01, "lower")
    wide = performance_bounds(values, chunks, 0.01, "lower")

    assert narrow.lower is not None and wide.lower is not None
    z = NormalDist().inv_cdf(0.99)
    assert wide.lower == pytest.approx(values.mean() - z * chunks.std(ddof=1), abs=1e-9)
    assert wide.lower < narrow.lower


@pytest.mark.parametrize(
    "chunking",
    [Chunking(period="D"), Chunking(period="W"), Chunking(period="M"), Chunking(size=500)],
    ids=["day", "week", "month", "size"],
)
def test_the_bootstrap_cuts_into_one_chunk_per_resample(chunking: Chunking) -> None:
    reference = predictions(np.random.default_rng(4), 21, 300, START - pd.Timedelta(days=30))
    bounds = chunk_bounds(reference["ts"].to_numpy(), chunking)

    for pooled in (True, False):
        resampled = bootstrap_reference(reference, bounds, chunking, "ts", 50, 0, pooled=pooled)

        chunks = chunk_bounds(resampled["ts"].to_numpy(), chunking)
        assert len(chunks) == 50
        sizes = {chunk.rows for chunk in bounds}
        if chunking.size is not None:
            assert {chunk.rows for chunk in chunks} == {500}
        else:
            assert {chunk.rows for chunk in chunks} <= sizes
        # Reproducible for a seed.
        again = bootstrap_reference(reference, bounds, chunking, "ts", 50, 0, pooled=pooled)
        pd.testing.assert_frame_equal(resampled, again)


def test_a_resample_draws_from_the_whole_reference_or_from_one_chunk() -> None:
    reference = predictions(np.random.default_rng(5), 10, 200, START - pd.Timedelta(days=30))
    reference["day"] = reference["ts"].dt.normalize()
    chunking = Chunking(period="D")
    bounds = chunk_bounds(reference["ts"].to_numpy(), chunking)

    pooled = bootstrap_reference(reference, bounds, chunking, "ts", 30, 1, pooled=True)
    by_chunk = bootstrap_reference(reference, bounds, chunking, "ts", 30, 1, pooled=False)

    assert (pooled.groupby("ts")["day"].nunique() > 5).all()
    assert (by_chunk.groupby("ts")["day"].nunique() == 1).all()


def test_clean_chunks_stay_within_the_target_rates(mapping: ColumnMapping) -> None:
    reference = predictions(np.random.default_rng(7), 14, 600, START - pd.Timedelta(days=30))
    analysis = predictions(np.random.default_rng(8), 40, 600)

    result = run_monitoring(reference, analysis, mapping, Chunking(period="D"))

    chunks = len(result.chunks)
    counts = result.alert_counts()
    performance = sum(
        any(
            m.alert[i] or m.realized_alert[i] or m.estimate_realized_alert[i]
            for m in result.metrics
        )
        for i in range(chunks)
    )
    assert performance <= 0.05 * chunks
    assert result.calibration is not None
    assert result.calibration.alerts <= 0.05 * chunks
    assert counts["zero_values"] == counts["missing_values"] == 0
    assert counts["univariate_drift"] <= 0.02 * chunks * len(result.univariate)
    assert counts["multivariate_drift"] <= 0.05 * chunks
    assert result.alert_direction == "lower"
    assert all(m.upper_threshold is None for m in result.metrics)


def test_a_better_model_alerts_only_when_both_directions_are_asked_for(
    mapping: ColumnMapping,
) -> None:
    reference = predictions(np.random.default_rng(7), 14, 600, START - pd.Timedelta(days=30))
    analysis = predictions(np.random.default_rng(8), 6, 600)
    # Perfect decisions and scores: every metric rises far above the reference's.
    analysis["churn_pred"] = analysis["churned"]
    analysis["score"] = np.where(analysis["churned"] == 1, 0.99, 0.01)

    lower = run_monitoring(reference, analysis, mapping, Chunking(period="D"))
    both = run_monitoring(
        reference, analysis, mapping, Chunking(period="D"), policy=AlertPolicy(direction="both")
    )

    assert all(not any(m.realized_alert) for m in lower.metrics)
    assert all(all(m.realized_alert) for m in both.metrics)
    assert {verdict.verdict for verdict in both.verdicts()} == {"performance_degraded"}


@pytest.mark.parametrize(
    ("alerts", "verdict"),
    [
        ({}, "healthy"),
        ({"univariate_drift": ("a",)}, "data_drift"),
        ({"multivariate_drift": True}, "data_drift"),
        ({"estimate_vs_realized": ("f1",), "univariate_drift": ("a",)}, "performance_degraded"),
        ({"realized_performance": ("roc_auc",)}, "performance_degraded"),
        ({"missing_values": ("a",), "estimated_performance": ("f1",)}, "data_quality"),
        ({"unseen_values": ("plan",)}, "data_quality"),
        ({"zero_values": ("usage",), "realized_performance": ("calibration",)}, "data_quality"),
    ],
)
def test_the_verdict_follows_the_precedence(alerts: dict[str, object], verdict: str) -> None:
    assert ChunkVerdict.of("2024-03-01", **alerts).verdict == verdict  # type: ignore[arg-type]


def test_reasons_list_every_alert_most_urgent_first() -> None:
    verdict = ChunkVerdict.of(
        "2024-03-01",
        univariate_drift=("usage", "spend"),
        multivariate_drift=True,
        realized_performance=("roc_auc",),
        missing_values=("usage",),
    )

    assert verdict.reasons == (
        "missing_values:usage",
        "realized_performance:roc_auc",
        "univariate_drift:usage",
        "univariate_drift:spend",
        "multivariate_drift",
    )
    assert verdict.alert_count("univariate_drift") == 2
    assert verdict.alert_count("multivariate_drift") == 1
    assert verdict.data_quality == ("usage",)
    assert verdict.to_json() == {
        "chunk": "2024-03-01",
        "verdict": "data_quality",
        "reasons": list(verdict.reasons),
    }
