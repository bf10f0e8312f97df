"""The ingest service started for real (`python -m ingest serve`, waitress) on a private MariaDB.

The database server is this module's own, so the tests can stop it (SIGSTOP: a hung server,
not a dead one) and let it go on (SIGCONT). Every request has a client timeout, so a frozen
service fails a test instead of hanging it; the latencies measured during the hang are printed
(`pytest -s`) but not asserted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import PROJECT_ROOT, Settings, load_settings
from db.connection import connection, transaction
from db.migrate import init_database
from db.schema import CDR_COLUMNS
from db.server import LocalServer, start_local_server, stop_local_server
from ingest.client import run_stream
from ingest.generator import GeneratorConfig
from ingest.seeding import seed_from_generator

pytestmark = pytest.mark.slow

HISTORY = GeneratorConfig(subscribers=50, days=10)
FIRST_STREAM_DAY = "2024-01-11"
DB_PORTS = range(3401, 3410)
SERVICE_PORTS = range(5100, 5200)
CLIENT_TIMEOUT = 3.0
STATEMENT_TIMEOUT = 1.5
WAIT_SECONDS = 90.0


def _free_port(ports: range) -> int:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports}")


@dataclass(frozen=True)
class PrivateServer:
    settings: Settings
    local: LocalServer

    @property
    def pid(self) -> int:
        return int(self.local.pid_file.read_text().strip())

    def hang(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def crash_and_restart(self, down_seconds: float) -> None:
        """Kill the server outright (SIGKILL), wait, and start it again on its port."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        time.sleep(down_seconds)
        start_local_server(self.local, self.settings.db_port)


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    """A MariaDB of this module's own, seeded with a small history."""
    local = LocalServer(tmp_path_factory.mktemp("mariadb"))
    port = _free_port(DB_PORTS)
    start_local_server(local, port)
    server = PrivateServer(
        load_settings(
            db_host="127.0.0.1",
            db_port=port,
            db_user="root",
            db_password="",
            db_name="ingest_service_test",
            db_socket=None,
        ),
        local,
    )
    try:
        init_database(server.settings)
        seed_from_generator(server.settings, HISTORY, progress=False)
        yield server
    finally:
        with contextlib.suppress(OSError, ValueError):
            server.resume()
        stop_local_server(local)


@dataclass(frozen=True)
class Service:
    url: str
    instance_id: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def service(
    private_server: PrivateServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """`python -m ingest serve` on the private server, with short statement timeouts."""
    port = _free_port(SERVICE_PORTS)
    nonce = secrets.token_hex(8)
    db = private_server.settings
    env = {
        **{k: v for k, v in os.environ.items() if k != "API_TOKEN"},
        "PYTHONPATH": str(PROJECT_ROOT),
        "DB_HOST": db.db_host,
        "DB_PORT": str(db.db_port),
        "DB_USER": db.db_user,
        "DB_PASSWORD": "",
        "DB_NAME": db.db_name,
        "INGEST_HOST": "127.0.0.1",
        "INGEST_PORT": str(port),
        "INSTANCE_ID": nonce,
        "STREAM_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
        "DB_CONNECT_TIMEOUT": "1",
        "STREAM_RETRY_INITIAL_BACKOFF": "0.1",
        "STREAM_RETRY_MAX_BACKOFF": "0.5",
        "STREAM_RETRY_MAX_SECONDS": "120",
    }
    log_path = tmp_path_factory.mktemp("service") / "ingest.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = Service(f"http://127.0.0.1:{port}", nonce, process)
    try:
        _wait_until_serving(running, log_path)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(service: Service, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"the service exited: {log_path.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            status, body, _ = _request(service, "GET", "/health")
            if status == 200:
                # the service answering is the one this fixture started
                assert body["instance_id"] == service.instance_id
                return
        time.sleep(0.2)
    pytest.fail(f"the service did not answer: {log_path.read_text(errors='replace')[-2000:]}")


def _request(
    service: Service, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any, float]:
    """Status, decoded body and seconds taken; raises when no answer within CLIENT_TIMEOUT."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        service.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    seconds = time.monotonic() - started
    text = raw.decode()
    return status, json.loads(text) if text.startswith("{") else text, seconds


def _status(service: Service) -> dict[str, Any]:
    status, body, _ = _request(service, "GET", "/stream_status")
    assert status == 200
    result: dict[str, Any] = body
    return result


def _wait(service: Service, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status = _status(service)
        if done(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS} s: {status}")
        time.sleep(0.1)


def _rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _stream_checksum(settings: Settings) -> tuple[int, str]:
    """Row count and a digest of every streamed row, in a fixed order."""
    columns = ", ".join(CDR_COLUMNS)
    rows = _rows(
        settings,
        f"SELECT {columns} FROM DP_CDR_Data WHERE DP_DATE >= %s ORDER BY {columns}",
        (FIRST_STREAM_DAY,),
    )
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _batches(settings: Settings, stream_id: str) -> dict[int, int]:
    return dict(
        _rows(
            settings,
            "SELECT batch_no, row_count FROM ingest_batches WHERE source_id = %s",
            (stream_id,),
        )
    )


def test_a_stream_runs_through_the_service_and_a_rerun_changes_nothing(
    private_server: PrivateServer, service: Service
) -> None:
    request = {
        "batch_size": 40,
        "num_batches": 3,
        "interval": 0,
        "clock": "simulated",
        "seed": 5,
        "stream_id": "served",
    }
    before = _stream_checksum(private_server.settings)

    final = run_stream(service.url, request, lambda _: None, poll_seconds=0.1)
    after = _stream_checksum(private_server.settings)
    rerun = run_stream(service.url, request, lambda _: None, poll_seconds=0.1)

    assert final["state"] == "completed"
    assert final["rows_done"] == 120
    assert after[0] == before[0] + 120
    assert _batches(private_server.settings, "served") == dict.fromkeys(range(3), 40)
    assert (rerun["state"], rerun["rows_done"], rerun["batches_skipped"]) == ("completed", 0, 3)
    assert _stream_checksum(private_server.settings) == after


def _measure(service: Service, latencies: dict[str, list[float]]) -> dict[str, Any]:
    """One request to each read endpoint; every one must answer within the client timeout."""
    answers = {}
    for path in ("/stream_status", "/health", "/metrics"):
        status, body, seconds = _request(service, "GET", path)
        latencies.setdefault(path, []).append(seconds)
        answers[path] = (status, body)
    assert answers["/stream_status"][0] == 200
    assert answers["/metrics"][0] == 200
    health_status, health = answers["/health"]
    assert health_status == 503
    assert health["error"] == "database_unavailable"
    assert health["instance_id"] == service.instance_id
    assert "@" not in json.dumps(health)
    return answers


def _report(latencies: dict[str, list[float]]) -> None:
    for path, seconds in latencies.items():
        print(
            f"during the hang: {path}: {len(seconds)} requests, "
            f"max {max(seconds):.3f} s, mean {sum(seconds) / len(seconds):.3f} s"
        )


def test_a_hung_database_freezes_no_endpoint_and_the_stream_resumes_losing_nothing(
    private_server: PrivateServer, service: Service
) -> None:
    db = private_server.settings
    before = _stream_checksum(db)[0]
    status, started, _ = _request(
        service,
        "POST",
        "/start_stream",
        {
            "batch_size": 200,
            "num_batches": 15,
            "interval": 0.2,
            "clock": "simulated",
            "seed": 8,
            "stream_id": "hung",
        },
    )
    assert status == 202, started
    _wait(service, lambda s: s["batches_done"] >= 2, "two batches")
    latencies: dict[str, list[float]] = {}

    private_server.hang()
    try:
        _measure(service, latencies)
        deadline = time.monotonic() + WAIT_SECONDS
        while (current := _measure(service, latencies)["/stream_status"][1])["state"] != "retrying":
            assert current["state"] == "running", current
            assert time.monotonic() < deadline, current
            time.sleep(0.1)
        for _ in range(5):
            _measure(service, latencies)
            time.sleep(0.2)
    finally:
        private_server.resume()
    final = _wait(service, lambda s: s["state"] in {"completed", "stopped", "failed"}, "end")
    _report(latencies)

    assert current["last_error"]["code"] == "database_unavailable"
    assert "@" not in json.dumps(current)
    assert final["state"] == "completed", final
    assert final["retries"] >= 1
    assert _batches(db, "hung") == dict.fromkeys(range(15), 200)
    assert _stream_checksum(db)[0] == before + 15 * 200
    duplicates = _rows(
        db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM DP_CDR_Data WHERE DP_DATE >= %s "
        f"GROUP BY {', '.join(CDR_COLUMNS)} HAVING COUNT(*) > 1) AS d",
        (FIRST_STREAM_DAY,),
    )
    assert duplicates == [(0,)]


def test_a_stream_can_be_stopped_while_the_database_hangs(
    private_server: PrivateServer, service: Service
) -> None:
    db = private_server.settings
    status, started, _ = _request(
        service,
        "POST",
        "/start_stream",
        {"batch_size": 100, "num_batches": 50, "interval": 0.2, "stream_id": "halted"},
    )
    assert status == 202, started
    _wait(service, lambda s: s["batches_done"] >= 1, "a first batch")
    latencies: dict[str, list[float]] = {}

    private_server.hang()
    try:
        _measure(service, latencies)
        stop_status, stopping, seconds = _request(service, "POST", "/stop_stream")
        latencies["/stop_stream"] = [seconds]
        _measure(service, latencies)
    finally:
        private_server.resume()
    final = _wait(service, lambda s: s["state"] in {"completed", "stopped", "failed"}, "end")
    _report(latencies)

    assert stop_status == 202
    assert stopping["state"] == "stopping"
    assert final["state"] == "stopped"
    logged = _batches(db, "halted")
    assert sorted(logged) == list(range(len(logged)))
    assert len(logged) in (final["batches_done"], final["batches_done"] + 1)


def test_starting_a_stream_while_the_database_hangs_answers_503(
    private_server: PrivateServer, service: Service
) -> None:
    assert _status(service)["state"] in {"idle", "completed", "stopped", "failed"}

    private_server.hang()
    try:
        status, body, seconds = _request(
            service, "POST", "/start_stream", {"batch_size": 10, "stream_id": "too-late"}
        )
        health_status, _, _ = _request(service, "GET", "/health")
    finally:
        private_server.resume()
    print(f"during the hang: POST /start_stream answered {status} in {seconds:.3f} s")

    assert status == 503
    assert body["error"] == "database_unavailable"
    assert "@" not in json.dumps(body)
    assert health_status == 503


def test_a_stream_rides_out_a_killed_and_restarted_server_exactly_once(
    private_server: PrivateServer, service: Service
) -> None:
    db = private_server.settings
    before = _stream_checksum(db)[0]
    status, started, _ = _request(
        service,
        "POST",
        "/start_stream",
        {
            "batch_size": 200,
            "num_batches": 12,
            "interval": 0.1,
            "clock": "simulated",
            "seed": 9,
            "stream_id": "crashed",
        },
    )
    assert status == 202, started
    _wait(service, lambda s: s["batches_done"] >= 2, "two batches")

    private_server.crash_and_restart(down_seconds=1.0)
    final = _wait(service, lambda s: s["state"] in {"completed", "stopped", "failed"}, "end")

    assert final["state"] == "completed", final
    assert final["retries"] >= 1
    assert _batches(db, "crashed") == dict.fromkeys(range(12), 200)
    # the batches before the crash plus the ones after: none lost, none twice
    assert _stream_checksum(db)[0] == before + 12 * 200
