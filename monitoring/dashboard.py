"""The dashboard page: the latest stored figures of a model version, drawn by plotly.js.

The page reads what the latest successful run stored (`monitoring_results`,
`monitoring_drift`, `monitoring_runs`), so it shows the poller's runs as well as the API's and
never starts a run itself. plotly.js is served from the installed plotly package at
``/static/plotly.min.js``: the page works offline and sends nothing to a CDN.

The figure builders are pure functions of the stored frames; the view only reads and renders.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly
import plotly.graph_objects as go
from flask import Blueprint, Response, render_template, request, send_from_directory
from plotly.subplots import make_subplots

from db.connection import connection
from db.errors import DatabaseError
from db.monitoring import (
    FAILED,
    SUCCEEDED,
    StoredRun,
    database_errors,
    latest_run,
    stored_drift,
    stored_results,
)
from monitoring.api import RunQuery, app_settings, monitored_version, parse_query
from monitoring.report import (
    ALERT_COLOR,
    BAND_COLOR,
    ESTIMATE_COLOR,
    METRIC_TITLES,
    REALIZED_COLOR,
    THRESHOLD_COLOR,
)
from monitoring.result import METRICS

log = logging.getLogger(__name__)

dashboard_bp = Blueprint("dashboard", __name__, template_folder="templates")

PLOTLY_JS_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PLOTLY_JS = "plotly.min.js"
# Long enough for a browser to reuse it across reloads, short enough for a plotly upgrade.
_PLOTLY_JS_MAX_AGE = 3600

_DRIFT_KINDS = ("continuous", "categorical")
_QUALITY_KINDS = ("missing_values", "unseen_values")


@dashboard_bp.get("/")
def dashboard() -> tuple[str, int]:
    query = parse_query(RunQuery, request.args)
    try:
        page = _read_page(query.model_version)
    except DatabaseError as exc:
        log.warning("dashboard: cannot read the stored results: %s", exc)
        return render_template("dashboard.html", page=None, unavailable=True), 503
    return render_template("dashboard.html", page=page, unavailable=False), 200


@dashboard_bp.get(f"/static/{PLOTLY_JS}")
def plotly_js() -> Response:
    return send_from_directory(PLOTLY_JS_DIR, PLOTLY_JS, max_age=_PLOTLY_JS_MAX_AGE)


def _read_page(requested: str | None) -> dict[str, Any]:
    settings = app_settings()
    with connection(settings) as conn, database_errors():
        version = requested or monitored_version(conn)
        if version is None:
            return {"version": None, "run": None, "last_failure": None}
        run = latest_run(conn, version, SUCCEEDED)
        last = latest_run(conn, version)
        results = stored_results(conn, version) if run is not None else None
        drift = stored_drift(conn, version) if run is not None else None
    failure = last if last is not None and last.status == FAILED else None
    if run is None or results is None or drift is None or results.empty:
        return {"version": version, "run": None, "last_failure": _run_view(failure)}
    return dashboard_view(version, run, results, drift, failure)


def dashboard_view(
    version: str,
    run: StoredRun,
    results: pd.DataFrame,
    drift: pd.DataFrame,
    failure: StoredRun | None = None,
) -> dict[str, Any]:
    """What the template shows: run facts, latest figures, alert tables and plotly figures.

    Args:
        version: The model version shown.
        run: Its latest successful run.
        results: Its stored metric rows (`db.monitoring.stored_results`).
        drift: Its stored drift and data-quality rows (`db.monitoring.stored_drift`).
        failure: Its latest run, when that one failed after ``run``.
    """
    return {
        "version": version,
        "run": _run_view(run),
        "last_failure": _run_view(failure) if failure and failure.run_id > run.run_id else None,
        "alerts": [
            {"kind": kind.replace("_", " "), "count": count}
            for kind, count in run.alerts.items()
            if kind != "total"
        ],
        "alerts_total": run.alerts.get("total", 0),
        "latest": _latest_metrics(results),
        "drifting": _statistics_in_alert(drift, (*_DRIFT_KINDS, "multivariate")),
        "quality": _statistics_in_alert(drift, _QUALITY_KINDS),
        "figures": {
            "performance": _figure_json(performance_figure(results)),
            "multivariate": _figure_json(multivariate_figure(drift)),
            "univariate": _figure_json(univariate_figure(drift)),
        },
    }


def performance_figure(results: pd.DataFrame) -> go.Figure:
    """Estimated (CBPE) vs realized performance per chunk, one panel per metric, with the
    confidence band, the alert thresholds and the estimates in alert."""
    metrics = [m for m in METRICS if (results["metric"] == m).any()]
    figure = make_subplots(
        rows=max(len(metrics), 1),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics] or [""],
        vertical_spacing=0.08,
    )
    for row, metric in enumerate(metrics, start=1):
        rows = results[results["metric"] == metric]
        x = list(rows["chunk_start"])
        first = row == 1
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_gaps(rows["upper_bound"]),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup="band",
            ),
            row=row,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_gaps(rows["lower_bound"]),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=BAND_COLOR,
                name="confidence band (±3 sampling errors)",
                legendgroup="band",
                showlegend=first,
            ),
            row=row,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_gaps(rows["estimate"]),
                mode="lines+markers",
                line={"color": ESTIMATE_COLOR},
                name="estimated (CBPE)",
                legendgroup="estimate",
                showlegend=first,
            ),
            row=row,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_gaps(rows["realized"]),
                mode="lines+markers",
                line={"color": REALIZED_COLOR, "dash": "dot"},
                name="realized (known labels)",
                legendgroup="realized",
                showlegend=first,
            ),
            row=row,
            col=1,
        )
        _add_thresholds(figure, rows, x, row, 1, first)
        alerts = rows[rows["alert"]]
        figure.add_trace(
            go.Scatter(
                x=list(alerts["chunk_start"]),
                y=_gaps(alerts["estimate"]),
                mode="markers",
                marker={"color": ALERT_COLOR, "symbol": "x", "size": 11},
                name="estimate in alert",
                legendgroup="alert",
                showlegend=first,
            ),
            row=row,
            col=1,
        )
    figure.update_layout(
        title="Estimated vs realized performance per chunk",
        height=max(260 * len(metrics), 320),
        hovermode="x unified",
        margin={"t": 70, "l": 60, "r": 20, "b": 40},
    )
    return figure


def multivariate_figure(drift: pd.DataFrame) -> go.Figure:
    """Multivariate drift (PCA reconstruction error) per chunk, thresholds and alerts."""
    rows = drift[drift["kind"] == "multivariate"]
    x = list(rows["chunk_start"])
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=x,
            y=_gaps(rows["value"]),
            mode="lines+markers",
            line={"color": ESTIMATE_COLOR},
            name="reconstruction error",
        )
    )
    _add_thresholds(figure, rows, x, None, None, True)
    alerts = rows[rows["alert"]]
    figure.add_trace(
        go.Scatter(
            x=list(alerts["chunk_start"]),
            y=_gaps(alerts["value"]),
            mode="markers",
            marker={"color": ALERT_COLOR, "symbol": "x", "size": 11},
            name="alert",
        )
    )
    figure.update_layout(
        title="Multivariate drift (PCA reconstruction error)",
        height=320,
        margin={"t": 60, "l": 60, "r": 20, "b": 40},
    )
    return figure


def univariate_figure(drift: pd.DataFrame) -> go.Figure:
    """Univariate drift alerts as a heat map: one row per feature, one column per chunk,
    red where the feature drifted; hovering shows the method and its value."""
    rows = drift[drift["kind"].isin(_DRIFT_KINDS)]
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


def _add_thresholds(
    figure: go.Figure,
    rows: pd.DataFrame,
    x: list[Any],
    row: int | None,
    col: int | None,
    show_legend: bool,
) -> None:
    if not x:
        return
    for column in ("lower_threshold", "upper_threshold"):
        values = rows[column].dropna()
        if values.empty:
            continue
        value = float(values.iloc[-1])
        figure.add_trace(
            go.Scatter(
                x=[x[0], x[-1]],
                y=[value, value],
                mode="lines",
                line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1},
                name="alert threshold",
                legendgroup="threshold",
                showlegend=show_legend and column == "lower_threshold",
            ),
            row=row,
            col=col,
        )


def _latest_metrics(results: pd.DataFrame) -> list[dict[str, Any]]:
    latest = []
    for metric in METRICS:
        rows = results[results["metric"] == metric]
        if rows.empty:
            continue
        last = rows.iloc[-1]
        known = rows.dropna(subset=["realized"])
        latest.append(
            {
                "metric": METRIC_TITLES.get(metric, metric),
                "chunk": last["chunk_key"],
                "estimate": _number(last["estimate"]),
                "lower": _number(last["lower_bound"]),
                "upper": _number(last["upper_bound"]),
                "alert": bool(last["alert"]),
                "realized": None if known.empty else _number(known.iloc[-1]["realized"]),
                "realized_chunk": None if known.empty else known.iloc[-1]["chunk_key"],
                "alerts": int(rows["alert"].sum()),
            }
        )
    return latest


def _statistics_in_alert(drift: pd.DataFrame, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = drift[drift["kind"].isin(kinds)]
    found = []
    for (feature, method), group in rows.groupby(["feature", "method"], sort=True):
        alerts = int(group["alert"].sum())
        if alerts == 0:
            continue
        flagged = group[group["alert"]]
        found.append(
            {
                "feature": feature,
                "method": method.replace("_", " "),
                "alerts": alerts,
                "chunks": len(group),
                "last_alert": flagged.iloc[-1]["chunk_key"],
                "last_value": _number(group.iloc[-1]["value"]),
            }
        )
    return sorted(found, key=lambda item: (-item["alerts"], item["feature"]))


def _run_view(run: StoredRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "trigger": run.trigger,
        "finished_at": f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC",
        "chunking": run.chunking,
        "reference_rows": run.reference_rows,
        "analysis_rows": run.analysis_rows,
        "labelled_rows": run.labelled_rows,
        "chunks": run.chunks,
        "warnings": run.warnings,
        "error": run.error_message,
    }


def _figure_json(figure: go.Figure) -> dict[str, Any]:
    # plotly's encoder handles timestamps and NumPy; the template embeds this with `tojson`,
    # which escapes it for a <script> element.
    parsed: dict[str, Any] = json.loads(figure.to_json())
    return parsed


def _gaps(values: pd.Series) -> list[float | None]:
    return [None if math.isnan(value) else float(value) for value in values]


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
