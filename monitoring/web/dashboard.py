"""The dashboard page: the latest stored figures of a model version, drawn by plotly.js.

The page reads what the latest successful run stored (`monitoring_results`,
`monitoring_drift`, `monitoring_runs`), so it shows the poller's runs as well as the API's and
never starts a run itself. plotly.js is served from the installed plotly package at
``/static/plotly.min.js``: the page works offline and sends nothing to a CDN.

The figures come from `monitoring.report.figures`, the report's builders; the view only
reads and renders.
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

from db.connection import connection
from db.errors import DatabaseError
from db.monitoring import FAILED, SUCCEEDED, StoredRun, latest_run, stored_drift, stored_results
from monitoring.compute.result import METRICS
from monitoring.report.figures import (
    DRIFT_KINDS,
    METRIC_TITLES,
    QUALITY_KINDS,
    multivariate_figure,
    performance_figure,
    univariate_figure,
)
from monitoring.web.metrics import monitored_version
from monitoring.web.views import app_settings, parse_query

log = logging.getLogger(__name__)

dashboard_bp = Blueprint("dashboard", __name__, template_folder="templates")

PLOTLY_JS_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PLOTLY_JS = "plotly.min.js"
# Long enough for a browser to reuse it across reloads, short enough for a plotly upgrade.
_PLOTLY_JS_MAX_AGE = 3600


@dashboard_bp.get("/")
def dashboard() -> tuple[str, int]:
    query = parse_query(request.args)
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
    with connection(settings) as conn:
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
        "alerts_total": sum(count for kind, count in run.alerts.items() if kind != "total"),
        "latest": _latest_metrics(results),
        "drifting": _statistics_in_alert(drift, (*DRIFT_KINDS, "multivariate")),
        "quality": _statistics_in_alert(drift, QUALITY_KINDS),
        "figures": {
            "performance": _figure_json(performance_figure(results)),
            "multivariate": _figure_json(multivariate_figure(drift)),
            "univariate": _figure_json(univariate_figure(drift)),
        },
    }


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
                "lower_bound": _number(last["lower_bound"]),
                "upper_bound": _number(last["upper_bound"]),
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


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
