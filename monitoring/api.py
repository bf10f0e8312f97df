"""The monitoring service's HTTP API: one blueprint for runs, one for operations.

Status codes of ``GET /run-monitoring``: 200 with the result; 400 for a bad query (an unknown
parameter, a malformed or repeated ``model_version``); 404 when no model is trained or the
version is not registered; 409 while another run of the database is in progress (runs are
serialised by a server-side lock, so a concurrent call is refused at once, with
``Retry-After``, rather than queued behind a run that may take minutes); 422 when the stored
data cannot support monitoring (no reference or analysis predictions, a single-class
reference, too few rows or reference chunks, unusable values); 503 when the database is
unreachable. Every error is a JSON object ``{"error": message}``; a 500 never shows internals.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from db.connection import Connection, connection, ping
from db.errors import DatabaseError, DatabaseUnavailable
from db.models import current_model
from db.monitoring import (
    SUCCEEDED,
    database_errors,
    last_monitored_version,
    latest_run,
    stored_results,
)
from monitoring.errors import InputError, InsufficientDataError, MonitoringError
from monitoring.result import METRICS
from monitoring.runner import (
    VERSION_PATTERN,
    ModelNotFoundError,
    RunInProgressError,
    run_for_model,
)

log = logging.getLogger(__name__)

runs_bp = Blueprint("runs", __name__)
ops_bp = Blueprint("ops", __name__)

SETTINGS_KEY = "monitoring.settings"
METRICS_KEY = "monitoring.metrics"
# Seconds a client refused with 409 should wait before asking again.
RETRY_AFTER_SECONDS = 10

_Query = TypeVar("_Query", bound=BaseModel)


class RunQuery(BaseModel):
    """Query of `GET /run-monitoring` (and of the dashboard): which model version."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_version: str | None = Field(
        None, pattern=VERSION_PATTERN, description="a registered version; default: the current"
    )


class RequestError(Exception):
    """A client error, answered with ``status`` and a JSON body naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per app).

    The latest figures come from the database at each scrape, so they include the poller's
    runs; the run counters and durations count this process's runs only.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model_version", "metric"]
        self.estimate = Gauge(
            "monitoring_estimate",
            "CBPE estimate of the latest chunk of the latest successful run",
            labels,
            registry=self.registry,
        )
        self.lower = Gauge(
            "monitoring_estimate_lower",
            "Lower confidence bound of that estimate (3 sampling errors)",
            labels,
            registry=self.registry,
        )
        self.upper = Gauge(
            "monitoring_estimate_upper",
            "Upper confidence bound of that estimate",
            labels,
            registry=self.registry,
        )
        self.estimate_alert = Gauge(
            "monitoring_estimate_alert",
            "1 when the latest chunk's estimate is outside the alert thresholds",
            labels,
            registry=self.registry,
        )
        self.realized = Gauge(
            "monitoring_realized",
            "Realized value of the latest chunk with known labels",
            labels,
            registry=self.registry,
        )
        self.alerts = Gauge(
            "monitoring_alerts",
            "Chunks in alert in the latest successful run, per kind of alert",
            ["model_version", "kind"],
            registry=self.registry,
        )
        self.last_run = Gauge(
            "monitoring_last_run_timestamp_seconds",
            "When the latest successful run finished (Unix time)",
            ["model_version"],
            registry=self.registry,
        )
        self.last_run_id = Gauge(
            "monitoring_last_run_id",
            "Run id of the latest successful run",
            ["model_version"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "monitoring_database_up",
            "1 when the latest scrape could read the stored results",
            registry=self.registry,
        )
        self.runs = Counter(
            "monitoring_runs",
            "Runs requested from this service, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "monitoring_run_duration_seconds",
            "Wall time of the successful runs requested from this service",
            buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self._lock = threading.Lock()

    def refresh(self, settings: Settings) -> None:
        """Set the gauges of the latest figures from the database (under a lock: scrapes may
        run in parallel). A database error leaves them empty and ``database_up`` at 0."""
        with self._lock:
            for gauge in (
                self.estimate,
                self.lower,
                self.upper,
                self.estimate_alert,
                self.realized,
                self.alerts,
                self.last_run,
                self.last_run_id,
            ):
                gauge.clear()
            try:
                self._load(settings)
            except DatabaseError as exc:
                log.warning("metrics: cannot read the stored results: %s", exc)
                self.database_up.set(0)
                return
            self.database_up.set(1)

    def _load(self, settings: Settings) -> None:
        with connection(settings) as conn, database_errors():
            version = monitored_version(conn)
            if version is None:
                return
            run = latest_run(conn, version, SUCCEEDED)
            results = stored_results(conn, version)
        if run is None:
            return
        self.last_run.labels(version).set(run.finished_at.replace(tzinfo=UTC).timestamp())
        self.last_run_id.labels(version).set(run.run_id)
        for kind, count in run.alerts.items():
            self.alerts.labels(version, kind).set(count)
        for metric in METRICS:
            rows = results[results["metric"] == metric]
            if rows.empty:
                continue
            latest = rows.iloc[-1]
            _set(self.estimate, (version, metric), latest["estimate"])
            _set(self.lower, (version, metric), latest["lower_bound"])
            _set(self.upper, (version, metric), latest["upper_bound"])
            self.estimate_alert.labels(version, metric).set(int(bool(latest["alert"])))
            known = rows["realized"].dropna()
            if not known.empty:
                _set(self.realized, (version, metric), known.iloc[-1])


def monitored_version(conn: Connection) -> str | None:
    """The version the dashboard and metrics show by default: the current model, else the
    version of the latest successful run."""
    model = current_model(conn)
    return model.version if model is not None else last_monitored_version(conn)


def parse_query(model: type[_Query], args: MultiDict[str, str]) -> _Query:
    """Validate a query string against ``model``.

    Raises:
        RequestError: 400, naming each unknown, repeated or malformed parameter.
    """
    repeated = sorted(key for key in args if len(args.getlist(key)) > 1)
    if repeated:
        raise RequestError(400, f"query parameters given more than once: {', '.join(repeated)}")
    try:
        return model.model_validate(args.to_dict())
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(query)"
            if error["type"] == "extra_forbidden":
                problems.append(f"{field} is not a recognised parameter")
            elif error["type"] == "string_pattern_mismatch":
                problems.append(
                    f"{field} must be a model version: letters, digits, '_', '.', '-', "
                    "at most 40 characters"
                )
            else:
                problems.append(f"{field}: {error['msg']}")
        raise RequestError(400, "; ".join(problems)) from exc


def app_settings() -> Settings:
    """The settings of the app serving the current request."""
    settings: Settings = current_app.extensions[SETTINGS_KEY]
    return settings


def app_metrics() -> ServiceMetrics:
    """The metrics of the app serving the current request."""
    metrics: ServiceMetrics = current_app.extensions[METRICS_KEY]
    return metrics


@runs_bp.get("/run-monitoring")
def run_monitoring() -> tuple[Response, int]:
    query = parse_query(RunQuery, request.args)
    metrics = app_metrics()
    started = time.perf_counter()
    try:
        _, body = run_for_model(app_settings(), query.model_version, trigger="api")
    except RunInProgressError:
        metrics.runs.labels("busy").inc()
        raise
    except MonitoringError:
        metrics.runs.labels("failed").inc()
        raise
    metrics.runs.labels("succeeded").inc()
    metrics.run_seconds.observe(time.perf_counter() - started)
    return jsonify(body), 200


@ops_bp.get("/health")
def health() -> tuple[Response, int]:
    try:
        ping(app_settings())
    except DatabaseError as exc:
        log.warning("health check: %s", exc)
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    except Exception:
        log.exception("health check failed")
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "reachable"}), 200


@ops_bp.get("/metrics")
def metrics() -> Response:
    registry = app_metrics()
    registry.refresh(app_settings())
    return Response(generate_latest(registry.registry), mimetype=CONTENT_TYPE_LATEST)


def register_error_handlers(app: Flask) -> None:
    """JSON errors: domain errors with their message and status, internals never shown."""

    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        response = jsonify({"error": message})
        response.status_code = status
        response.headers.update(headers or {})
        return response

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> Response:
        return error(exc.status, exc.message)

    @app.errorhandler(ModelNotFoundError)
    def _not_found(exc: ModelNotFoundError) -> Response:
        return error(404, str(exc))

    @app.errorhandler(RunInProgressError)
    def _busy(exc: RunInProgressError) -> Response:
        return error(409, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.errorhandler(MonitoringError)
    def _unprocessable(exc: MonitoringError) -> Response:
        # InsufficientDataError and InputError: the stored data cannot be monitored as is.
        # Their messages are written for users (see monitoring.errors).
        if not isinstance(exc, InputError | InsufficientDataError):
            log.warning("monitoring error %s: %s", type(exc).__name__, exc)
        return error(422, str(exc))

    @app.errorhandler(DatabaseUnavailable)
    def _unavailable(exc: DatabaseUnavailable) -> Response:
        log.warning("database unavailable: %s", exc)
        return error(503, "the database is unavailable; try again shortly")

    @app.errorhandler(DatabaseError)
    def _database_error(exc: DatabaseError) -> Response:
        log.error("database error: %s", exc, exc_info=exc)
        return error(500, "a database error occurred; see the server log")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Keep the exception's own headers (Allow on a 405), not its HTML body.
        headers = {
            name: value
            for name, value in exc.get_headers()
            if name.lower() not in ("content-type", "content-length")
        }
        return error(exc.code or 500, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error(500, "internal error; see the server log")


def _set(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    # No figure (NaN), no sample: a child created by labels() alone would export 0.
    number = float(value)
    if not math.isnan(number):
        gauge.labels(*labels).set(number)
