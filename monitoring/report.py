"""The monitoring report: a `MonitoringResult` as CSV tables and plots in a folder.

Files written:

- ``metrics.csv``: one row per metric and chunk (`MonitoringResult.metric_rows`);
- ``drift.csv``: one row per feature and chunk: univariate and multivariate drift, then data
  quality (`MonitoringResult.drift_rows` and `quality_rows`);
- ``performance``, ``univariate_drift``, ``multivariate_drift``, ``data_quality``: each as a
  static ``.png`` (kaleido) and an interactive ``.html``;
- ``plotly.min.js``: the HTML pages load plotly.js from this single copy next to them
  (``include_plotlyjs="directory"``). They then work offline and behind firewalls, unlike
  with the CDN, and four pages do not embed 3.5 MB each. Copy the folder as a whole.

The figure builders are pure functions of the result; `write_report` does the writing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.result import MetricSeries, MonitoringResult, StatisticSeries

METRICS_CSV = "metrics.csv"
DRIFT_CSV = "drift.csv"
PLOTLY_JS = "plotly.min.js"
PERFORMANCE = "performance"
UNIVARIATE_DRIFT = "univariate_drift"
MULTIVARIATE_DRIFT = "multivariate_drift"
DATA_QUALITY = "data_quality"

METRIC_TITLES = {"roc_auc": "ROC AUC", "f1": "F1", "accuracy": "Accuracy"}
ESTIMATE_COLOR = "#1f77b4"
BAND_COLOR = "rgba(31, 119, 180, 0.15)"
REALIZED_COLOR = "#2ca02c"
THRESHOLD_COLOR = "#d62728"
ALERT_COLOR = "#d62728"
_MISMATCH = "#ff7f0e"
_WIDTH = 1200
_ROW_HEIGHT = 280
_GRID_COLUMNS = 3
# NannyML's confidence bands are ±3 sampling errors.
SAMPLING_ERROR_RANGE = 3


def write_report(result: MonitoringResult, folder: Path) -> dict[str, Path]:
    """Write the CSV tables, PNG and HTML plots of ``result`` into ``folder`` (created).

    Returns:
        Every file written, by name without extension for the plots (``performance.png`` is
        under ``performance_png``), e.g. ``{"metrics_csv": .../metrics.csv, ...}``.

    Raises:
        OSError: The folder or a file cannot be written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["metrics_csv"] = folder / METRICS_CSV
    pd.DataFrame(result.metric_rows()).to_csv(written["metrics_csv"], index=False)
    written["drift_csv"] = folder / DRIFT_CSV
    drift = [*result.drift_rows(), *result.quality_rows()]
    pd.DataFrame(drift).to_csv(written["drift_csv"], index=False)
    figures = {
        PERFORMANCE: performance_figure(result),
        UNIVARIATE_DRIFT: statistics_figure(result, result.univariate, "Univariate drift"),
        MULTIVARIATE_DRIFT: statistics_figure(
            result, [result.multivariate], "Multivariate drift (PCA reconstruction error)"
        ),
        DATA_QUALITY: statistics_figure(
            result, [*result.missing_values, *result.unseen_values], "Data quality"
        ),
    }
    for name, figure in figures.items():
        png = folder / f"{name}.png"
        figure.write_image(png, format="png")
        html = folder / f"{name}.html"
        figure.write_html(html, include_plotlyjs="directory", full_html=True)
        written[f"{name}_png"] = png
        written[f"{name}_html"] = html
    written["plotly_js"] = folder / PLOTLY_JS
    return written


def performance_figure(result: MonitoringResult) -> go.Figure:
    """Estimated vs realized performance per chunk, one panel per metric.

    Each panel shows CBPE's estimate with its confidence band, the realized value where labels
    are known, the alert thresholds, the estimates in alert and the chunks whose estimate and
    realized value disagree beyond sampling error.
    """
    figure = make_subplots(
        rows=len(result.metrics),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[METRIC_TITLES.get(m.name, m.name) for m in result.metrics],
        vertical_spacing=0.08,
    )
    starts = [chunk.start for chunk in result.chunks]
    in_legend: set[str] = set()
    for row, series in enumerate(result.metrics, start=1):
        _add_metric(figure, series, starts, row, in_legend)
    figure.update_annotations(font_size=13)
    figure.update_layout(
        title="Estimated (CBPE) vs realized performance per chunk",
        width=_WIDTH,
        height=max(_ROW_HEIGHT * len(result.metrics), 400),
        hovermode="x unified",
    )
    return figure


def statistics_figure(
    result: MonitoringResult, statistics: Sequence[StatisticSeries], title: str
) -> go.Figure:
    """One panel per statistic: its value per chunk, thresholds and the chunks in alert."""
    panels = max(len(statistics), 1)
    columns = min(_GRID_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_statistic_title(series) for series in statistics] or ["(none)"],
        vertical_spacing=min(0.12, 0.6 / rows),
    )
    starts = [chunk.start for chunk in result.chunks]
    in_legend: set[str] = set()
    for index, series in enumerate(statistics):
        row, column = index // columns + 1, index % columns + 1
        _add_statistic(figure, series, starts, row, column, in_legend)
    figure.update_annotations(font_size=12)
    figure.update_layout(title=title, width=_WIDTH, height=max(_ROW_HEIGHT * rows, 400))
    return figure


def _add_metric(
    figure: go.Figure,
    series: MetricSeries,
    starts: list[pd.Timestamp],
    row: int,
    in_legend: set[str],
) -> None:
    position = {"row": row, "col": 1}
    _add_band(figure, starts, series.lower, series.upper, row, 1, in_legend)
    estimate = go.Scatter(
        x=starts, y=_gaps(series.estimate), mode="lines+markers", line={"color": ESTIMATE_COLOR}
    )
    figure.add_trace(_styled(estimate, "estimated (CBPE)", in_legend), **position)
    realized = go.Scatter(
        x=starts,
        y=_gaps(series.realized),
        mode="lines+markers",
        line={"color": REALIZED_COLOR, "dash": "dot"},
    )
    figure.add_trace(_styled(realized, "realized", in_legend), **position)
    _add_thresholds(figure, starts, series, row, 1, in_legend)
    alerts = _markers(starts, series.estimate, series.alert, ALERT_COLOR, "x")
    figure.add_trace(_styled(alerts, "estimate in alert", in_legend), **position)
    mismatch = [bool(flag) for flag in series.estimate_realized_alert]
    mismatches = _markers(starts, series.realized, mismatch, _MISMATCH, "diamond")
    figure.add_trace(_styled(mismatches, "estimate ≠ realized", in_legend), **position)


def _add_statistic(
    figure: go.Figure,
    series: StatisticSeries,
    starts: list[pd.Timestamp],
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    position = {"row": row, "col": column}
    if series.sampling_error is not None:
        margins = [SAMPLING_ERROR_RANGE * error for error in series.sampling_error]
        lower = [value - margin for value, margin in zip(series.values, margins, strict=True)]
        upper = [value + margin for value, margin in zip(series.values, margins, strict=True)]
        _add_band(figure, starts, lower, upper, row, column, in_legend)
    values = go.Scatter(
        x=starts, y=_gaps(series.values), mode="lines+markers", line={"color": ESTIMATE_COLOR}
    )
    figure.add_trace(_styled(values, series.method, in_legend), **position)
    _add_thresholds(figure, starts, series, row, column, in_legend)
    alerts = _markers(starts, series.values, series.alert, ALERT_COLOR, "x")
    figure.add_trace(_styled(alerts, "alert", in_legend), **position)


def _add_band(
    figure: go.Figure,
    starts: list[pd.Timestamp],
    lower: Sequence[float],
    upper: Sequence[float],
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    name = "confidence band (±3 sampling errors)"
    upper_edge = go.Scatter(x=starts, y=_gaps(upper), mode="lines", line={"width": 0})
    figure.add_trace(_styled(upper_edge, name, in_legend, hidden=True), row=row, col=column)
    lower_edge = go.Scatter(
        x=starts,
        y=_gaps(lower),
        mode="lines",
        line={"width": 0},
        fill="tonexty",
        fillcolor=BAND_COLOR,
    )
    figure.add_trace(_styled(lower_edge, name, in_legend), row=row, col=column)


def _add_thresholds(
    figure: go.Figure,
    starts: list[pd.Timestamp],
    series: MetricSeries | StatisticSeries,
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    for value in (series.lower_threshold, series.upper_threshold):
        if value is None or not starts:
            continue
        line = go.Scatter(
            x=[starts[0], starts[-1]],
            y=[value, value],
            mode="lines",
            line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1},
        )
        figure.add_trace(_styled(line, "threshold", in_legend), row=row, col=column)


def _markers(
    starts: list[pd.Timestamp],
    values: Sequence[float],
    flags: Sequence[bool],
    color: str,
    symbol: str,
) -> go.Scatter:
    points = [
        (start, value)
        for start, value, flag in zip(starts, values, flags, strict=True)
        if flag and not math.isnan(value)
    ]
    return go.Scatter(
        x=[start for start, _ in points],
        y=[value for _, value in points],
        mode="markers",
        marker={"color": color, "symbol": symbol, "size": 11},
    )


def _styled(trace: go.Scatter, name: str, in_legend: set[str], hidden: bool = False) -> go.Scatter:
    # One legend entry per name, on the first trace that draws something, so an entry is not
    # lost when the first panel happens to have no alert.
    has_points = trace.x is not None and len(trace.x) > 0
    show = not hidden and has_points and name not in in_legend
    if show:
        in_legend.add(name)
    trace.update(name=name, legendgroup=name, showlegend=show)
    if hidden:
        trace.update(hoverinfo="skip")
    return trace


def _statistic_title(series: StatisticSeries) -> str:
    if series.kind in ("missing_values", "unseen_values"):
        return f"{series.subject}: {series.kind.replace('_', ' ')}"
    return f"{series.subject} ({series.method})"


def _gaps(values: Sequence[float]) -> list[float | None]:
    return [None if math.isnan(value) else value for value in values]
