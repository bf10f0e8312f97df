"""Recomputing some chunks: a fitted monitor's result on the changed chunks, merged into the
previous result, equals the result of a full recompute."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.core import FittedMonitor, fit_monitor
from monitoring.compute.incremental import chunk_days, is_incremental, merge_results
from monitoring.compute.result import MonitoringResult
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.compute.thresholds import Bounds
from tests.monitoring.frames import START, day_of, predictions, rescore


@pytest.fixture(scope="module")
def fitted() -> FittedMonitor:
    """A daily monitor fitted on ten reference days (the conftest's reference and mapping)."""
    reference = predictions(np.random.default_rng(7), 10, 800, START - pd.Timedelta(days=30))
    mapping = ColumnMapping(
        y_true="churned",
        y_pred_proba="score",
        y_pred="churn_pred",
        timestamp="ts",
        features=["usage", "spend", "plan"],
        categorical=["plan"],
    )
    return fit_monitor(reference, mapping, Chunking(period="D"), min_chunk_rows=100)


def _days(frame: pd.DataFrame, days: list[int]) -> pd.DataFrame:
    return frame[day_of(frame).isin(days)]


def _assert_same(left: MonitoringResult, right: MonitoringResult) -> None:
    assert left.chunks == right.chunks
    assert left.metric_rows() == right.metric_rows()
    assert left.drift_rows() == right.drift_rows()
    assert left.quality_rows() == right.quality_rows()
    assert left.verdicts() == right.verdicts()
    assert left.alert_counts() == right.alert_counts()
    assert sorted(left.warnings, key=repr) == sorted(right.warnings, key=repr)


def test_merging_recomputed_chunks_gives_the_full_result(
    fitted: FittedMonitor, analysis: pd.DataFrame
) -> None:
    # Day 6 had no labels when first monitored; a new day 8 comes, drifted and small.
    before = analysis.assign(churned=analysis["churned"].where(day_of(analysis) != 6))
    rng = np.random.default_rng(5)
    new_day = predictions(rng, 1, 120, START + pd.Timedelta(days=8))
    new_day = rescore(new_day.assign(usage=new_day["usage"] + 2.0), rng)
    after = pd.concat([analysis, new_day], ignore_index=True)
    previous = fitted.calculate(before)

    update = fitted.calculate(_days(after, [6, 8]))
    merged = merge_results(previous, update, [chunk.key for chunk in update.chunks])

    full = fitted.calculate(after)
    _assert_same(merged, full)
    assert full.alert_counts() != previous.alert_counts()  # the change shows
    assert merged.chunks[:6] == previous.chunks[:6]


def test_the_calibration_change_alert_is_settled_on_the_merged_series(
    fitted: FittedMonitor, analysis: pd.DataFrame
) -> None:
    # A band every known change crosses: each chunk three after a labelled one alerts.
    band = Bounds(None, -1.0)
    monitor = replace(fitted, thresholds=replace(fitted.thresholds, calibration_change=band))
    before = analysis.assign(churned=analysis["churned"].where(day_of(analysis) != 6))
    previous = monitor.calculate(before)

    # Day 6's labels come: the update alone has no day 3 to compare with.
    update = monitor.calculate(_days(analysis, [6]))
    keys = [chunk.key for chunk in update.chunks]
    merged = merge_results(previous, update, keys, band)

    full = monitor.calculate(analysis)
    assert full.calibration is not None and merged.calibration is not None
    assert update.calibration is not None and update.calibration.alert == (False,)
    assert full.calibration.alert == (False,) * 3 + (True,) * 5
    assert merged.calibration.alert == full.calibration.alert
    _assert_same(merged, full)
    unsettled = merge_results(previous, update, keys)
    assert unsettled.calibration is not None and unsettled.calibration.alert[6] is False


def test_a_recomputed_chunk_without_rows_is_left_out(
    fitted: FittedMonitor, analysis: pd.DataFrame
) -> None:
    previous = fitted.calculate(analysis)
    gone = previous.chunks[3].key

    merged = merge_results(previous, None, [gone])

    _assert_same(merged, fitted.calculate(analysis[day_of(analysis) != 3]))


def test_an_update_of_chunks_not_listed_is_refused(
    fitted: FittedMonitor, analysis: pd.DataFrame
) -> None:
    previous = fitted.calculate(analysis)
    update = fitted.calculate(_days(analysis, [2]))

    with pytest.raises(ValueError, match="not listed"):
        merge_results(previous, update, [])


def test_chunk_days_are_the_periods_holding_the_days() -> None:
    days = [date(2024, 3, 6), date(2024, 3, 4), date(2024, 3, 6), date(2024, 3, 12)]

    assert chunk_days(days, Chunking(period="D")) == [
        (date(2024, 3, 4), date(2024, 3, 4)),
        (date(2024, 3, 6), date(2024, 3, 6)),
        (date(2024, 3, 12), date(2024, 3, 12)),
    ]
    # Weeks run Monday to Sunday: 4 and 6 March 2024 share one.
    assert chunk_days(days, Chunking(period="W")) == [
        (date(2024, 3, 4), date(2024, 3, 10)),
        (date(2024, 3, 11), date(2024, 3, 17)),
    ]
    assert chunk_days(days, Chunking(period="M")) == [(date(2024, 3, 1), date(2024, 3, 31))]
    assert chunk_days([], Chunking(period="D")) == []


def test_chunks_of_a_number_of_rows_are_not_incremental() -> None:
    assert is_incremental(Chunking(period="W"))
    assert not is_incremental(Chunking(size=500))
    with pytest.raises(ValueError, match="number of rows"):
        chunk_days([date(2024, 3, 4)], Chunking(size=500))
