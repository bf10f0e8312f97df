"""`python -m ingest` as a user runs it: exit codes, help text and a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from config.settings import PROJECT_ROOT, Settings

SERVICE_PORTS = range(5100, 5200)


def _ingest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port in this test's range that another process (this one) listens on."""
    for port in SERVICE_PORTS:
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            holder.bind(("127.0.0.1", port))
        except OSError:
            holder.close()
            continue
        holder.listen()
        try:
            yield port
        finally:
            holder.close()
        return
    pytest.skip("no free port in 5100-5199")


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_1(
    db_settings: Settings, busy_port: int
) -> None:
    result = _ingest(
        "serve", "--port", str(busy_port), DB_NAME=db_settings.db_name, INGEST_HOST="127.0.0.1"
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: port {busy_port} on 127.0.0.1 is in use; set INGEST_PORT to another port"
    ]


def test_help_shows_every_flags_default() -> None:
    result = _ingest("stream", "--help")

    assert result.returncode == 0
    assert "(default: 1000)" in result.stdout
    assert "(default: realtime)" in result.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("stream", "--batch-size", "0"), {}, id="zero-batch-size"),
        pytest.param(("stream", "--scenario", "{not json"), {}, id="bad-scenario"),
        pytest.param(("seed", "--churn-rate", "5"), {}, id="churn-rate-above-one"),
        pytest.param(("serve",), {"DB_NAME": "my-db"}, id="bad-db-name"),
    ],
)
def test_usage_and_configuration_mistakes_exit_2(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    result = _ingest(*args, **env)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error" in result.stderr


def test_an_unreachable_simulator_exits_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]

    result = _ingest("stream", "--url", f"http://127.0.0.1:{closed}", "--num-batches", "1")

    assert result.returncode == 1
    assert "unreachable" in result.stderr
    assert "Traceback" not in result.stderr
