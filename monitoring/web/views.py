"""The monitoring service's HTTP API: one blueprint for runs, one for operations.

Status codes of ``GET /run-monitoring``: 200 with the result; 400 for a bad query (an unknown
parameter, a malformed or repeated ``model_version``); 401 without the API token, when
``API_TOKEN`` is set; 404 when no model is trained or the version is not registered; 409 while
another run of the database is in progress (runs are serialised by a server-side lock, so a
concurrent call is refused at once, with ``Retry-After``, rather than queued behind a run that
may take minutes); 422 when the stored data cannot support monitoring (no reference or
analysis predictions, a single-class reference, too few rows or reference chunks, unusable
values); 503 when the database is unreachable. Errors have the body of `config.web`:
``{"error": <stable code>, "message": <plain text>}``.
"""

from __future__ import annotations

import logging
import time
from typing import TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.datastructures import MultiDict

from config.settings import Settings
from config.web import ApiError, error_response, field_errors, instance_id, token_required
from db.connection import ping
from db.errors import DatabaseError
from monitoring.errors import (
    InputError,
    InsufficientDataError,
    ModelNotFoundError,
    MonitoringError,
    RunInProgressError,
)
from monitoring.pipeline.runner import VERSION_PATTERN, CompletedRun, Detail, run_for_model
from monitoring.web.metrics import ServiceMetrics

log = logging.getLogger(__name__)

runs_bp = Blueprint("runs", __name__)
ops_bp = Blueprint("ops", __name__)

SETTINGS_KEY = "monitoring.settings"
METRICS_KEY = "monitoring.metrics"
# Seconds a client refused with 409 should wait before asking again.
RETRY_AFTER_SECONDS = 10
_VERSION_RULE = "must be a model version: letters, digits, '_', '.', '-', at most 40 characters"


class RunQuery(BaseModel):
    """Query of `GET /run-monitoring` (and of the dashboard): which model version, and how
    much of the result (``compact``: verdicts, alert counts, latest figures and the statistics
    that alerted; ``full``: every figure of every chunk)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_version: str | None = Field(
        None, pattern=VERSION_PATTERN, description="a registered version; default: the current"
    )
    detail: Detail = "compact"


def parse_query(args: MultiDict[str, str]) -> RunQuery:
    """Validate the query string of `GET /run-monitoring`.

    Raises:
        ApiError: 400, naming each unknown, repeated or malformed parameter.
    """
    return parse_args(RunQuery, args)


_Query = TypeVar("_Query", bound=BaseModel)


def parse_args(model: type[_Query], args: MultiDict[str, str]) -> _Query:
    """Validate a query string against ``model`` (extra parameters forbidden).

    Raises:
        ApiError: 400, naming each unknown, repeated or malformed parameter.
    """
    repeated = sorted(key for key in args if len(args.getlist(key)) > 1)
    if repeated:
        raise ApiError(
            400,
            "invalid_request",
            f"query parameters given more than once: {', '.join(repeated)}",
        )
    try:
        return model.model_validate(args.to_dict())
    except ValidationError as exc:
        errors = field_errors(exc)
        for error, raw in zip(errors, exc.errors(), strict=False):
            if raw["type"] == "extra_forbidden":
                error["message"] = "is not a recognised parameter"
            elif raw["type"] == "string_pattern_mismatch" and "version" in error["field"]:
                error["message"] = _VERSION_RULE
            elif raw["type"] == "literal_error":
                error["message"] = "must be compact or full"
        message = "; ".join(f"{error['field']} {error['message']}" for error in errors)
        raise ApiError(400, "invalid_request", message, errors) from exc


def app_settings() -> Settings:
    """The settings of the app serving the current request."""
    settings: Settings = current_app.extensions[SETTINGS_KEY]
    return settings


def app_metrics() -> ServiceMetrics:
    """The metrics of the app serving the current request."""
    metrics: ServiceMetrics = current_app.extensions[METRICS_KEY]
    return metrics


@runs_bp.get("/run-monitoring")
@token_required
def run_monitoring() -> tuple[Response, int]:
    query = parse_query(request.args)
    metrics = app_metrics()
    started = time.perf_counter()
    try:
        completed: CompletedRun = run_for_model(app_settings(), query.model_version, trigger="api")
    except RunInProgressError as exc:
        metrics.runs.labels("busy").inc()
        response, status = error_response(409, "run_in_progress", str(exc))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, status
    except MonitoringError as exc:
        metrics.runs.labels("failed").inc()
        raise _client_error(exc) from exc
    metrics.runs.labels("succeeded").inc()
    metrics.run_seconds.observe(time.perf_counter() - started)
    return jsonify(completed.to_json(app_settings().output_dir, query.detail)), 200


@ops_bp.get("/health")
def health() -> tuple[Response, int]:
    try:
        ping(app_settings())
    except DatabaseError as exc:
        log.warning("health check: %s", exc)
        body = {"status": "unavailable", "database": "unreachable", "instance_id": instance_id()}
        return jsonify(body), 503
    return jsonify({"status": "ok", "database": "reachable", "instance_id": instance_id()}), 200


@ops_bp.get("/metrics")
def metrics() -> Response:
    registry = app_metrics()
    registry.refresh(app_settings())
    return Response(generate_latest(registry.registry), mimetype=CONTENT_TYPE_LATEST)


def _client_error(exc: MonitoringError) -> ApiError:
    # Monitoring messages are written for users (see monitoring.errors): shown as they are.
    if isinstance(exc, ModelNotFoundError):
        return ApiError(404, "model_not_found", str(exc))
    if isinstance(exc, InsufficientDataError):
        return ApiError(422, "insufficient_data", str(exc))
    if not isinstance(exc, InputError):
        log.warning("monitoring error %s: %s", type(exc).__name__, exc)
    return ApiError(422, "unusable_data", str(exc))
