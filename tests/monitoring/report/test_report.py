"""The report: CSV tables, PNG/HTML plots and the index page of a monitoring result, drawn by
the figure builders the dashboard shares."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.core import run_monitoring
from monitoring.compute.result import METRICS, MonitoringResult
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.report import write_report
from monitoring.report.figures import (
    LOWER_THRESHOLD_NAME,
    REFERENCE_LABEL,
    STREAM_LABEL,
    UPPER_THRESHOLD_NAME,
    drift_runs_figure,
    metric_frame,
    performance_figure,
    quality_figure,
    statistics_figure,
)
from monitoring.report.pictures import build_pictures
from monitoring.report.severity import rank_statistics
from monitoring.report.timeline import Timeline
from tests.monitoring.frames import day_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMELINE = Timeline(date(2024, 1, 31), date(2024, 2, 9), date(2024, 3, 4))


@pytest.fixture
def result(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> MonitoringResult:
    """Eight daily chunks, the last two unlabelled, with a shifted feature and a missing value."""
    late = day_of(analysis) >= 6
    changed = analysis.assign(
        usage=analysis["usage"] + np.where(late, 2.0, 0.0),
        churned=analysis["churned"].where(~late),
    )
    changed.loc[changed.index[::50], "spend"] = np.nan
    return run_monitoring(reference, changed, mapping, Chunking(period="D"))


@pytest.fixture
def drift(result: MonitoringResult) -> pd.DataFrame:
    return metric_frame([*result.drift_rows(), *result.quality_rows()])


def test_figures_draw_every_metric_and_statistic(result: MonitoringResult) -> None:
    performance = performance_figure(metric_frame(result.metric_rows()))
    drift = metric_frame(result.drift_rows())
    univariate = statistics_figure(drift[drift["kind"] != "multivariate"], "Univariate drift")

    titles = [annotation.text for annotation in performance.layout.annotations]
    assert titles == ["ROC AUC", "F1", "Accuracy"]
    legend = {trace.name for trace in performance.data if trace.showlegend}
    assert {"estimated (CBPE)", "realized", LOWER_THRESHOLD_NAME} <= legend
    assert len(univariate.layout.annotations) == 3
    alerts = [trace for trace in univariate.data if trace.name == "alert"]
    assert sum(len(trace.x) for trace in alerts) == result.alert_counts()["univariate_drift"]


def test_thresholds_are_drawn_with_their_direction(drift: pd.DataFrame) -> None:
    usage = drift[(drift["feature"] == "usage") & (drift["kind"] == "continuous")]

    figure = statistics_figure(usage, "usage")

    upper = [trace for trace in figure.data if trace.name == UPPER_THRESHOLD_NAME]
    assert upper and list(upper[0].text) == ["", "▲ alert"]
    assert not [trace for trace in figure.data if trace.name == LOWER_THRESHOLD_NAME]


def test_the_timeline_marks_the_reference_and_the_start_of_the_stream(
    result: MonitoringResult,
) -> None:
    figure = performance_figure(metric_frame(result.metric_rows()), TIMELINE)
    plain = performance_figure(metric_frame(result.metric_rows()))

    rectangles = [shape for shape in figure.layout.shapes if shape.type == "rect"]
    lines = [shape for shape in figure.layout.shapes if shape.type == "line"]
    assert len(rectangles) == len(lines) == 3  # one of each per metric panel
    assert pd.Timestamp(rectangles[0].x0) == pd.Timestamp("2024-01-31")
    assert pd.Timestamp(rectangles[0].x1) == pd.Timestamp("2024-02-10")  # the last day included
    assert pd.Timestamp(lines[0].x0) == pd.Timestamp("2024-03-04")
    labels = {annotation.text for annotation in figure.layout.annotations}
    assert {REFERENCE_LABEL, f"{STREAM_LABEL} ▶"} <= labels
    assert not plain.layout.shapes


def test_realized_alerts_are_marked(result: MonitoringResult) -> None:
    rows = metric_frame(result.metric_rows())
    rows["realized_alert"] = [start == rows["chunk_start"].iloc[0] for start in rows["chunk_start"]]

    figure = performance_figure(rows)

    marked = [trace for trace in figure.data if trace.name == "realized in alert"]
    assert sum(len(trace.x) for trace in marked) == len(METRICS)


def test_drift_runs_draw_one_bar_per_run_most_severe_first(drift: pd.DataFrame) -> None:
    ranked = rank_statistics(drift, ("continuous", "categorical"))

    figure = drift_runs_figure(ranked)

    (bars,) = figure.data
    drifting = [item for item in ranked if item.alerts]
    assert drifting[0].feature == "usage"
    assert len(bars.y) == sum(len(item.runs) for item in drifting)
    assert bars.y[0].startswith("usage")
    assert "(2 chunks)" in bars.hovertext[0]  # the two shifted days are one run


def test_data_quality_is_drawn_for_the_features_with_an_issue_only(drift: pd.DataFrame) -> None:
    quality = drift[drift["kind"].isin(("missing_values", "unseen_values"))]
    ranked = rank_statistics(quality, ("missing_values", "unseen_values"), alerting_only=True)

    figure = quality_figure(quality, ranked)
    clean = quality_figure(quality.assign(alert=False), ())

    assert clean is None
    assert figure is not None
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["spend: missing values"]


def test_pictures_put_the_latest_verdict_first(result: MonitoringResult) -> None:
    pictures = build_pictures(
        metric_frame(result.metric_rows()),
        metric_frame([*result.drift_rows(), *result.quality_rows()]),
        feature_panels=3,
    )

    assert next(iter(pictures.figures)) == "verdict"
    assert pictures.latest is not None
    assert pictures.latest.verdict == result.verdicts()[-1].verdict
    assert pictures.latest.reasons == result.verdicts()[-1].reasons
    assert sum(pictures.latest.counts.values()) == len(result.chunks)
    assert "drifting_features" in pictures.figures
    assert pictures.drifting[0].feature == "usage"


@pytest.mark.slow  # kaleido starts a headless Chromium
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
def test_write_report(result: MonitoringResult, tmp_path: Path) -> None:
    written = write_report(result, tmp_path / "report", TIMELINE)

    assert all(path.is_file() for path in written.values())
    assert set(written) == {
        "metrics_csv",
        "drift_csv",
        "plotly_js",
        "index_html",
        *(
            f"{name}_{kind}"
            for name in (
                "verdict",
                "performance",
                "univariate_drift",
                "drifting_features",
                "multivariate_drift",
                "data_quality",
            )
            for kind in ("png", "html")
        ),
    }
    assert written["performance_png"].read_bytes().startswith(PNG_SIGNATURE)
    html = written["performance_html"].read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in html
    assert len(html) < 100_000  # plotly.js is not embedded
    index = written["index_html"].read_text(encoding="utf-8")
    assert index.index('id="verdict"') < index.index('id="figure-verdict"')
    assert index.index('id="figure-verdict"') < index.index('id="figure-performance"')
    assert f"latest chunk {result.chunks[-1].key}" in index
    assert "(2 chunks)" in index  # the drift table lists runs, not chunks
    assert f"The stream begins on {TIMELINE.stream_start}" in index
    metrics = pd.read_csv(written["metrics_csv"])
    assert len(metrics) == len(METRICS) * len(result.chunks)
    assert metrics["realized"].isna().sum() == len(METRICS) * 2
    drift = pd.read_csv(written["drift_csv"])
    assert set(drift["kind"]) == {
        "continuous",
        "categorical",
        "multivariate",
        "missing_values",
        "unseen_values",
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
def test_a_report_without_quality_issues_has_no_quality_plot(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping, tmp_path: Path
) -> None:
    clean = run_monitoring(reference, analysis, mapping, Chunking(period="D"))

    written = write_report(clean, tmp_path / "report")

    assert "data_quality_png" not in written
    index = written["index_html"].read_text(encoding="utf-8")
    assert "No missing or unseen values beyond their thresholds." in index
