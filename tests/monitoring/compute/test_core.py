"""The monitoring core on small synthetic frames: each scenario breaks one thing in the later
analysis chunks and checks that the matching alert fires there, and only there."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.chunking import PresortedChunker
from monitoring.compute.core import deployed_reference, fit_monitor, run_monitoring
from monitoring.compute.drift import fit_multivariate, multivariate_drift
from monitoring.compute.nannyml_loader import nml
from monitoring.compute.prepare import prepare_analysis, prepare_reference
from monitoring.compute.result import (
    CHUNK_TOO_SMALL,
    FEW_REFERENCE_CHUNKS,
    METRICS,
    SINGLE_CLASS_CHUNK,
    MonitoringResult,
)
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.errors import InputError, InsufficientDataError
from tests.monitoring.frames import day_of, predictions, rescore

DAILY = Chunking(period="D")
EARLY_DAYS = [0, 1, 2, 3]
LATE_DAYS = [4, 5, 6, 7]


def _strict_json(result: MonitoringResult) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    parsed: dict[str, Any] = json.loads(json.dumps(result.to_json()), parse_constant=refuse)
    return parsed


def test_a_calibrated_model_without_drift_raises_no_alert(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    result = run_monitoring(reference, analysis, mapping, DAILY)

    assert [chunk.chunk_rows for chunk in result.chunks] == [800] * 8
    assert result.total_alerts == 0
    assert {v.verdict for v in result.verdicts()} == {"healthy"}
    assert result.warnings == ()
    roc_auc = result.metric("roc_auc")
    assert np.nanmax(np.abs(np.subtract(roc_auc.estimate, roc_auc.realized))) < 0.03
    assert all(0 <= chunk.ece < 0.06 for chunk in result.chunks)


def test_concept_drift_fires_the_estimate_vs_realized_alert_on_the_drifted_chunks_only(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    rng = np.random.default_rng(11)
    day = day_of(analysis)
    # Same scores, so the same estimates; labels independent of them on days 4-5 and
    # against them on days 6-7.
    independent = day.isin([4, 5])
    inverted = day.isin([6, 7])
    churned = analysis["churned"].copy()
    churned[independent] = rng.binomial(1, analysis["score"].mean(), int(independent.sum()))
    churned[inverted] = rng.binomial(1, 1 - analysis.loc[inverted, "score"])
    drifted = analysis.assign(churned=churned)

    result = run_monitoring(reference, drifted, mapping, DAILY)

    flags = result.metric("roc_auc").estimate_realized_alert
    assert flags == (False, False, False, False, True, True, True, True)
    for name in METRICS:
        assert result.metric(name).estimate_realized_alert[:4] == (False,) * 4
    assert result.metric("roc_auc").alert == (False,) * 8  # CBPE alone sees nothing
    assert result.multivariate.alerts == 0


def test_covariate_drift_fires_univariate_and_multivariate_alerts(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    late = day_of(analysis).isin(LATE_DAYS)
    # usage moves away from spend, which it is correlated with in the reference.
    shifted = analysis.assign(usage=analysis["usage"] + np.where(late, 2.0, 0.0))
    shifted = rescore(shifted, np.random.default_rng(12))

    result = run_monitoring(reference, shifted, mapping, DAILY)

    usage = next(series for series in result.univariate if series.subject == "usage")
    assert usage.alert == (False,) * 4 + (True,) * 4
    assert result.multivariate.alert == (False,) * 4 + (True,) * 4
    spend = next(series for series in result.univariate if series.subject == "spend")
    assert spend.alerts == 0


def test_unseen_and_missing_values_show_in_data_quality(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    day = day_of(analysis)
    broken = analysis.copy()
    broken.loc[day == 5, "plan"] = "business"  # never seen in the reference
    broken.loc[(day == 6) & (broken.index % 4 == 0), "spend"] = np.nan

    result = run_monitoring(reference, broken, mapping, DAILY)

    unseen = {series.subject: series for series in result.unseen_values}
    assert unseen["plan"].alert == tuple(d == 5 for d in range(8))
    assert unseen["plan"].values[5] == 1.0
    missing = {series.subject: series for series in result.missing_values}
    assert missing["spend"].alert == tuple(d == 6 for d in range(8))
    assert math.isclose(missing["spend"].values[6], 0.25, abs_tol=0.02)
    assert missing["usage"].alerts == 0
    counts = _strict_json(result)["alerts"]
    assert counts["unseen_values"] == 1
    assert counts["missing_values"] == 1


def test_a_feature_that_reads_zero_alerts_data_quality_from_that_chunk_only(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    day = day_of(analysis)
    # A broken feed: spend reads 0 on a third of day 4's rows, then on every row.
    broken = analysis.copy()
    broken.loc[(day == 4) & (broken.index % 3 == 0), "spend"] = 0.0
    broken.loc[day >= 5, "spend"] = 0.0

    result = run_monitoring(reference, broken, mapping, DAILY)

    zeros = {series.subject: series for series in result.zero_values}
    assert set(zeros) == {"usage", "spend"}  # the continuous features
    assert zeros["spend"].alert == (False,) * 4 + (True,) * 4
    assert zeros["spend"].values[7] == 1.0
    assert zeros["usage"].alerts == 0
    verdicts = result.verdicts()
    assert [v.verdict for v in verdicts[4:]] == ["data_quality"] * 4
    assert "zero_values:spend" in verdicts[4].reasons
    assert all("zero_values:spend" not in v.reasons for v in verdicts[:4])
    parsed = _strict_json(result)
    assert parsed["alerts"]["zero_values"] == 4
    assert parsed["data_quality"]["zero_values"]["spend"]["alerts"] == 4


def test_one_stray_zero_is_no_data_quality_alert(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    # The reference never reads 0: a threshold at 0 would alert on the first one.
    stray = analysis.copy()
    stray.loc[stray.index[::400], "usage"] = 0.0

    result = run_monitoring(reference, stray, mapping, DAILY)

    assert sum(series.alerts for series in result.zero_values) == 0


def test_a_churn_rate_the_scores_do_not_explain_fires_the_realized_calibration_alert(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    rng = np.random.default_rng(13)
    late = day_of(analysis).isin(LATE_DAYS)
    # Same scores; from day 4 the churn odds double, which the features do not show.
    score = analysis["score"]
    doubled = 2 * score / (1 + score)
    churned = analysis["churned"].copy()
    churned[late] = rng.binomial(1, doubled[late])
    drifted = analysis.assign(churned=churned)

    result = run_monitoring(reference, drifted, mapping, DAILY)

    assert result.calibration is not None
    assert result.calibration.alert == (False,) * 4 + (True,) * 4
    assert all(value > 0.05 for value in result.calibration.values[4:])
    verdicts = result.verdicts()
    assert all("realized_performance:calibration" in v.reasons for v in verdicts[4:])
    assert all(v.verdict == "healthy" for v in verdicts[:4])
    assert result.alert_counts()["realized_performance"] >= 4
    assert _strict_json(result)["calibration"]["alerts"] == 4


def test_the_first_labelled_days_in_deployment_become_the_reference(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    day = day_of(analysis)
    partly = analysis.assign(churned=analysis["churned"].where(day < 5))  # days 0-4 labelled

    deployed = deployed_reference(reference, partly, mapping, 5)

    assert len(deployed) == int((day < 5).sum())
    assert set(day_of(deployed)) == {0, 1, 2, 3, 4}
    assert deployed["churned"].notna().all()
    # Not all of the window labelled yet, or no window asked for: the model's reference.
    assert deployed_reference(reference, partly, mapping, 6) is reference
    assert deployed_reference(reference, partly, mapping, 0) is reference


def test_small_and_single_class_chunks_are_warned_about_not_left_as_silent_nan(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    day = day_of(analysis)
    keep = (day != 7) | (analysis.index % 16 == 0)  # day 7 keeps 50 rows
    thinned = analysis.loc[keep].copy()
    thinned.loc[day_of(thinned) == 3, "churned"] = 0.0

    result = run_monitoring(reference, thinned, mapping, DAILY)

    codes = {(warning.code, warning.chunk) for warning in result.warnings}
    assert (CHUNK_TOO_SMALL, "2024-03-08") in codes
    assert (SINGLE_CLASS_CHUNK, "2024-03-04") in codes
    as_json = _strict_json(result)
    roc_auc = as_json["metrics"]["roc_auc"]["chunks"]
    assert roc_auc[3]["realized"] is None
    assert roc_auc[3]["estimate_realized_alert"] is None
    assert roc_auc[3]["estimate"] is not None
    assert {warning["code"] for warning in as_json["warnings"]} == {
        CHUNK_TOO_SMALL,
        SINGLE_CLASS_CHUNK,
    }


def test_unlabelled_chunks_have_estimates_but_no_realized_figures(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    partly = analysis.assign(churned=analysis["churned"].where(day_of(analysis).isin(EARLY_DAYS)))

    result = run_monitoring(reference, partly, mapping, DAILY)

    rows = result.metric_rows()
    assert len(rows) == len(METRICS) * 8
    late = [row for row in rows if row["chunk_start"] >= pd.Timestamp("2024-03-05")]
    assert all(row["realized"] is None and row["ece"] is None for row in late)
    assert all(row["estimate"] is not None and row["labelled_rows"] == 0 for row in late)
    assert result.metric("accuracy").estimate_realized_alert[4:] == (None,) * 4


def test_weekly_and_sized_chunks(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    sized = run_monitoring(reference, analysis, mapping, Chunking(size=1600), min_chunk_rows=100)
    weekly = run_monitoring(reference, analysis, mapping, Chunking(period="W"), min_chunk_rows=100)

    assert [chunk.chunk_rows for chunk in sized.chunks] == [1600] * 4
    assert sized.reference_chunks == 5
    assert [chunk.key for chunk in weekly.chunks] == [
        "2024-02-26/2024-03-03",
        "2024-03-04/2024-03-10",
    ]
    assert {warning.code for warning in weekly.warnings} == {FEW_REFERENCE_CHUNKS}


def test_drift_rows_cover_every_feature_and_chunk(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    result = run_monitoring(
        reference,
        analysis,
        mapping,
        DAILY,
        continuous_method="kolmogorov_smirnov",
        categorical_method="chi2",
    )

    rows = result.drift_rows()
    assert len(rows) == (len(mapping.features) + 1) * 8
    assert {(row["feature"], row["method"]) for row in rows} == {
        ("usage", "kolmogorov_smirnov"),
        ("spend", "kolmogorov_smirnov"),
        ("plan", "chi2"),
        ("all features", "pca_reconstruction_error"),
    }
    assert len(result.quality_rows()) == (len(mapping.features) + 1) * 8


def test_a_fitted_monitor_calculates_again_on_new_predictions(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    monitor = fit_monitor(reference, mapping, DAILY)

    first = monitor.calculate(analysis)
    second = monitor.calculate(analysis.iloc[:1600])

    assert len(first.chunks) == 8
    assert len(second.chunks) == 2
    assert second.metric("roc_auc").estimate == first.metric("roc_auc").estimate[:2]


@pytest.mark.filterwarnings("ignore:The resulting number of chunks is too low")
def test_count_encoding_gives_nannymls_own_reconstruction_error(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    broken = analysis.copy()
    # NaN, not None: NannyML's imputer overlooks None in an object column and then encodes it
    # as an unseen value; our encoding treats every missing value alike.
    broken.loc[broken.index[::7], "plan"] = np.nan
    broken.loc[broken.index[::11], "plan"] = "business"
    by_rows = Chunking(size=1600)
    frame, codes, _ = prepare_reference(reference, mapping)
    chunker = PresortedChunker(by_rows, mapping.timestamp)
    ours = multivariate_drift(
        fit_multivariate(frame, mapping, chunker), prepare_analysis(broken, mapping, codes), mapping
    )

    theirs = nml.DataReconstructionDriftCalculator(
        column_names=mapping.features, timestamp_column_name="ts", chunk_size=1600
    ).fit(reference)
    table = theirs.calculate(broken).filter(period="analysis").to_df()

    expected = table[("reconstruction_error", "value")].to_numpy()
    assert np.allclose(ours.values, expected, rtol=1e-4)


def test_no_predictions_is_an_insufficient_data_error(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    with pytest.raises(InsufficientDataError, match="no predictions to analyse"):
        run_monitoring(reference, analysis.iloc[:0], mapping, DAILY)


def test_a_missing_analysis_column_fails_before_the_reference_is_fitted(
    analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    with pytest.raises(InputError, match="analysis has no column 'spend'"):
        run_monitoring(pd.DataFrame(), analysis.drop(columns="spend"), mapping, DAILY)


def test_too_small_a_reference_is_an_insufficient_data_error(
    analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    reference = predictions(np.random.default_rng(1), 3, 50)

    with pytest.raises(InsufficientDataError, match="150 labelled predictions; at least 300"):
        run_monitoring(reference, analysis, mapping, DAILY)


def test_a_reference_within_one_chunk_is_an_insufficient_data_error(
    analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    reference = predictions(np.random.default_rng(1), 1, 1000)

    with pytest.raises(InsufficientDataError, match="single chunk"):
        run_monitoring(reference, analysis, mapping, DAILY)
