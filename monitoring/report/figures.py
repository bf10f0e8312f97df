"""The monitoring figures, drawn the same way for the report files and for the dashboard.

Every builder is a pure function of a frame shaped like the monitoring tables: metric rows
(`MonitoringResult.metric_rows`, or `db.monitoring.stored_results`) and statistic rows
(`MonitoringResult.drift_rows` / `quality_rows`, or `db.monitoring.stored_drift`). The two
sources share their column names, so one builder serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitoring.compute.result import METRICS

METRIC_TITLES = {"roc_auc": "ROC AUC", "f1": "F1", "accuracy": "Accuracy"}
PERFORMANCE_TITLE = "Estimated vs realized performance per chunk"
ESTIMATE_COLOR = "#1f77b4"
BAND_COLOR = "rgba(31, 119, 180, 0.15)"
REALIZED_COLOR = "#2ca02c"
THRESHOLD_COLOR = "#d62728"
ALERT_COLOR = "#d62728"
MISMATCH_COLOR = "#ff7f0e"
BAND_NAME = "confidence band (±3 sampling errors)"
# NannyML's confidence bands are ±3 sampling errors.
SAMPLING_ERROR_RANGE = 3
DRIFT_KINDS = ("continuous", "categorical")
QUALITY_KINDS = ("missing_values", "unseen_values")
_ROW_HEIGHT = 280
_GRID_COLUMNS = 3


def metric_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Metric or statistic rows (records of a `MonitoringResult`) as a frame with the stored
    frames' types: missing figures NaN, chunk starts as timestamps."""
    frame = pd.DataFrame(list(rows))
    numbers = ("estimate", "lower_bound", "upper_bound", "sampling_error", "realized", "value")
    for name in (*numbers, "lower_threshold", "upper_threshold"):
        if name in frame.columns:
            frame[name] = pd.to_numeric(frame[name]).astype(float)
    return frame


def performance_figure(results: pd.DataFrame, width: int | None = None) -> go.Figure:
    """Estimated vs realized performance per chunk, one panel per metric.

    Each panel shows CBPE's estimate with its confidence band, the realized value where labels
    are known, the alert thresholds, the estimates in alert and the chunks whose estimate and
    realized value disagree beyond sampling error.

    Args:
        results: Metric rows, by metric then chunk.
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
    figure.update_annotations(font_size=13)
    figure.update_layout(
        title=PERFORMANCE_TITLE,
        width=width,
        height=max(_ROW_HEIGHT * len(metrics), 400),
        hovermode="x unified",
        margin={"t": 70, "l": 60, "r": 20, "b": 40},
    )
    return figure


def statistics_figure(statistics: pd.DataFrame, title: str, width: int | None = None) -> go.Figure:
    """One panel per statistic (kind, feature, method): its value per chunk, its confidence
    band where it has a sampling error, the thresholds and the chunks in alert.

    Args:
        statistics: Statistic rows, each statistic's chunks in order.
        title: The figure's title.
        width: Pixels; None to fill the page.
    """
    groups = list(statistics.groupby(["kind", "feature", "method"], sort=False))
    panels = max(len(groups), 1)
    columns = min(_GRID_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_statistic_title(*key) for key, _ in groups] or ["(none)"],
        vertical_spacing=min(0.12, 0.6 / rows),
    )
    in_legend: set[str] = set()
    for index, (key, series) in enumerate(groups):
        row, column = index // columns + 1, index % columns + 1
        _add_statistic(figure, series, key[2], row, column, in_legend)
    figure.update_annotations(font_size=12)
    figure.update_layout(title=title, width=width, height=max(_ROW_HEIGHT * rows, 400))
    return figure


def multivariate_figure(drift: pd.DataFrame, width: int | None = None) -> go.Figure:
    """Multivariate drift (PCA reconstruction error) per chunk, thresholds and alerts."""
    rows = drift[drift["kind"] == "multivariate"]
    figure = statistics_figure(rows, "Multivariate drift (PCA reconstruction error)", width)
    figure.update_layout(height=400 if len(rows) else 320)
    return figure


def univariate_figure(drift: pd.DataFrame) -> go.Figure:
    """Univariate drift alerts as a heat map: one row per feature, one column per chunk,
    red where the feature drifted; hovering shows the method and its value."""
    rows = drift[drift["kind"].isin(DRIFT_KINDS)]
    alerts = rows.pivot_table(
        index="feature", columns="chunk_start", values="alert", aggfunc="max", sort=True
    )
    values = rows.pivot_table(
        index="feature", columns="chunk_start", values="value", aggfunc="first", sort=True
    ).reindex(index=alerts.index, columns=alerts.columns)
    methods = rows.groupby("feature")["method"].first().reindex(alerts.index)
    hover = [
        [
            f"{feature} ({methods[feature]})<br>{column:%Y-%m-%d %H:%M}: "
            + ("n/a" if math.isnan(value) else f"{value:.4g}")
            for column, value in zip(alerts.columns, values.loc[feature], strict=True)
        ]
        for feature in alerts.index
    ]
    figure = go.Figure(
        go.Heatmap(
            x=list(alerts.columns),
            y=list(alerts.index),
            z=alerts.astype(float).to_numpy().tolist(),
            zmin=0,
            zmax=1,
            colorscale=[[0.0, "#e8f1fb"], [1.0, ALERT_COLOR]],
            showscale=False,
            text=hover,
            hoverinfo="text",
            xgap=1,
            ygap=1,
        )
    )
    figure.update_layout(
        title="Univariate drift alerts per feature and chunk (red: drifted)",
        yaxis={"autorange": "reversed"},  # features alphabetically, top to bottom
        height=max(22 * len(alerts.index) + 120, 320),
        margin={"t": 60, "l": 220, "r": 20, "b": 40},
    )
    return figure


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
    for name in ("lower_threshold", "upper_threshold"):
        values = rows[name].dropna()
        if values.empty:
            continue
        value = float(values.iloc[-1])
        line = go.Scatter(
            x=[starts[0], starts[-1]],
            y=[value, value],
            mode="lines",
            line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1},
        )
        figure.add_trace(_styled(line, "threshold", in_legend), row=row, col=column)


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


def _statistic_title(kind: str, feature: str, method: str) -> str:
    if kind in QUALITY_KINDS:
        return f"{feature}: {kind.replace('_', ' ')}"
    return f"{feature} ({method})"


def gaps(values: Sequence[Any]) -> list[float | None]:
    """Numbers for plotly, with None (a gap in the line) where a figure is missing."""
    return [None if _missing(value) else float(value) for value in values]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
