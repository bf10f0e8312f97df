"""Bounded polling of a stream's status, for tests that wait on a background stream.

The status is whatever ``StreamRunner.status()`` or ``GET /stream_status`` returns: a dict
with at least a ``state``. Every wait has a hard timeout and fails the test with the last
status seen, so a stuck stream shows what it was doing instead of hanging the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

FINAL_STATES = frozenset({"completed", "stopped", "failed"})

Status = dict[str, Any]


def wait_for(
    status: Callable[[], Status],
    done: Callable[[Status], bool],
    what: str,
    *,
    timeout: float,
    interval: float,
) -> Status:
    """Poll ``status`` until ``done`` holds and return that status.

    Fails the test when the stream reaches a final state first ("the stream ended before
    <what>") or after ``timeout`` seconds ("no <what> within <timeout> s").
    """
    return _poll(
        status,
        done,
        timeout=timeout,
        interval=interval,
        timeout_message=f"no {what} within {timeout} s",
        ended_message=f"the stream ended before {what}",
    )


def wait_until_final(status: Callable[[], Status], *, timeout: float, interval: float) -> Status:
    """Poll ``status`` until the stream is in a final state and return that status.

    Fails the test after ``timeout`` seconds ("the stream did not end within <timeout> s").
    """
    return _poll(
        status,
        lambda current: current["state"] in FINAL_STATES,
        timeout=timeout,
        interval=interval,
        timeout_message=f"the stream did not end within {timeout} s",
        ended_message=None,
    )


def _poll(
    status: Callable[[], Status],
    done: Callable[[Status], bool],
    *,
    timeout: float,
    interval: float,
    timeout_message: str,
    ended_message: str | None,
) -> Status:
    deadline = time.monotonic() + timeout
    while True:
        current = status()
        if done(current):
            return current
        if ended_message is not None and current["state"] in FINAL_STATES:
            pytest.fail(f"{ended_message}: {current}")
        if time.monotonic() > deadline:
            pytest.fail(f"{timeout_message}: {current}")
        time.sleep(interval)
