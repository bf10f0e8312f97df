"""Tests for the ingest API through Flask's test client, against the real database.

Streams run in the app's background thread; every test polls `/stream_status` with a hard
timeout and the ``client_for`` fixture stops whatever still runs when the test ends.
"""

from __future__ import annotations

import io
import socket
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from config.settings import Settings
from db.connection import connection, transaction
from ingest import client as client_module
from ingest.api import parse_start_request
from ingest.app import create_app
from ingest.generator import GeneratorConfig
from ingest.scenario import Scenario
from ingest.seeding import seed_from_generator
from tests.polling import wait_for, wait_until_final
from tests.tcp_proxy import TcpProxy

# History of the seeding below: 2024-01-01 .. 2024-01-10, so simulated streams start 01-11.
HISTORY = GeneratorConfig(subscribers=50, days=10)
FIRST_SIMULATED_DAY = date(2024, 1, 11)
LIMITS = {"stream_max_batch_size": 500, "stream_max_batches": 50, "stream_max_interval": 10.0}
FAST_RETRY = {
    "stream_retry_initial_backoff": 0.05,
    "stream_retry_max_backoff": 0.2,
    "stream_retry_max_seconds": 5.0,
}
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.02

ClientFor = Callable[[Settings], FlaskClient]


@pytest.fixture
def client_for() -> Iterator[ClientFor]:
    """Test clients of fresh apps; their streams are stopped when the test ends.

    Request it after the database fixture, so that it is torn down first.
    """
    apps: list[Flask] = []

    def make(settings: Settings) -> FlaskClient:
        app = create_app(settings)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["ingest.streams"].shutdown(timeout=WAIT_SECONDS)


@pytest.fixture(scope="module")
def seeded_module(module_db_settings: Settings) -> Settings:
    """A seeded database shared by the tests that must not write, with small maxima."""
    seed_from_generator(module_db_settings, HISTORY, progress=False)
    return module_db_settings.model_copy(update={**LIMITS, **FAST_RETRY})


@pytest.fixture
def module_client(seeded_module: Settings, client_for: ClientFor) -> FlaskClient:
    """A fresh app on the shared seeded database."""
    return client_for(seeded_module)


@pytest.fixture
def seeded(db_settings: Settings) -> Settings:
    """A seeded database of this test's own, for tests that run streams."""
    seed_from_generator(db_settings, HISTORY, progress=False)
    return db_settings.model_copy(update=FAST_RETRY)


@pytest.fixture
def client(seeded: Settings, client_for: ClientFor) -> FlaskClient:
    """A fresh app on this test's own seeded database."""
    return client_for(seeded)


def _scalar(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        (value,) = cursor.fetchone()
    return value


def _rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _table_counts(settings: Settings) -> dict[str, int]:
    return {
        table: int(_scalar(settings, f"SELECT COUNT(*) FROM {table}"))
        for table in ("DP_CDR_Data", "ingest_batches", "ingest_sources")
    }


def _status(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/stream_status")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def _wait_for(
    client: FlaskClient, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll `/stream_status` until ``done``; fail after `WAIT_SECONDS` or on a final state."""
    return wait_for(
        lambda: _status(client), done, what, timeout=WAIT_SECONDS, interval=POLL_SECONDS
    )


def _wait_until_final(client: FlaskClient) -> dict[str, Any]:
    return wait_until_final(lambda: _status(client), timeout=WAIT_SECONDS, interval=POLL_SECONDS)


def _start(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/start_stream", json=body)
    assert response.status_code == 202, response.get_data(as_text=True)
    started: dict[str, Any] = response.get_json()
    return started


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.is_json, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


# --- health ---------------------------------------------------------------------------------


def test_health_is_ok_while_the_database_answers(module_client: FlaskClient) -> None:
    response = module_client.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body == {"status": "ok", "database": "reachable", "instance_id": body["instance_id"]}
    assert body["instance_id"]


def test_health_is_503_json_without_internals_when_the_database_is_down(
    base_settings: Settings, client_for: ClientFor
) -> None:
    down = base_settings.model_copy(update={"db_port": _closed_port(), "db_connect_timeout": 2})

    response = client_for(down).get("/health")

    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["database"], body["error"]) == (
        "unavailable",
        "unreachable",
        "database_unavailable",
    )
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert str(down.db_port) not in text


def test_start_stream_is_503_json_when_the_database_is_down(
    base_settings: Settings, client_for: ClientFor
) -> None:
    down = base_settings.model_copy(update={"db_port": _closed_port(), "db_connect_timeout": 2})

    response = client_for(down).post("/start_stream", json={"batch_size": 10})

    body = _assert_json_error(response, 503)
    assert body["error"] == "database_unavailable"
    assert str(down.db_port) not in response.get_data(as_text=True)


# --- POST /start_stream: bad input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param("batch_size=10", "text/plain", id="plain-text"),
        pytest.param("batch_size=10", "application/x-www-form-urlencoded", id="form"),
        pytest.param('{"batch_size": 10', "application/json", id="broken-json"),
        pytest.param("", "application/json", id="empty-body"),
        pytest.param("null", "application/json", id="json-null"),
        pytest.param('{"seed": 1' + "0" * 5000 + "}", "application/json", id="int-too-long"),
    ],
)
def test_start_stream_rejects_a_body_that_is_not_json(
    seeded_module: Settings, module_client: FlaskClient, data: str, content_type: str
) -> None:
    before = _table_counts(seeded_module)

    response = module_client.post("/start_stream", data=data, content_type=content_type)

    body = _assert_json_error(response, 400)
    assert "JSON" in body["message"]
    assert _table_counts(seeded_module) == before


@pytest.mark.parametrize(
    "payload",
    [[{"batch_size": 10}], [], 5, 2.5, "batch_size", True],
    ids=["list", "empty-list", "int", "float", "string", "bool"],
)
def test_start_stream_rejects_json_that_is_not_an_object(
    seeded_module: Settings, module_client: FlaskClient, payload: Any
) -> None:
    before = _table_counts(seeded_module)

    response = module_client.post("/start_stream", json=payload)

    body = _assert_json_error(response, 400)
    assert "JSON object" in body["message"]
    assert _table_counts(seeded_module) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"batch_size": "100"}, "batch_size", id="string-batch-size"),
        pytest.param({"num_batches": "3"}, "num_batches", id="string-num-batches"),
        pytest.param({"interval": "fast"}, "interval", id="string-interval"),
        pytest.param({"batch_size": None}, "batch_size", id="null-batch-size"),
        pytest.param({"batch_size": True}, "batch_size", id="bool-batch-size"),
        pytest.param({"num_batches": False}, "num_batches", id="bool-num-batches"),
        pytest.param({"interval": True}, "interval", id="bool-interval"),
        pytest.param({"num_batches": 2.5}, "num_batches", id="float-num-batches"),
        pytest.param({"batch_size": 10.0}, "batch_size", id="whole-float-batch-size"),
        pytest.param({"seed": 1.5}, "seed", id="float-seed"),
        pytest.param({"batch_size": 0}, "batch_size", id="zero-batch-size"),
        pytest.param({"num_batches": -1}, "num_batches", id="negative-num-batches"),
        pytest.param({"num_batches": 0}, "num_batches", id="zero-num-batches"),
        pytest.param({"interval": -0.5}, "interval", id="negative-interval"),
        pytest.param({"seed": -1}, "seed", id="negative-seed"),
        pytest.param({"seed": 2**63}, "seed", id="seed-too-big"),
        pytest.param({"batch_size": 501}, "batch_size", id="batch-size-above-max"),
        pytest.param({"batch_size": 10**30}, "batch_size", id="batch-size-huge"),
        pytest.param({"num_batches": 51}, "num_batches", id="num-batches-above-max"),
        pytest.param({"interval": 10.5}, "interval", id="interval-above-max"),
        pytest.param({"bogus": 1}, "bogus", id="unknown-field"),
        pytest.param({"batchSize": 10}, "batchSize", id="misspelt-field"),
        pytest.param({"clock": "lunar"}, "clock", id="bad-clock"),
        pytest.param({"clock": 1}, "clock", id="numeric-clock"),
        pytest.param({"scenario": "drift"}, "scenario", id="scenario-not-object"),
        pytest.param({"scenario": None}, "scenario", id="null-scenario"),
        pytest.param({"scenario": {"time_travel": {}}}, "scenario.time_travel", id="unknown-knob"),
        pytest.param(
            {"scenario": {"covariate_drift": {"data_factor": -2}}},
            "scenario.covariate_drift.data_factor",
            id="negative-factor",
        ),
        pytest.param(
            {"scenario": {"churn_rate_change": {"factor": 0}}},
            "scenario.churn_rate_change.factor",
            id="zero-factor",
        ),
        pytest.param(
            {"scenario": {"concept_drift": {"strength": 1.5}}},
            "scenario.concept_drift.strength",
            id="strength-above-one",
        ),
        pytest.param(
            {"scenario": {"covariate_drift": {"from_step": -1}}},
            "scenario.covariate_drift.from_step",
            id="negative-from-step",
        ),
        pytest.param(
            {"scenario": {"covariate_drift": {"speed": 2}}},
            "scenario.covariate_drift.speed",
            id="unknown-knob-field",
        ),
        pytest.param({"stream_id": "../etc/passwd"}, "stream_id", id="path-stream-id"),
        pytest.param({"stream_id": "has space"}, "stream_id", id="space-stream-id"),
        pytest.param({"stream_id": "-leading-dash"}, "stream_id", id="dash-stream-id"),
        pytest.param({"stream_id": ""}, "stream_id", id="empty-stream-id"),
        pytest.param({"stream_id": "s" * 65}, "stream_id", id="long-stream-id"),
        pytest.param({"stream_id": 42}, "stream_id", id="numeric-stream-id"),
    ],
)
def test_start_stream_rejects_a_bad_field_naming_it(
    seeded_module: Settings, module_client: FlaskClient, payload: dict[str, Any], field: str
) -> None:
    before = _table_counts(seeded_module)
    client = module_client

    response = client.post("/start_stream", json={"batch_size": 10, "interval": 0, **payload})

    body = _assert_json_error(response, 400)
    assert [error["field"] for error in body["errors"]] == [field]
    assert all(error["message"] for error in body["errors"])
    assert field in body["message"]
    assert _table_counts(seeded_module) == before
    assert _status(client) == {"state": "idle", "stream_id": None}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"batch_size": 10, "interval": NaN}', "interval"),
        ('{"batch_size": 10, "interval": Infinity}', "interval"),
        ('{"batch_size": 10, "interval": -Infinity}', "interval"),
        ('{"batch_size": 1e999, "interval": 0}', "batch_size"),
    ],
)
def test_start_stream_rejects_non_finite_numbers(
    seeded_module: Settings, module_client: FlaskClient, raw: str, field: str
) -> None:
    before = _table_counts(seeded_module)

    response = module_client.post("/start_stream", data=raw, content_type="application/json")

    body = _assert_json_error(response, 400)
    assert [error["field"] for error in body["errors"]] == [field]
    assert _table_counts(seeded_module) == before


def test_start_stream_names_every_bad_field_at_once(module_client: FlaskClient) -> None:
    response = module_client.post(
        "/start_stream", json={"batch_size": 0, "num_batches": "x", "clock": "lunar", "extra": 1}
    )

    body = _assert_json_error(response, 400)
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"batch_size", "num_batches", "clock", "extra"}


def test_start_stream_names_every_field_above_its_maximum(module_client: FlaskClient) -> None:
    response = module_client.post(
        "/start_stream", json={"batch_size": 501, "num_batches": 51, "interval": 11}
    )

    body = _assert_json_error(response, 400)
    assert [error["field"] for error in body["errors"]] == ["batch_size", "num_batches", "interval"]
    assert "at most 500" in body["errors"][0]["message"]


def test_start_stream_rejects_deeply_nested_json_without_500(module_client: FlaskClient) -> None:
    response = module_client.post(
        "/start_stream", data="[" * 100_000, content_type="application/json"
    )

    _assert_json_error(response, 400)


# --- POST /start_stream: accepted -------------------------------------------------------------


def test_parse_start_request_fills_the_seed_projects_defaults(base_settings: Settings) -> None:
    spec = parse_start_request({}, base_settings)

    assert spec.batch_size == 1000
    assert spec.num_batches == 10
    assert spec.interval == 60
    assert spec.seed is None
    assert spec.clock == "realtime"
    assert spec.scenario == Scenario()
    assert spec.stream_id is None


def test_start_stream_accepts_an_empty_object_with_the_defaults(client: FlaskClient) -> None:
    response = client.post("/start_stream", json={})
    stop = client.post("/stop_stream")

    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"stream_id", "state", "batches_total", "seed", "status_url"}
    assert body["stream_id"].startswith("s-")
    assert body["state"] == "running"
    assert body["batches_total"] == 10
    assert isinstance(body["seed"], int)
    assert body["status_url"] == "/stream_status"
    assert stop.status_code == 202
    final = _wait_until_final(client)
    assert final["stream_id"] == body["stream_id"]
    assert final["state"] == "stopped"
    assert final["batch_size"] == 1000
    assert final["clock"] == "realtime"
    # the 60 s default interval was cut short: at most the first batch went in
    assert final["batches_done"] <= 1
    assert final["rows_done"] == 1000 * final["batches_done"]


def test_start_stream_is_409_while_a_stream_runs(seeded: Settings, client: FlaskClient) -> None:
    first = _start(client, batch_size=20, num_batches=5, interval=5)
    sources = _table_counts(seeded)["ingest_sources"]

    response = client.post(
        "/start_stream", json={"batch_size": 20, "interval": 0, "stream_id": "second"}
    )

    body = _assert_json_error(response, 409)
    assert first["stream_id"] in body["message"]
    assert _table_counts(seeded)["ingest_sources"] == sources
    assert _status(client)["stream_id"] == first["stream_id"]


def test_start_stream_is_409_when_there_is_no_history(
    db_settings: Settings, client_for: ClientFor
) -> None:
    response = client_for(db_settings).post("/start_stream", json={"batch_size": 10})

    body = _assert_json_error(response, 409)
    assert "empty" in body["message"]
    assert _table_counts(db_settings) == dict.fromkeys(
        ("DP_CDR_Data", "ingest_batches", "ingest_sources"), 0
    )


def test_start_stream_is_409_for_the_id_of_a_seeding_load(
    db_settings: Settings, client_for: ClientFor
) -> None:
    report = seed_from_generator(db_settings, HISTORY, progress=False)
    before = _table_counts(db_settings)

    response = client_for(db_settings).post(
        "/start_stream", json={"batch_size": 10, "stream_id": report.source_id}
    )

    body = _assert_json_error(response, 409)
    assert "generator" in body["message"]
    assert _table_counts(db_settings) == before


# --- GET /stream_status, POST /stop_stream ----------------------------------------------------


def test_stream_status_is_idle_before_any_stream(module_client: FlaskClient) -> None:
    assert _status(module_client) == {"state": "idle", "stream_id": None}


def test_stop_stream_is_409_when_no_stream_runs(module_client: FlaskClient) -> None:
    body = _assert_json_error(module_client.post("/stop_stream"), 409)
    assert "no stream" in body["message"]


def test_a_completed_stream_wrote_every_batch_exactly_once(
    seeded: Settings, client: FlaskClient
) -> None:
    before = _table_counts(seeded)

    started = _start(client, batch_size=60, num_batches=4, interval=0, seed=7, stream_id="done-4")
    status = _wait_until_final(client)

    assert started["stream_id"] == "done-4"
    assert started["seed"] == 7
    assert status["state"] == "completed"
    assert status["stream_id"] == "done-4"
    assert status["batches_total"] == 4
    assert status["batches_done"] == 4
    assert status["batches_skipped"] == 0
    assert status["rows_done"] == 240
    assert status["rows_per_second"] > 0
    assert status["retries"] == 0
    assert status["last_error"] is None
    assert status["current_batch"] is None
    assert status["finished_at"] is not None
    after = _table_counts(seeded)
    assert after["DP_CDR_Data"] - before["DP_CDR_Data"] == 240
    assert after["ingest_sources"] - before["ingest_sources"] == 1
    batches = _rows(
        seeded,
        "SELECT batch_no, row_count FROM ingest_batches WHERE source_id = %s ORDER BY batch_no",
        ("done-4",),
    )
    assert batches == [(0, 60), (1, 60), (2, 60), (3, 60)]
    source = _rows(
        seeded,
        "SELECT kind, state, last_error, total_batches FROM ingest_sources WHERE source_id = %s",
        ("done-4",),
    )
    assert source == [("stream", "completed", None, 4)]
    # once it has ended, nothing runs and a new stream may start
    _assert_json_error(client.post("/stop_stream"), 409)


def test_a_realtime_stream_stamps_its_rows_around_now(
    seeded: Settings, client: FlaskClient
) -> None:

    started_at = datetime.now()
    _start(client, batch_size=50, num_batches=2, interval=0, clock="realtime", stream_id="rt")
    assert _wait_until_final(client)["state"] == "completed"
    ended_at = datetime.now()

    first, last, count = _rows(
        seeded,
        "SELECT MIN(DP_DATE), MAX(DP_DATE), COUNT(*) FROM DP_CDR_Data WHERE DP_DATE > %s",
        (datetime(2024, 1, 11),),
    )[0]
    assert count == 100
    assert (started_at - first).total_seconds() <= 301
    assert (last - ended_at).total_seconds() <= 301


def test_a_simulated_stream_continues_the_history_day_by_day(
    seeded: Settings, client: FlaskClient
) -> None:

    _start(client, batch_size=40, num_batches=3, interval=0, clock="simulated", stream_id="sim-3")
    assert _wait_until_final(client)["state"] == "completed"

    per_day = _rows(
        seeded,
        "SELECT DATE(DP_DATE), COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= %s "
        "GROUP BY DATE(DP_DATE) ORDER BY 1",
        (FIRST_SIMULATED_DAY,),
    )
    # Whole days of the ~50 subscribers, cut into 40-row batches: 120 rows over 3 days.
    assert [day for day, _ in per_day] == [date(2024, 1, 11), date(2024, 1, 12), date(2024, 1, 13)]
    assert sum(rows for _, rows in per_day) == 120
    assert all(40 < rows <= 60 for _, rows in per_day[:-1])
    anchor = _scalar(seeded, "SELECT anchor_date FROM ingest_sources WHERE source_id = 'sim-3'")
    assert anchor == datetime(2024, 1, 11)


def test_stop_stream_ends_the_stream_after_its_current_batch(
    seeded: Settings, client: FlaskClient
) -> None:
    _start(client, batch_size=50, num_batches=40, interval=0.5, clock="simulated", stream_id="halt")
    _wait_for(client, lambda s: s["batches_done"] >= 1, "a first batch")

    response = client.post("/stop_stream")

    assert response.status_code == 202
    assert response.get_json()["state"] in {"stopping", "stopped"}
    status = _wait_until_final(client)
    assert status["state"] == "stopped"
    assert 1 <= status["batches_done"] < 40
    assert status["last_error"] is None
    done = status["batches_done"]
    logged = _scalar(seeded, "SELECT COUNT(*) FROM ingest_batches WHERE source_id = 'halt'")
    streamed = _scalar(
        seeded, "SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= %s", (FIRST_SIMULATED_DAY,)
    )
    assert logged == done
    assert streamed == 50 * done
    assert _scalar(seeded, "SELECT state FROM ingest_sources WHERE source_id = 'halt'") == "stopped"
    _assert_json_error(client.post("/stop_stream"), 409)


def test_stream_status_reports_progress_while_running(
    seeded: Settings, client: FlaskClient
) -> None:
    _start(client, batch_size=30, num_batches=40, interval=0.3, seed=5, stream_id="watch")

    status = _wait_for(client, lambda s: s["batches_done"] >= 2, "two batches")

    assert status["state"] == "running"
    assert status["stream_id"] == "watch"
    assert status["clock"] == "realtime"
    assert status["batch_size"] == 30
    assert status["batches_total"] == 40
    assert status["rows_done"] == 30 * status["batches_done"]
    assert status["rows_per_second"] > 0
    assert status["insert_rows_per_second"] > 0
    assert status["last_error"] is None
    assert status["retries"] == 0
    assert status["finished_at"] is None
    datetime.fromisoformat(status["started_at"])


# --- GET /metrics, unknown routes -------------------------------------------------------------


def _samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_count_the_rows_written_and_time_the_inserts(
    seeded: Settings, client: FlaskClient
) -> None:
    idle = _samples(client)
    assert idle[("ingest_rows_total", ())] == 0

    _start(client, batch_size=25, num_batches=3, interval=0, stream_id="metered")
    assert _wait_until_final(client)["state"] == "completed"
    samples = _samples(client)

    written = _scalar(
        seeded, "SELECT SUM(row_count) FROM ingest_batches WHERE source_id = %s", ("metered",)
    )
    assert samples[("ingest_rows_total", ())] == written == 75
    assert samples[("ingest_batches_total", ())] == 3
    assert samples[("ingest_batch_insert_seconds_count", ())] == 3
    assert samples[("ingest_batch_insert_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("ingest_batch_insert_seconds_sum", ())] > 0
    buckets = sorted(
        (float(labels[0][1]), value)
        for (name, labels), value in samples.items()
        if name == "ingest_batch_insert_seconds_bucket"
    )
    assert len(buckets) == 12
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)
    assert samples[("ingest_stream_running", ())] == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/nope", 404),
        ("post", "/start_stream/extra", 404),
        ("get", "/start_stream", 405),
        ("put", "/stop_stream", 405),
        ("delete", "/health", 405),
        ("post", "/metrics", 405),
    ],
)
def test_unknown_routes_and_methods_answer_json(
    module_client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = getattr(module_client, method)(path)

    _assert_json_error(response, status)


# --- clients never see driver text; bounded error bodies ---------------------------------------


def _no_driver_text(text: str, settings: Settings) -> None:
    assert "@" not in text
    assert f"{settings.db_host}:" not in text
    assert "Traceback" not in text
    assert "mysql" not in text.lower()


def test_last_error_is_a_code_and_a_plain_message_without_driver_text(
    seeded: Settings, client_for: ClientFor
) -> None:
    with TcpProxy(seeded.db_host, seeded.db_port) as proxy:
        client = client_for(seeded.model_copy(update={"db_port": proxy.port}))
        _start(client, batch_size=20, num_batches=30, interval=0.05, stream_id="cut")
        _wait_for(client, lambda s: s["batches_done"] >= 1, "a first batch")
        proxy.outage()
        retrying = _wait_for(client, lambda s: s["state"] == "retrying", "a retry")
        health = client.get("/health")
        proxy.restore()
        client.post("/stop_stream")
        _wait_until_final(client)

    assert retrying["last_error"] == {
        "code": "database_unavailable",
        "message": "the database is unavailable or did not answer in time",
    }
    assert health.status_code == 503
    assert health.get_json()["error"] == "database_unavailable"
    for text in (str(retrying), health.get_data(as_text=True)):
        _no_driver_text(text, seeded)
        assert str(proxy.port) not in text


def test_a_body_of_many_unknown_keys_gets_a_bounded_answer(module_client: FlaskClient) -> None:
    body = {f"unknown_key_{i:07d}": i for i in range(60_000)}  # ~1.2 MB of JSON

    response = module_client.post("/start_stream", json=body)

    answer = _assert_json_error(response, 400)
    assert answer["error"] == "invalid_request"
    assert len(answer["errors"]) == 20
    assert len(response.get_data()) < 10_000


def test_echoed_field_names_are_cut_to_100_characters(module_client: FlaskClient) -> None:
    response = module_client.post("/start_stream", json={"k" * 5000: 1})

    answer = _assert_json_error(response, 400)
    assert len(answer["errors"]) == 1
    assert len(answer["errors"][0]["field"]) <= 100
    assert len(answer["message"]) < 400


# --- optional API token ---------------------------------------------------------------------


@pytest.fixture
def token_client(seeded: Settings, client_for: ClientFor) -> FlaskClient:
    return client_for(seeded.model_copy(update={"api_token": SecretStr("s3cret-token")}))


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Basic s3cret-token", "s3cret-token", "Bearer "],
    ids=["none", "wrong-token", "basic", "no-scheme", "empty"],
)
@pytest.mark.parametrize("path", ["/start_stream", "/stop_stream"])
def test_state_changes_need_the_token_when_one_is_set(
    seeded: Settings, token_client: FlaskClient, path: str, header: str | None
) -> None:
    before = _table_counts(seeded)
    headers = {"Authorization": header} if header is not None else {}

    response = token_client.post(path, json={"batch_size": 10, "interval": 0}, headers=headers)

    body = _assert_json_error(response, 401)
    assert body["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _table_counts(seeded) == before
    assert _status(token_client) == {"state": "idle", "stream_id": None}


def test_the_right_token_starts_and_stops_a_stream(token_client: FlaskClient) -> None:
    auth = {"Authorization": "Bearer s3cret-token"}

    started = token_client.post(
        "/start_stream", json={"batch_size": 10, "num_batches": 50, "interval": 1}, headers=auth
    )
    stopped = token_client.post("/stop_stream", headers=auth)

    assert started.status_code == 202
    assert stopped.status_code == 202
    assert _wait_until_final(token_client)["state"] == "stopped"


def test_reads_stay_open_when_a_token_is_set(token_client: FlaskClient) -> None:
    assert token_client.get("/health").status_code == 200
    assert token_client.get("/metrics").status_code == 200
    assert token_client.get("/stream_status").status_code == 200


def test_the_client_sends_the_token_as_a_bearer_header(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[urllib.request.Request] = []

    class _Answer(io.BytesIO):
        def __enter__(self) -> _Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    def fake_urlopen(request: urllib.request.Request, timeout: float) -> _Answer:
        seen.append(request)
        return _Answer(b"{}")

    monkeypatch.setattr(client_module.urllib.request, "urlopen", fake_urlopen)

    client_module.call("http://x", "POST", "/stop_stream", token="abc")
    client_module.call("http://x", "GET", "/stream_status")

    assert seen[0].get_header("Authorization") == "Bearer abc"
    assert seen[1].get_header("Authorization") is None


def test_waiting_for_health_fails_at_once_when_another_service_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"status": "ok", "database": "reachable", "instance_id": "someone-else"}
    monkeypatch.setattr(client_module, "call", lambda *args, **kwargs: answers)

    client_module.wait_until_healthy("http://x", timeout=5)
    with pytest.raises(client_module.WrongService, match="someone-else"):
        client_module.wait_until_healthy("http://x", timeout=60, instance_id="mine")
    client_module.wait_until_healthy("http://x", timeout=5, instance_id="someone-else")
