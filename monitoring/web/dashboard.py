"""The dashboard: the stored figures of a model version, drawn by plotly.js.

- ``GET /[?version=V][&feature=F&chunk=K]``: the page. The latest chunk's verdict comes first,
  then the verdict per chunk, performance, drift ranked by severity (alerts as runs of
  chunks) with a drill-down of one feature, multivariate drift and the data-quality issues.
  A selector lists the versions with runs; an unknown version is a 404 page.
- ``GET /dashboard/state?version=V``: the version's newest run id, which the page polls every
  ``MONITORING_DASHBOARD_REFRESH`` seconds to reload itself (keeping its query) on a new run.
- ``GET /dashboard/drilldown?version=V&feature=F&chunk=K``: a feature's drift over the chunks
  and its histogram in the reference against chunk ``K``, as figure JSON. A bad feature or
  chunk is a 400 JSON error.

The page reads what the runs stored (`monitoring_results`, `monitoring_drift`,
`monitoring_runs`), so it shows the poller's runs as well as the API's and never starts a run.
The figures come from `monitoring.report.pictures`, the report's builders: the view only reads
and renders. plotly.js is served from the installed plotly package: the page works offline.
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
from flask import (
    Blueprint,
    Response,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from pydantic import BaseModel, ConfigDict, Field

from config.web import ApiError
from db.connection import Connection, connection
from db.dashboard import (
    feature_values,
    first_streamed_day,
    latest_run_state,
    monitored_versions,
    reference_span,
)
from db.errors import DatabaseError
from db.models import get_model
from db.monitoring import FAILED, SUCCEEDED, StoredRun, latest_run, stored_drift, stored_results
from monitoring.compute.result import METRICS
from monitoring.pipeline.runner import VERSION_PATTERN
from monitoring.report.figures import (
    DRIFT_KINDS,
    METRIC_TITLES,
    feature_drift_figure,
    histogram_figure,
)
from monitoring.report.histograms import compare_histograms
from monitoring.report.pictures import (
    DATA_QUALITY,
    MULTIVARIATE_DRIFT,
    PERFORMANCE,
    UNIVARIATE_DRIFT,
    VERDICT,
    Pictures,
    build_pictures,
)
from monitoring.report.severity import RankedStatistic, rank_statistics
from monitoring.report.timeline import Timeline
from monitoring.web.metrics import monitored_version
from monitoring.web.views import app_settings, parse_args

log = logging.getLogger(__name__)

dashboard_bp = Blueprint("dashboard", __name__, template_folder="templates")

PLOTLY_JS_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PLOTLY_JS = "plotly.min.js"
# Long enough for a browser to reuse it across reloads, short enough for a plotly upgrade.
_PLOTLY_JS_MAX_AGE = 3600
# The page's element for each picture.
_ELEMENTS = {
    VERDICT: "verdicts",
    PERFORMANCE: "performance",
    UNIVARIATE_DRIFT: "univariate",
    MULTIVARIATE_DRIFT: "multivariate",
    DATA_QUALITY: "quality",
}
_FEATURE_MAX = 128
_CHUNK_MAX = 64


class PageQuery(BaseModel):
    """Query of the page: which version, and which feature and chunk to drill into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = Field(None, pattern=VERSION_PATTERN)
    feature: str | None = Field(None, min_length=1, max_length=_FEATURE_MAX)
    chunk: str | None = Field(None, min_length=1, max_length=_CHUNK_MAX)


class StateQuery(BaseModel):
    """Query of `GET /dashboard/state`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=VERSION_PATTERN)


class DrilldownQuery(BaseModel):
    """Query of `GET /dashboard/drilldown`: every parameter is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=VERSION_PATTERN)
    feature: str = Field(min_length=1, max_length=_FEATURE_MAX)
    chunk: str = Field(min_length=1, max_length=_CHUNK_MAX)


@dashboard_bp.get("/")
def dashboard() -> tuple[str, int]:
    query = parse_args(PageQuery, request.args)
    try:
        with connection(app_settings()) as conn:
            page = _read_page(conn, query)
    except DatabaseError as exc:
        log.warning("dashboard: cannot read the stored results: %s", exc)
        return render_template("dashboard.html", page=None, unavailable=True), 503
    status = 404 if page.get("unknown") else 200
    return render_template("dashboard.html", page=page, unavailable=False), status


@dashboard_bp.get("/dashboard/state")
def dashboard_state() -> tuple[Response, int]:
    query = parse_args(StateQuery, request.args)
    with connection(app_settings()) as conn:
        state = latest_run_state(conn, query.version)
        if state is None and get_model(conn, query.version) is None:
            raise ApiError(404, "model_not_found", _unknown_message(query.version))
    if state is None:
        return jsonify({"version": query.version, "run_id": None}), 200
    body = {
        "version": query.version,
        "run_id": state.run_id,
        "status": state.status,
        "finished_at": f"{state.finished_at:%Y-%m-%dT%H:%M:%S}Z",
    }
    return jsonify(body), 200


@dashboard_bp.get("/dashboard/drilldown")
def drilldown() -> tuple[Response, int]:
    query = parse_args(DrilldownQuery, request.args)
    with connection(app_settings()) as conn:
        body = _read_drilldown(conn, query)
    return jsonify(body), 200


@dashboard_bp.get(f"/static/{PLOTLY_JS}")
def plotly_js() -> Response:
    return send_from_directory(PLOTLY_JS_DIR, PLOTLY_JS, max_age=_PLOTLY_JS_MAX_AGE)


def _read_page(conn: Connection, query: PageQuery) -> dict[str, Any]:
    versions = monitored_versions(conn)
    version = query.version or monitored_version(conn)
    base: dict[str, Any] = {"version": version, "versions": versions, "run": None}
    if version is None:
        return {**base, "last_failure": None}
    if query.version is not None and version not in versions and get_model(conn, version) is None:
        return {**base, "unknown": _unknown_message(version), "last_failure": None}
    if version not in versions:
        base["versions"] = [version, *versions]
    run = latest_run(conn, version, SUCCEEDED)
    last = latest_run(conn, version)
    failure = last if last is not None and last.status == FAILED else None
    if run is None:
        return {**base, "last_failure": _run_view(failure)}
    results = stored_results(conn, version)
    drift = stored_drift(conn, version)
    if results.empty:
        return {**base, "last_failure": _run_view(failure)}
    timeline = Timeline.of(reference_span(conn, version), first_streamed_day(conn))
    pictures = build_pictures(results, drift, timeline)
    view = dashboard_view(version, run, results, pictures, timeline, failure)
    view["versions"] = base["versions"]
    view["client"].update(
        {
            "feature": query.feature,
            "chunk": query.chunk,
            "refresh_seconds": app_settings().monitoring_dashboard_refresh,
        }
    )
    return view


def dashboard_view(
    version: str,
    run: StoredRun,
    results: pd.DataFrame,
    pictures: Pictures,
    timeline: Timeline,
    failure: StoredRun | None = None,
) -> dict[str, Any]:
    """What the template shows: the verdict, run facts, latest figures, the rankings, the
    plotly figures and what the page's script needs.

    Args:
        version: The model version shown.
        run: Its latest successful run.
        results: Its stored metric rows (`db.monitoring.stored_results`).
        pictures: `monitoring.report.pictures.build_pictures` of its stored rows.
        timeline: The reference period and the first streamed day.
        failure: Its latest run, when that one failed after ``run``.
    """
    figures = {
        _ELEMENTS[name]: _figure_json(figure)
        for name, figure in pictures.figures.items()
        if name in _ELEMENTS
    }
    chunks = list(pictures.verdicts["chunk_key"])
    return {
        "version": version,
        "run": _run_view(run),
        "last_failure": _run_view(failure) if failure and failure.run_id > run.run_id else None,
        "verdict": pictures.latest,
        "timeline": timeline,
        "alerts": [
            {"kind": kind.replace("_", " "), "count": count}
            for kind, count in run.alerts.items()
            if kind != "total"
        ],
        "alerts_total": sum(count for kind, count in run.alerts.items() if kind != "total"),
        "latest": _latest_metrics(results),
        "drifting": [_ranked_view(item) for item in pictures.drifting],
        "quality": [_ranked_view(item) for item in pictures.quality],
        "features": [item.feature for item in pictures.drift],
        "figures": figures,
        "template": _shared_template(),
        "client": {
            "version": version,
            "run_id": run.run_id,
            "chunks": chunks,
            "default_chunks": {
                item.feature: item.runs[-1].last_chunk if item.runs else chunks[-1]
                for item in pictures.drift
            }
            if chunks
            else {},
            "state_url": url_for("dashboard.dashboard_state"),
            "drilldown_url": url_for("dashboard.drilldown"),
        },
    }


def _read_drilldown(conn: Connection, query: DrilldownQuery) -> dict[str, Any]:
    model = get_model(conn, query.version)
    if model is None:
        raise ApiError(404, "model_not_found", _unknown_message(query.version))
    drift = stored_drift(conn, query.version)
    features = drift[drift["kind"].isin(DRIFT_KINDS)]
    if query.feature not in set(features["feature"]):
        raise ApiError(
            400,
            "invalid_request",
            f"feature {query.feature!r} has no stored drift in model version {query.version}",
        )
    chunk_rows = features[features["chunk_key"] == query.chunk]
    if chunk_rows.empty:
        raise ApiError(
            400,
            "invalid_request",
            f"chunk {query.chunk!r} is not a stored chunk of model version {query.version}",
        )
    continuous = [f["name"] for f in model.features if f.get("type") == "continuous"]
    categorical = [f["name"] for f in model.features if f.get("type") == "categorical"]
    if query.feature not in (*continuous, *categorical):
        raise ApiError(
            400,
            "invalid_request",
            f"feature {query.feature!r} is not declared by model version {query.version}",
        )
    run = latest_run(conn, query.version, SUCCEEDED)
    size_chunks = run is not None and (run.chunking or "").startswith("size")
    first = chunk_rows.iloc[0]
    values = feature_values(
        conn,
        query.version,
        continuous,
        categorical,
        query.feature,
        first["chunk_start"],
        first["chunk_end"],
        end_inclusive=size_chunks,
    )
    timeline = Timeline.of(reference_span(conn, query.version), first_streamed_day(conn))
    ranked = rank_statistics(features[features["feature"] == query.feature], DRIFT_KINDS)
    histogram = compare_histograms(
        query.feature,
        query.chunk,
        values.reference,
        values.chunk,
        categorical=query.feature in categorical,
        truncated=values.truncated,
    )
    item = ranked[0]
    return {
        "version": query.version,
        "feature": query.feature,
        "chunk": query.chunk,
        "method": item.method,
        "alerts": item.alerts,
        "runs": [run.label for run in item.runs],
        "reference_rows": histogram.reference_rows,
        "chunk_rows": histogram.chunk_rows,
        "truncated": values.truncated,
        "figures": {
            "statistic": _figure_json(feature_drift_figure(features, ranked, timeline)),
            "histogram": _figure_json(histogram_figure(histogram)),
        },
    }


def _unknown_message(version: str) -> str:
    return (
        f"model version {version!r} is not known: it is not registered and has no monitoring runs"
    )


def _ranked_view(item: RankedStatistic) -> dict[str, Any]:
    return {
        "feature": item.feature,
        "method": item.method.replace("_", " "),
        "alerts": item.alerts,
        "chunks": item.chunks,
        "runs": [run.label for run in item.runs],
        "peak": None if math.isnan(item.peak) else item.peak,
        "latest": None if math.isnan(item.latest) else item.latest,
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
    # plotly's encoder handles timestamps and NumPy. Every figure would carry the same ~8 kB
    # default template: it is sent once (`_shared_template`) and put back by the page.
    parsed: dict[str, Any] = json.loads(figure.to_json())
    parsed.get("layout", {}).pop("template", None)
    return parsed


def _shared_template() -> dict[str, Any]:
    template: dict[str, Any] = json.loads(go.Figure().to_json())["layout"]["template"]
    return template


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
