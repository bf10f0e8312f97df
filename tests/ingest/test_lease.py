"""One writer per stream: two services on one database, stream leases and exact stream ids."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from db.connection import connection, transaction
from ingest.app import create_app
from ingest.generator import GeneratorConfig
from ingest.seeding import seed_from_generator
from tests.polling import wait_for, wait_until_final

HISTORY = GeneratorConfig(subscribers=50, days=10)
FAST_RETRY = {
    "stream_retry_initial_backoff": 0.05,
    "stream_retry_max_backoff": 0.2,
    "stream_retry_max_seconds": 5.0,
}
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.02
RACES = 20

AppFor = Callable[[Settings], Flask]


@pytest.fixture
def seeded(db_settings: Settings) -> Settings:
    seed_from_generator(db_settings, HISTORY, progress=False)
    return db_settings.model_copy(update=FAST_RETRY)


@pytest.fixture
def app_for() -> Iterator[AppFor]:
    """Fresh apps (services) whose streams are stopped when the test ends."""
    apps: list[Flask] = []

    def make(settings: Settings) -> Flask:
        app = create_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ingest.streams"].shutdown(timeout=WAIT_SECONDS)


def _rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _status(client: FlaskClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/stream_status").get_json()
    return body


def _final(client: FlaskClient) -> dict[str, Any]:
    return wait_until_final(lambda: _status(client), timeout=WAIT_SECONDS, interval=POLL_SECONDS)


def test_two_services_given_one_new_stream_id_at_once_start_it_once(
    seeded: Settings, app_for: AppFor
) -> None:
    apps = [app_for(seeded), app_for(seeded)]
    clients = [app.test_client() for app in apps]
    outcomes: list[list[int]] = []
    for attempt in range(RACES):
        barrier = threading.Barrier(2)
        statuses: list[int] = [0, 0]

        def fire(
            index: int,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
            stream_id: str = f"race-{attempt}",
        ) -> None:
            barrier.wait()
            response = clients[index].post(
                "/start_stream",
                json={"batch_size": 10, "num_batches": 3, "interval": 2, "stream_id": stream_id},
            )
            statuses[index] = response.status_code

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
        outcomes.append(sorted(statuses))
        for app in apps:
            app.extensions["ingest.streams"].shutdown(timeout=WAIT_SECONDS)

    assert outcomes == [[202, 409]] * RACES
    # every stream was written by one service only: its batches are numbered once each
    duplicates = _rows(
        seeded,
        "SELECT source_id, batch_no, COUNT(*) FROM ingest_batches "
        "GROUP BY source_id, batch_no HAVING COUNT(*) > 1",
    )
    assert duplicates == []


def test_the_losing_service_answers_409_naming_the_other_service(
    seeded: Settings, app_for: AppFor
) -> None:
    first, second = app_for(seeded).test_client(), app_for(seeded).test_client()
    body = {"batch_size": 10, "num_batches": 5, "interval": 5, "stream_id": "taken"}
    assert first.post("/start_stream", json=body).status_code == 202

    response = second.post("/start_stream", json=body)

    assert response.status_code == 409
    answer = response.get_json()
    assert answer["error"] == "stream_conflict"
    assert "another ingest service" in answer["message"]
    assert _status(second) == {"state": "idle", "stream_id": None}


def test_a_stream_whose_lease_expired_is_taken_over_and_its_old_writer_stops(
    seeded: Settings, app_for: AppFor
) -> None:
    old = app_for(seeded).test_client()
    new = app_for(seeded).test_client()
    body = {"batch_size": 20, "num_batches": 6, "interval": 1.5, "stream_id": "orphan"}
    assert old.post("/start_stream", json=body).status_code == 202
    wait_for(
        lambda: _status(old),
        lambda s: s["batches_done"] >= 1,
        "a first batch",
        timeout=WAIT_SECONDS,
        interval=POLL_SECONDS,
    )
    # the old service looks crashed: its lease ran out without being renewed
    _rows(
        seeded,
        "UPDATE stream_leases SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE source_id = %s",
        ("orphan",),
    )

    taken = new.post("/start_stream", json={**body, "interval": 0})
    new_final = _final(new)
    old_final = _final(old)

    assert taken.status_code == 202
    assert new_final["state"] == "completed"
    assert old_final["state"] == "failed"
    assert old_final["last_error"]["code"] == "stream_lease_lost"
    batches = _rows(
        seeded,
        "SELECT batch_no, row_count FROM ingest_batches WHERE source_id = %s ORDER BY batch_no",
        ("orphan",),
    )
    assert batches == [(n, 20) for n in range(6)]
    assert _rows(seeded, "SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= '2024-01-11'") == [
        (6 * 20,)
    ]
    # the state is the new writer's: the old one recorded nothing over it
    assert _rows(seeded, "SELECT state FROM ingest_sources WHERE source_id = 'orphan'") == [
        ("completed",)
    ]


def test_stream_ids_that_differ_only_in_case_are_two_streams(
    seeded: Settings, app_for: AppFor
) -> None:
    client = app_for(seeded).test_client()
    spec = {"batch_size": 15, "num_batches": 2, "interval": 0, "clock": "simulated"}
    assert client.post("/start_stream", json={**spec, "stream_id": "CaseTest"}).status_code == 202
    assert _final(client)["state"] == "completed"

    response = client.post("/start_stream", json={**spec, "stream_id": "casetest"})
    status = _final(client)

    assert response.status_code == 202
    assert status["state"] == "completed"
    assert (status["batches_skipped"], status["rows_done"]) == (0, 30)
    sources = _rows(
        seeded,
        "SELECT source_id, SUM(row_count) FROM ingest_batches "
        "WHERE source_id IN ('CaseTest', 'casetest') GROUP BY source_id ORDER BY source_id",
    )
    assert sorted(sources) == [("CaseTest", 30), ("casetest", 30)]


def test_a_waiting_stream_keeps_its_lease(seeded: Settings, app_for: AppFor) -> None:
    short_lease = seeded.model_copy(update={"stream_lease_seconds": 0.6})
    writer = app_for(short_lease).test_client()
    other = app_for(short_lease).test_client()
    body = {"batch_size": 10, "num_batches": 3, "interval": 3, "stream_id": "kept"}
    assert writer.post("/start_stream", json=body).status_code == 202
    wait_for(
        lambda: _status(writer),
        lambda s: s["batches_done"] >= 1,
        "a first batch",
        timeout=WAIT_SECONDS,
        interval=POLL_SECONDS,
    )
    time.sleep(1.2)  # twice the lease: only renewals during the wait keep it

    response = other.post("/start_stream", json=body)

    assert response.status_code == 409
    assert _status(writer)["state"] == "running"
