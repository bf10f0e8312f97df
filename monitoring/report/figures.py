"""The monitoring figures, drawn the same way for the report files and for the dashboard.

One builder per picture. Every builder is a pure function of frames shaped like the
monitoring tables: metric rows (`MonitoringResult.metric_rows`, or
`db.monitoring.stored_results`) and statistic rows (`MonitoringResult.drift_rows` /
`quality_rows`, or `db.monitoring.stored_drift`); the two sources share their column names.

Time-based pictures take a `Timeline`: the reference period is shaded and the first streamed
day marked with a vertical line, so a reader sees where the thresholds come from and where
history ends and the stream begins. Thresholds are drawn with their direction (``▼ alert``
below a lower one, ``▲ alert`` above an upper one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.compute.result import METRICS, VERDICTS
from monitoring.report.histograms import FeatureHistogram
from monitoring.report.severity import RankedStatistic
from monitoring.report.timeline import NO_TIMELINE, Timeline

METRIC_TITLES = {"roc_auc": "ROC AUC", "f1": "F1", "accuracy": "Accuracy"}
PERFORMANCE_TITLE = "Estimated vs realized performance per chunk"
VERDICT_TITLE = "Health verdict per chunk"
DRIFT_RUNS_TITLE = "Univariate drift: runs of chunks in alert, most severe feature first"
MULTIVARIATE_TITLE = "Multivariate drift (PCA reconstruction error)"
QUALITY_TITLE = "Data quality: features with an issue"
ESTIMATE_COLOR = "#1f77b4"
BAND_COLOR = "rgba(31, 119, 180, 0.15)"
REALIZED_COLOR = "#2ca02c"
THRESHOLD_COLOR = "#d62728"
ALERT_COLOR = "#d62728"
MISMATCH_COLOR = "#ff7f0e"
REFERENCE_COLOR = "rgba(120, 120, 120, 0.18)"
STREAM_COLOR = "#6a3d9a"
CHUNK_COLOR = "#ff7f0e"
VERDICT_COLORS = {
    "healthy": "#2ca02c",
    "data_drift": "#ff7f0e",
    "performance_degraded": "#d62728",
    "data_quality": "#9467bd",
}
BAND_NAME = "confidence band (±3 sampling errors)"
LOWER_THRESHOLD_NAME = "threshold: alert below"
UPPER_THRESHOLD_NAME = "threshold: alert above"
REFERENCE_LABEL = "reference"
STREAM_LABEL = "stream begins"
# NannyML's confidence bands are ±3 sampling errors.
SAMPLING_ERROR_RANGE = 3
DRIFT_KINDS = ("continuous", "categorical")
QUALITY_KINDS = ("missing_values", "unseen_values")
_ROW_HEIGHT = 280
_GRID_COLUMNS = 3
# A run of size chunks may start and end on one timestamp: its bar still shows.
_MIN_BAR = pd.Timedelta(hours=12)


def metric_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Metric or statistic rows (records of a `MonitoringResult`) as a frame with the stored
    frames' types: missing figures NaN, chunk starts as timestamps."""
    frame = pd.DataFrame(list(rows))
    numbers = ("estimate", "lower_bound", "upper_bound", "sampling_error", "realized", "value")
    for name in (*numbers, "lower_threshold", "upper_threshold"):
        if name in frame.columns:
            frame[name] = pd.to_numeric(frame[name]).astype(float)
    return frame


def verdict_figure(
    verdicts: pd.DataFrame, timeline: Timeline = NO_TIMELINE, width: int | None = None
) -> go.Figure:
    """Each chunk's health verdict as a coloured square, the reasons on hover.

    Args:
        verdicts: `monitoring.report.severity.chunk_verdicts`.
        timeline: The reference period and the stream's start, marked.
        width: Pixels; None to fill the page.
    """
    figure = make_subplots(rows=1, cols=1)
    for verdict in VERDICTS:
        rows = verdicts[verdicts["verdict"] == verdict]
        if rows.empty:
            continue
        hover = [
            f"{key}: {verdict.replace('_', ' ')}<br>" + ("<br>".join(reasons) or "no alert")
            for key, reasons in zip(rows["chunk_key"], rows["reasons"], strict=True)
        ]
        figure.add_trace(
            go.Scatter(
                x=list(rows["chunk_start"]),
                y=[0] * len(rows),
                mode="markers",
                marker={"symbol": "square", "size": 16, "color": VERDICT_COLORS[verdict]},
                name=verdict.replace("_", " "),
                text=hover,
                hoverinfo="text",
            )
        )
    _add_timeline(figure, timeline)
    figure.update_yaxes(visible=False, range=[-1, 1])
    figure.update_layout(
        title=VERDICT_TITLE,
        width=width,
        height=200,
        margin={"t": 60, "l": 40, "r": 20, "b": 40},
        legend={"orientation": "h", "y": -0.35},
    )
    return figure


def performance_figure(
    results: pd.DataFrame, timeline: Timeline = NO_TIMELINE, width: int | None = None
) -> go.Figure:
    """Estimated vs realized performance per chunk, one panel per metric.

    Each panel shows CBPE's estimate with its confidence band, the realized value where labels
    are known, the thresholds with their direction, the estimates and the realized values in
    alert and the chunks whose estimate and realized value disagree beyond sampling error.

    Args:
        results: Metric rows, by metric then chunk.
        timeline: The reference period and the stream's start, marked.
        width: Pixels; None to fill the page.
    """
    metrics = [m for m in METRICS if (results["metric"] == m).any()] if len(results) else []
    figure = make_subplots(
        rows=max(len(metrics), 1),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics] or [""],
        vertical_spacing=0.08,
    )
    in_legend: set[str] = set()
    for row, metric in enumerate(metrics, start=1):
        rows = results[results["metric"] == metric]
        _add_metric(figure, rows, row, in_legend)
    _add_timeline(figure, timeline)
    figure.update_annotations(font_size=13)
    figure.update_layout(
        title=PERFORMANCE_TITLE,
        width=width,
        height=max(_ROW_HEIGHT * len(metrics), 400),
        hovermode="x unified",
        margin={"t": 70, "l": 60, "r": 20, "b": 40},
    )
    return figure


def statistics_figure(
    statistics: pd.DataFrame,
    title: str,
    timeline: Timeline = NO_TIMELINE,
    width: int | None = None,
    order: Sequence[tuple[str, str, str]] | None = None,
) -> go.Figure:
    """One panel per statistic (kind, feature, method): its value per chunk, its confidence
    band where it has a sampling error, the thresholds with their direction and the chunks in
    alert.

    Args:
        statistics: Statistic rows, each statistic's chunks in order.
        title: The figure's title.
        timeline: The reference period and the stream's start, marked.
        width: Pixels; None to fill the page.
        order: The statistics' (kind, feature, method) in panel order; default as they come.
    """
    groups = dict(list(statistics.groupby(["kind", "feature", "method"], sort=False)))
    keys = [key for key in order if key in groups] if order is not None else list(groups)
    panels = max(len(keys), 1)
    columns = min(_GRID_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_statistic_title(*key) for key in keys] or ["(none)"],
        vertical_spacing=min(0.12, 0.6 / rows),
    )
    in_legend: set[str] = set()
    for index, key in enumerate(keys):
        row, column = index // columns + 1, index % columns + 1
        series = groups[key].sort_values(["chunk_start", "chunk_end"])
        _add_statistic(figure, series, key[2], row, column, in_legend)
    _add_timeline(figure, timeline)
    figure.update_annotations(font_size=12)
    figure.update_layout(title=title, width=width, height=max(_ROW_HEIGHT * rows, 400))
    return figure


def multivariate_figure(
    drift: pd.DataFrame, timeline: Timeline = NO_TIMELINE, width: int | None = None
) -> go.Figure:
    """Multivariate drift (PCA reconstruction error) per chunk, thresholds and alerts."""
    rows = drift[drift["kind"] == "multivariate"]
    figure = statistics_figure(rows, MULTIVARIATE_TITLE, timeline, width)
    figure.update_layout(height=400 if len(rows) else 320)
    return figure


def feature_drift_figure(
    drift: pd.DataFrame,
    ranked: Sequence[RankedStatistic],
    timeline: Timeline = NO_TIMELINE,
    width: int | None = None,
) -> go.Figure:
    """The drift statistic of each feature of ``ranked``, in that order (most severe first):
    the report's panels of the drifting features and the dashboard's drill-down of one."""
    order = [(item.kind, item.feature, item.method) for item in ranked]
    title = "Univariate drift of " + (
        ranked[0].feature if len(ranked) == 1 else "the drifting features, most severe first"
    )
    return statistics_figure(drift, title, timeline, width, order)


def quality_figure(
    statistics: pd.DataFrame,
    ranked: Sequence[RankedStatistic],
    timeline: Timeline = NO_TIMELINE,
    width: int | None = None,
) -> go.Figure | None:
    """The data-quality rates of the features with an issue (``ranked``, most severe first);
    None when no feature has one, so no empty panels are drawn."""
    issues = [(item.kind, item.feature, item.method) for item in ranked if item.alerts]
    if not issues:
        return None
    return statistics_figure(statistics, QUALITY_TITLE, timeline, width, issues)


def drift_runs_figure(
    ranked: Sequence[RankedStatistic], timeline: Timeline = NO_TIMELINE, width: int | None = None
) -> go.Figure:
    """The features in alert, most severe at the top, each alert drawn as one bar per run of
    consecutive chunks (hover: ``from–to (n chunks)``) rather than one cell per chunk.

    Args:
        ranked: `monitoring.report.severity.rank_statistics` of the drift kinds, most severe
            first; the ones without alerts are left out.
        timeline: The reference period and the stream's start, marked.
        width: Pixels; None to fill the page.
    """
    alerting = [item for item in ranked if item.runs]
    figure = make_subplots(rows=1, cols=1)
    bases, lengths, names, labels, texts = [], [], [], [], []
    for item in alerting:
        name = f"{item.feature} ({item.alerts}/{item.chunks})"
        for run in item.runs:
            length = max(run.end - run.start, _MIN_BAR)
            bases.append(run.start.isoformat())
            lengths.append(length.total_seconds() * 1000)
            names.append(name)
            labels.append(f"{item.feature} ({item.method.replace('_', ' ')})<br>{run.label}")
            texts.append(f"{run.chunks}")
    if alerting:
        figure.add_trace(
            go.Bar(
                base=bases,
                x=lengths,
                y=names,
                orientation="h",
                marker={"color": ALERT_COLOR},
                text=texts,
                textposition="inside",
                hovertext=labels,
                hoverinfo="text",
                name="run of chunks in alert",
                showlegend=False,
            )
        )
        figure.update_yaxes(
            categoryorder="array",
            categoryarray=list(dict.fromkeys(names)),
            autorange="reversed",
        )
    else:
        figure.add_annotation(
            text="No feature drifted beyond its thresholds",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
        )
    figure.update_xaxes(type="date")
    _add_timeline(figure, timeline)
    figure.update_layout(
        title=DRIFT_RUNS_TITLE,
        width=width,
        height=max(28 * len(alerting) + 140, 240),
        margin={"t": 60, "l": 260, "r": 20, "b": 40},
        bargap=0.3,
    )
    return figure


def histogram_figure(histogram: FeatureHistogram, width: int | None = None) -> go.Figure:
    """A feature's distribution in the reference against one chunk, as shares of their rows."""
    figure = make_subplots(rows=1, cols=1)
    sides = (
        ("reference", histogram.reference_share, histogram.reference_rows, REFERENCE_COLOR),
        (f"chunk {histogram.chunk}", histogram.chunk_share, histogram.chunk_rows, CHUNK_COLOR),
    )
    for name, shares, rows, color in sides:
        bar = go.Bar(
            y=list(shares),
            name=f"{name} ({rows:,} rows)",
            marker={"color": color if name != "reference" else ESTIMATE_COLOR},
            opacity=0.6,
            hovertext=[
                f"{label}: {share:.1%}"
                for label, share in zip(histogram.labels, shares, strict=True)
            ],
            hoverinfo="text+name",
        )
        if histogram.categorical:
            bar.update(x=list(histogram.labels))
        else:
            bar.update(x=list(histogram.centers), width=list(histogram.widths))
        figure.add_trace(bar)
    missing = ""
    if histogram.reference_missing or histogram.chunk_missing:
        missing = (
            f"; missing: {histogram.reference_missing:,} reference, "
            f"{histogram.chunk_missing:,} chunk rows"
        )
    sample = " (a bounded sample of the rows)" if histogram.truncated else ""
    figure.update_layout(
        title=f"{histogram.feature}: reference vs chunk {histogram.chunk}{sample}{missing}",
        barmode="overlay",
        width=width,
        height=360,
        yaxis={"tickformat": ".0%", "title": "share of rows"},
        margin={"t": 60, "l": 60, "r": 20, "b": 60},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _add_timeline(figure: go.Figure, timeline: Timeline) -> None:
    # Shapes over every panel; one label each, on the first panel's axis.
    grid = {"row": "all", "col": "all"}
    if timeline.reference_start is not None and timeline.reference_end is not None:
        start = pd.Timestamp(timeline.reference_start)
        end = pd.Timestamp(timeline.reference_end + timedelta(days=1))
        figure.add_vrect(
            x0=start, x1=end, fillcolor=REFERENCE_COLOR, line_width=0, layer="below", **grid
        )
        figure.add_annotation(
            x=start, y=1, xref="x", yref="paper", text=REFERENCE_LABEL, showarrow=False,
            xanchor="left", yanchor="bottom", font={"size": 11, "color": "#555"},
        )  # fmt: skip
    if timeline.stream_start is not None:
        start = pd.Timestamp(timeline.stream_start)
        figure.add_vline(x=start, line={"color": STREAM_COLOR, "dash": "dot", "width": 2}, **grid)
        figure.add_annotation(
            x=start, y=1, xref="x", yref="paper", text=f"{STREAM_LABEL} ▶", showarrow=False,
            xanchor="left", yanchor="bottom", font={"size": 11, "color": STREAM_COLOR},
        )  # fmt: skip


def _add_metric(figure: go.Figure, rows: pd.DataFrame, row: int, in_legend: set[str]) -> None:
    starts = list(rows["chunk_start"])
    position = {"row": row, "col": 1}
    _add_band(figure, starts, rows["lower_bound"], rows["upper_bound"], row, 1, in_legend)
    estimate = go.Scatter(
        x=starts, y=gaps(rows["estimate"]), mode="lines+markers", line={"color": ESTIMATE_COLOR}
    )
    figure.add_trace(_styled(estimate, "estimated (CBPE)", in_legend), **position)
    realized = go.Scatter(
        x=starts,
        y=gaps(rows["realized"]),
        mode="lines+markers",
        line={"color": REALIZED_COLOR, "dash": "dot"},
    )
    figure.add_trace(_styled(realized, "realized", in_legend), **position)
    _add_thresholds(figure, starts, rows, row, 1, in_legend)
    alerts = _markers(starts, rows["estimate"], rows["alert"], ALERT_COLOR, "x")
    figure.add_trace(_styled(alerts, "estimate in alert", in_legend), **position)
    realized_flags = [bool(flag) for flag in rows["realized_alert"]]
    realized_alerts = _markers(starts, rows["realized"], realized_flags, ALERT_COLOR, "circle-open")
    figure.add_trace(_styled(realized_alerts, "realized in alert", in_legend), **position)
    mismatch = [bool(flag) for flag in rows["estimate_realized_alert"]]
    mismatches = _markers(starts, rows["realized"], mismatch, MISMATCH_COLOR, "diamond")
    figure.add_trace(_styled(mismatches, "estimate ≠ realized", in_legend), **position)


def _add_statistic(
    figure: go.Figure,
    series: pd.DataFrame,
    method: str,
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    starts = list(series["chunk_start"])
    position = {"row": row, "col": column}
    errors = pd.to_numeric(series["sampling_error"]).astype(float)
    if errors.notna().any():
        margin = SAMPLING_ERROR_RANGE * errors
        values = series["value"].astype(float)
        _add_band(figure, starts, values - margin, values + margin, row, column, in_legend)
    line = go.Scatter(
        x=starts, y=gaps(series["value"]), mode="lines+markers", line={"color": ESTIMATE_COLOR}
    )
    figure.add_trace(_styled(line, method, in_legend), **position)
    _add_thresholds(figure, starts, series, row, column, in_legend)
    alerts = _markers(starts, series["value"], series["alert"], ALERT_COLOR, "x")
    figure.add_trace(_styled(alerts, "alert", in_legend), **position)


def _add_band(
    figure: go.Figure,
    starts: list[Any],
    lower: Sequence[float],
    upper: Sequence[float],
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    upper_edge = go.Scatter(x=starts, y=gaps(upper), mode="lines", line={"width": 0})
    figure.add_trace(_styled(upper_edge, BAND_NAME, in_legend, hidden=True), row=row, col=column)
    lower_edge = go.Scatter(
        x=starts,
        y=gaps(lower),
        mode="lines",
        line={"width": 0},
        fill="tonexty",
        fillcolor=BAND_COLOR,
    )
    figure.add_trace(_styled(lower_edge, BAND_NAME, in_legend), row=row, col=column)


def _add_thresholds(
    figure: go.Figure,
    starts: list[Any],
    rows: pd.DataFrame,
    row: int,
    column: int,
    in_legend: set[str],
) -> None:
    if not starts:
        return
    directions = (
        ("lower_threshold", LOWER_THRESHOLD_NAME, "▼ alert", "bottom left", "dash"),
        ("upper_threshold", UPPER_THRESHOLD_NAME, "▲ alert", "top left", "dashdot"),
    )
    for column_name, name, label, position, dash in directions:
        values = rows[column_name].dropna()
        if values.empty:
            continue
        value = float(values.iloc[-1])
        line = go.Scatter(
            x=[starts[0], starts[-1]],
            y=[value, value],
            mode="lines+text",
            text=["", label],
            textposition=position,
            textfont={"color": THRESHOLD_COLOR, "size": 10},
            line={"color": THRESHOLD_COLOR, "dash": dash, "width": 1},
            hovertext=f"{name} {value:.4g}",
            hoverinfo="text",
        )
        figure.add_trace(_styled(line, name, in_legend), row=row, col=column)


def _markers(
    starts: list[Any],
    values: Sequence[float],
    flags: Sequence[bool],
    color: str,
    symbol: str,
) -> go.Scatter:
    points = [
        (start, float(value))
        for start, value, flag in zip(starts, values, flags, strict=True)
        if flag and not _missing(value)
    ]
    return go.Scatter(
        x=[start for start, _ in points],
        y=[value for _, value in points],
        mode="markers",
        marker={"color": color, "symbol": symbol, "size": 11, "line": {"width": 2}},
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


def _statistic_title(kind: str, feature: str, method: str) -> str:
    if kind in QUALITY_KINDS:
        return f"{feature}: {kind.replace('_', ' ')}"
    return f"{feature} ({method})"


def gaps(values: Sequence[Any]) -> list[float | None]:
    """Numbers for plotly, with None (a gap in the line) where a figure is missing."""
    return [None if _missing(value) else float(value) for value in values]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
