"""The streaming simulator's HTTP API: one blueprint for the stream, one for operations.

No view waits on the database while a stream runs: the status and metrics come from the
stream's memory, and `/health` bounds its one check to :data:`HEALTH_TIMEOUT_S`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.settings import Settings
from config.web import ApiError, instance_id, json_body, token_required, validation_error
from db.connection import ping
from db.errors import DatabaseError
from ingest.scenario import Scenario
from ingest.stream import StreamConflict, StreamManager

log = logging.getLogger(__name__)

# `/health` must answer quickly even while the database hangs: its check gives up after this.
HEALTH_TIMEOUT_S = 0.5

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


def _streams() -> StreamManager:
    manager: StreamManager = current_app.extensions["ingest.streams"]
    return manager


def _settings() -> Settings:
    settings: Settings = current_app.extensions["ingest.settings"]
    return settings


def parse_start_request(body: Any, settings: Settings) -> StartStreamRequest:
    """Validate a `POST /start_stream` body against the schema and the configured maxima.

    Raises:
        ApiError: 400 ``invalid_request``, with one entry per bad field.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    try:
        parsed = StartStreamRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
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
        summary = "; ".join(f"{e['field']} {e['message']}" for e in errors)
        raise ApiError(400, "invalid_request", summary, errors)
    return parsed


@stream_bp.post("/start_stream")
@token_required
def start_stream() -> tuple[Response, int]:
    spec = parse_start_request(json_body(), _settings())
    # A hung server would hold the request for DB_CONNECT_TIMEOUT; answer 503 at once instead.
    ping(_settings(), HEALTH_TIMEOUT_S)
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
        raise ApiError(409, "stream_conflict", str(exc)) from exc
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
@token_required
def stop_stream() -> tuple[Response, int]:
    try:
        runner = _streams().stop()
    except StreamConflict as exc:
        raise ApiError(409, "stream_conflict", str(exc)) from exc
    return jsonify(runner.status()), 202


@ops_bp.get("/health")
def health() -> tuple[Response, int]:
    try:
        ping(_settings(), HEALTH_TIMEOUT_S)
    except DatabaseError as exc:
        log.warning("health check: %s", exc)
        return jsonify(
            {
                "status": "unavailable",
                "database": "unreachable",
                "error": exc.code,
                "message": exc.public_message,
                "instance_id": instance_id(),
            }
        ), 503
    return jsonify({"status": "ok", "database": "reachable", "instance_id": instance_id()}), 200


@ops_bp.get("/metrics")
def metrics() -> Response:
    payload = generate_latest(_streams().metrics.registry)
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)
