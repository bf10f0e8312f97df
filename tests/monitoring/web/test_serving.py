"""The monitoring service's edges: the API token, a busy port, a missing database, reports per
database, and the service served for real by waitress (``python -m monitoring serve``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from config.settings import Settings
from db.connection import database_exists
from monitoring.pipeline.runner import report_folder, run_for_model
from monitoring.web.app import create_app
from tests.monitoring.web.test_service import TEST_SETTINGS, VERSION, assert_json_error, populate

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-token"
# The ports this test module may use.
PORTS = range(5200, 5300)


def free_port() -> int:
    """A port of `PORTS` nothing listens on."""
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m monitoring`` child on ``settings``' database."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NML_DISABLE_USAGE_LOGGING": "1",
        "DB_NAME": settings.db_name,
        "OUTPUT_DIR": str(settings.output_dir),
        "MONITORING_MIN_CHUNK_ROWS": str(TEST_SETTINGS["monitoring_min_chunk_rows"]),
        "MONITORING_CHUNK_PERIOD": str(TEST_SETTINGS["monitoring_chunk_period"]),
        **extra,
    }


def get(url: str, token: str | None = None, timeout: float = 300) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of ``GET url``."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- the API token ---------------------------------------------------------------------------


@pytest.fixture
def guarded(db_settings: Settings) -> FlaskClient:
    """An app with ``API_TOKEN`` set, on an empty database."""
    settings = db_settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    return create_app(settings).test_client()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="longer-token"),
    ],
)
def test_run_monitoring_needs_the_token_when_one_is_set(
    guarded: FlaskClient, headers: dict[str, str]
) -> None:
    response = guarded.get("/run-monitoring", headers=headers)

    assert_json_error(response, 401)
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_right_token_reaches_the_run(guarded: FlaskClient) -> None:
    response = guarded.get("/run-monitoring", headers={"Authorization": f"Bearer {TOKEN}"})

    # Past the token: the empty database has no model to monitor.
    assert "no model has been trained yet" in assert_json_error(response, 404)


def test_health_metrics_and_dashboard_stay_open_with_a_token(guarded: FlaskClient) -> None:
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/metrics").status_code == 200
    assert guarded.get("/").status_code == 200
    plotly_js = guarded.get("/static/plotly.min.js")
    assert plotly_js.status_code == 200
    plotly_js.close()


def test_without_a_token_run_monitoring_is_open(db_settings: Settings) -> None:
    response = create_app(db_settings).test_client().get("/run-monitoring")

    assert_json_error(response, 404)


# --- reports per database --------------------------------------------------------------------


def test_report_folders_of_two_databases_differ(base_settings: Settings) -> None:
    first = base_settings.model_copy(update={"db_name": "first"})
    second = base_settings.model_copy(update={"db_name": "second"})

    assert report_folder(first, VERSION) == base_settings.output_dir / "monitoring/first" / VERSION
    assert report_folder(first, VERSION) != report_folder(second, VERSION)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
def test_two_databases_monitoring_one_version_keep_their_own_reports(
    db_settings: Settings, module_db_settings: Settings
) -> None:
    first = db_settings.model_copy(update=TEST_SETTINGS)
    second = module_db_settings.model_copy(update=TEST_SETTINGS)
    populate(first, seed=7)
    populate(second, seed=8)

    runs = [run_for_model(settings) for settings in (first, second)]

    folders = [run.report.folder for run in runs]
    assert folders[0] is not None and folders[1] is not None
    assert folders[0] != folders[1]
    metrics = [(folder / "metrics.csv").read_text() for folder in folders if folder]
    assert metrics[0] != metrics[1]  # the second run did not overwrite the first's files
    assert (folders[0] / "performance.png").is_file()


# --- serving: a busy port, a missing database, waitress for real -----------------------------


def _serve(settings: Settings, port: int, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitoring", "serve", "--port", str(port)],
        cwd=ROOT,
        env=service_env(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_busy_port_is_one_line_and_exit_1(db_settings: Settings) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        child = _serve(db_settings, port)
        _, stderr = child.communicate(timeout=120)

    assert child.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"error: port {port} on 127.0.0.1 is in use; set MONITORING_PORT to another port"
    ]
    assert "Traceback" not in stderr


def test_serving_a_missing_database_fails_and_creates_nothing(base_settings: Settings) -> None:
    missing = base_settings.model_copy(update={"db_name": f"mon_missing_{os.getpid()}"})

    child = _serve(missing, free_port())
    _, stderr = child.communicate(timeout=120)

    assert child.returncode == 1, stderr
    assert "python -m db init" in stderr
    assert missing.db_name in stderr
    assert "Traceback" not in stderr
    assert not database_exists(missing)


@pytest.fixture
def served(db_settings: Settings) -> Iterator[tuple[str, Settings]]:
    """``python -m monitoring serve`` under waitress on its own populated database, with a
    token; yields its URL once /health answers."""
    settings = db_settings.model_copy(update=TEST_SETTINGS)
    populate(settings)
    port = free_port()
    child = _serve(settings, port, API_TOKEN=TOKEN)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if child.poll() is not None:
                pytest.fail(f"the service exited: {child.communicate()[1][-2000:]}")
            try:
                if get(f"{url}/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        yield url, settings
    finally:
        child.terminate()
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()


@pytest.mark.slow  # a monitoring run, and the report's PNGs by kaleido
def test_the_service_runs_under_waitress(served: tuple[str, Settings]) -> None:
    url, settings = served

    status, health = get(f"{url}/health")
    assert status == 200
    assert set(health) == {"status", "database", "instance_id"}
    assert get(f"{url}/run-monitoring")[0] == 401

    status, body = get(f"{url}/run-monitoring", token=TOKEN)

    assert status == 200, body
    assert body["model_version"] == VERSION
    assert body["run"]["trigger"] == "api"
    assert body["report"]["folder"] == f"monitoring/{settings.db_name}/{VERSION}"
    assert (settings.output_dir / body["report"]["files"]["metrics_csv"]).is_file()
    # The same instance answers: its nonce did not change.
    assert get(f"{url}/health")[1]["instance_id"] == health["instance_id"]
