"""A small client of the streaming simulator's API: start a stream and follow it to its end."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

FINAL_STATES = frozenset({"completed", "stopped", "failed"})


class ClientError(RuntimeError):
    """The API answered with an error or could not be reached."""


class WrongService(ClientError):
    """The port is answered by a service other than the one the caller started."""


def call(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 30,
    token: str | None = None,
) -> Any:
    """Send one request and return the decoded JSON answer.

    Args:
        base_url: The service's URL.
        method: The HTTP method.
        path: The endpoint's path.
        body: A JSON body to send.
        timeout: Seconds to wait for the answer.
        token: The service's ``API_TOKEN``, sent as a bearer token when given.

    Raises:
        ClientError: with the API's own error message on a 4xx/5xx, or when unreachable.
    """
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
            message = answer.get("message") or answer.get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise ClientError(f"{method} {path}: {exc.code} {message}") from exc
    except urllib.error.URLError as exc:
        raise ClientError(f"{base_url} is unreachable: {exc.reason}") from exc


def wait_until_healthy(base_url: str, timeout: float, instance_id: str | None = None) -> None:
    """Poll `GET /health` until it answers 200, or raise :class:`ClientError`.

    Args:
        base_url: The service's URL.
        timeout: Seconds to keep trying.
        instance_id: The ``INSTANCE_ID`` the caller started the service with: another process
            answering on the port (its ``/health`` reports another id) fails at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = call(base_url, "GET", "/health", timeout=5)
            answered = health.get("instance_id") if isinstance(health, dict) else None
            if instance_id is not None and answered != instance_id:
                raise WrongService(
                    f"{base_url} is answered by another service (instance {answered!r}), "
                    "not the one started; is the port taken?"
                )
            return
        except WrongService:
            raise
        except ClientError as exc:
            if time.monotonic() > deadline:
                raise ClientError(f"{base_url} not healthy after {timeout:.0f} s: {exc}") from exc
            time.sleep(0.3)


def run_stream(
    base_url: str,
    request: dict[str, Any],
    on_progress: Callable[[dict[str, Any]], None],
    poll_seconds: float = 0.5,
    token: str | None = None,
) -> dict[str, Any]:
    """Start a stream and poll its status until it ends; return the final status."""
    started = call(base_url, "POST", "/start_stream", request, token=token)
    stream_id = started["stream_id"]
    last_seen: tuple[Any, ...] = ()
    while True:
        status = call(base_url, "GET", "/stream_status")
        if status.get("stream_id") != stream_id:
            raise ClientError(f"stream {stream_id} was replaced by {status.get('stream_id')}")
        seen = (status["state"], status["batches_done"], describe_error(status["last_error"]))
        if seen != last_seen:
            on_progress(status)
            last_seen = seen
        if status["state"] in FINAL_STATES:
            return dict(status)
        time.sleep(poll_seconds)


def describe_progress(status: dict[str, Any]) -> str:
    """One line for a progress update."""
    written = status["batches_done"] + status.get("batches_skipped", 0)
    line = (
        f"[{status['stream_id']}] {status['state']}: batch {written}"
        f"/{status['batches_total']}, {status['rows_done']} rows"
    )
    if status.get("insert_rows_per_second"):
        line += f", {status['insert_rows_per_second']:,.0f} rows/s inserting"
    if status.get("batches_skipped"):
        line += f" ({status['batches_skipped']} batch(es) written by an earlier run)"
    if status.get("last_error"):
        line += f" (last error: {describe_error(status['last_error'])})"
    return line


def describe_error(error: Any) -> str | None:
    """The text of a status's ``last_error`` (``{"code", "message"}``), or None."""
    if not error:
        return None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code"))
    return str(error)
