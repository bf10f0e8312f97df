"""The streaming simulator's HTTP API: one blueprint for the stream, one for operations."""

from __future__ import annotations

import logging
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from db.connection import ping
from db.errors import DatabaseError, DatabaseUnavailable
from ingest.scenario import Scenario
from ingest.stream import StreamConflict, StreamManager

log = logging.getLogger(__name__)

stream_bp = Blueprint("stream", __name__)
ops_bp = Blueprint("ops", __name__)


class StartStreamRequest(BaseModel):
    """Body of `POST /start_stream`; defaults are the seed project's."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    batch_size: int = Field(1000, gt=0, description="rows per batch")
    num_batches: int = Field(10, gt=0, description="batches in the stream")
    interval: float = Field(60, ge=0, description="seconds between batches")
    seed: int | None = Field(None, ge=0, lt=2**63, description="fixes every random draw")
    clock: Literal["realtime", "simulated"] = "realtime"
    scenario: Scenario = Scenario()
    stream_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="resume this stream from its first uncommitted batch",
    )


class RequestError(Exception):
    """A client error, answered with ``status`` and a JSON body naming the problem."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def _streams() -> StreamManager:
    manager: StreamManager = current_app.extensions["ingest.streams"]
    return manager


def _settings() -> Settings:
    settings: Settings = current_app.extensions["ingest.settings"]
    return settings


def parse_start_request(body: Any, settings: Settings) -> StartStreamRequest:
    """Validate a `POST /start_stream` body against the schema and the configured maxima.

    Raises:
        RequestError: with status 400 and one entry per bad field.
    """
    if not isinstance(body, dict):
        raise _body_error("the request body must be a JSON object")
    try:
        parsed = StartStreamRequest.model_validate(body)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "(body)",
                "message": _plain(error),
            }
            for error in exc.errors()
        ]
        raise RequestError(400, _summary(errors), errors) from exc
    maxima = (
        ("batch_size", parsed.batch_size, settings.stream_max_batch_size),
        ("num_batches", parsed.num_batches, settings.stream_max_batches),
        ("interval", parsed.interval, settings.stream_max_interval),
    )
    errors = [
        {"field": name, "message": f"must be at most {limit} (configured maximum)"}
        for name, value, limit in maxima
        if value > limit
    ]
    if errors:
        raise RequestError(400, _summary(errors), errors)
    return parsed


def _body_error(message: str) -> RequestError:
    return RequestError(400, message, [{"field": "(body)", "message": message}])


def _plain(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "is not a recognised field"
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be", 1)


def _summary(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']} {e['message']}" for e in errors)


@stream_bp.post("/start_stream")
def start_stream() -> tuple[Response, int]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent=True swallows only ValueError
        raise _body_error("the request body is nested too deeply") from None
    if body is None:
        raise _body_error("the request body must be JSON (Content-Type: application/json)")
    spec = parse_start_request(body, _settings())
    try:
        runner = _streams().start(
            batch_size=spec.batch_size,
            num_batches=spec.num_batches,
            interval=spec.interval,
            seed=spec.seed,
            clock=spec.clock,
            scenario=spec.scenario,
            stream_id=spec.stream_id,
        )
    except StreamConflict as exc:
        raise RequestError(409, str(exc)) from exc
    status = runner.status()
    return jsonify(
        {
            "stream_id": status["stream_id"],
            "state": status["state"],
            "batches_total": status["batches_total"],
            "seed": runner.spec.seed,
            "status_url": "/stream_status",
        }
    ), 202


@stream_bp.get("/stream_status")
def stream_status() -> tuple[Response, int]:
    runner = _streams().current()
    if runner is None:
        return jsonify({"state": "idle", "stream_id": None}), 200
    return jsonify(runner.status()), 200


@stream_bp.post("/stop_stream")
def stop_stream() -> tuple[Response, int]:
    try:
        runner = _streams().stop()
    except StreamConflict as exc:
        raise RequestError(409, str(exc)) from exc
    return jsonify(runner.status()), 202


@ops_bp.get("/health")
def health() -> tuple[Response, int]:
    try:
        ping(_settings())
    except DatabaseError as exc:
        log.warning("health check: %s", exc)
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "reachable"}), 200


@ops_bp.get("/metrics")
def metrics() -> Response:
    payload = generate_latest(_streams().metrics.registry)
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)


def register_error_handlers(app: Flask) -> None:
    """JSON errors for client mistakes; internal errors never expose their text."""

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return jsonify(body), exc.status

    @app.errorhandler(DatabaseUnavailable)
    def _unavailable(exc: DatabaseUnavailable) -> tuple[Response, int]:
        log.warning("database unavailable: %s", exc)
        return jsonify({"error": "the database is unavailable; try again shortly"}), 503

    @app.errorhandler(DatabaseError)
    def _database_error(exc: DatabaseError) -> tuple[Response, int]:
        # The layer's messages name the server and the problem, never a credential.
        log.error("database error: %s", exc)
        return jsonify({"error": f"database error: {exc}"}), 503

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify({"error": "internal error; see the server log"}), 500
