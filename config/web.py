"""What every HTTP service of the project shares: errors, validation messages, auth, serving.

- One error body: ``{"error": <stable code>, "message": <plain text>}``, plus ``"errors"`` (at
  most :data:`MAX_FIELD_ERRORS` field errors, echoed values cut to :data:`MAX_ECHO_CHARS`) for
  a bad request. Driver text, hosts and user names never reach a client; the log gets them.
- Optional bearer-token authentication (``API_TOKEN``) on the endpoints that change state.
- :func:`serve` runs an app under waitress and turns a busy port into one clear line.
- Each app gets an ``instance_id`` nonce that ``/health`` reports, so a caller can tell the
  service it started from whatever else holds the port.
"""

from __future__ import annotations

import errno
import hmac
import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from db.errors import DatabaseError, DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_FIELD_ERRORS = 20
MAX_ECHO_CHARS = 100

_F = TypeVar("_F", bound=Callable[..., Any])


class ApiError(Exception):
    """A client-facing error: an HTTP status, a stable code and a plain message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []


class PortInUse(OSError):
    """The service's port is taken; the message names the port and the setting to change."""


def clip(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """``value`` as text of at most ``limit`` characters, for echoing back to a client."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as ``{"field", "message"}`` pairs: bounded, plain, values clipped."""
    errors = []
    for error in exc.errors()[:MAX_FIELD_ERRORS]:
        field = ".".join(str(part) for part in error["loc"]) or "(body)"
        errors.append({"field": clip(field), "message": clip(_plain(error), 200)})
    return errors


def _plain(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "is not a recognised field"
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be", 1)


def validation_error(exc: ValidationError, status: int = 400) -> ApiError:
    """The one translation of a pydantic error into a client error."""
    errors = field_errors(exc)
    total = exc.error_count()
    summary = "; ".join(f"{e['field']} {e['message']}" for e in errors[:5])
    if total > len(errors[:5]):
        summary += f" (and {total - len(errors[:5])} more)"
    return ApiError(status, "invalid_request", summary, errors)


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent=True swallows only ValueError
        raise ApiError(400, "invalid_request", "the request body is nested too deeply") from None
    if body is None:
        raise ApiError(
            400,
            "invalid_request",
            "the request body must be JSON (Content-Type: application/json)",
        )
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body


def error_response(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    """The one shape of an error body."""
    return jsonify({"error": code, "message": message, **extra}), status


def register_error_handlers(app: Flask) -> None:
    """JSON errors for every failure; internal detail goes to the log, never to the client."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        extra = {"errors": exc.errors} if exc.errors else {}
        return error_response(exc.status, exc.code, exc.message, **extra)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> tuple[Response, int]:
        return _api_error(validation_error(exc))

    @app.errorhandler(DatabaseError)
    def _database_error(exc: DatabaseError) -> tuple[Response, int]:
        # str(exc) may name the server and quote the driver: the log gets it, the client
        # gets the stable code and the plain message.
        log.log(
            logging.WARNING if isinstance(exc, DatabaseUnavailable) else logging.ERROR,
            "database error: %s",
            exc,
        )
        return error_response(503, exc.code, exc.public_message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = error_response(
            exc.code or 500, code, clip(exc.description or exc.name, 200)
        )
        # Keep the exception's own headers (Allow on a 405), not its HTML body's.
        for name, value in exc.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the server log")


def init_service(app: Flask, api_token: str | None, instance: str | None = None) -> None:
    """Give ``app`` the shared error handlers, an instance nonce and its API token (if any).

    ``instance`` fixes the nonce (the ``INSTANCE_ID`` setting), so a launcher that sets it can
    tell from ``/health`` that the service answering on the port is the one it started.
    """
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["INSTANCE_ID"] = instance or secrets.token_hex(8)
    app.config["API_TOKEN"] = api_token or None
    register_error_handlers(app)


def instance_id() -> str:
    """This app's nonce, reported by ``/health``."""
    return str(current_app.config["INSTANCE_ID"])


def token_required(view: _F) -> _F:
    """Require ``Authorization: Bearer <API_TOKEN>`` when the app has a token; 401 otherwise."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = current_app.config.get("API_TOKEN")
        if expected:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), str(expected).encode()
            ):
                response, status = error_response(
                    401, "unauthorized", "this endpoint needs 'Authorization: Bearer <API_TOKEN>'"
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response, status
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def serve(app: Flask, host: str, port: int, port_setting: str, threads: int = 8) -> None:
    """Serve ``app`` with waitress until interrupted.

    Raises:
        PortInUse: ``host:port`` is taken; the message names ``port_setting`` to change.
    """
    from waitress.server import create_server

    try:
        server = create_server(app, host=host, port=port, threads=threads)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            why = "in use" if exc.errno == errno.EADDRINUSE else "not allowed"
            message = f"port {port} on {host} is {why}; set {port_setting} to another port"
            raise PortInUse(message) from exc
        raise
    log.info("serving on http://%s:%s", host, port)
    server.run()
