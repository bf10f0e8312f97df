"""Streams against the real database: what they continue, and which clock they follow.

A simulated stream continues the seeded generator (the same subscribers, newcomers joining),
a realtime stream's rows (dated today) never move the simulated clock, and a stream after a
loaded CSV continues from usage profiles.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.history import latest_simulated_date
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.scenario import Scenario
from ingest.seeding import seed_from_generator, seed_from_source
from ingest.simulator import GeneratorBase, ProfileBase, simulated_anchor
from ingest.sources import stream_base
from ingest.stream import StreamManager, StreamRunner

HISTORY = GeneratorConfig(subscribers=60, days=10, seed=4)
HISTORY_END = datetime(2024, 1, 10)
WAIT_SECONDS = 30.0


@pytest.fixture
def manager(db_settings: Settings) -> Iterator[StreamManager]:
    running = StreamManager(db_settings)
    yield running
    running.shutdown(timeout=WAIT_SECONDS)


def _run(manager: StreamManager, stream_id: str, **overrides: Any) -> StreamRunner:
    spec: dict[str, Any] = {
        "batch_size": 100,
        "num_batches": 3,
        "interval": 0.0,
        "seed": 5,
        "clock": "simulated",
        "scenario": Scenario(),
        "stream_id": stream_id,
    }
    runner = manager.start(**{**spec, **overrides})
    assert runner.join(WAIT_SECONDS), runner.status()
    assert runner.status()["state"] == "completed", runner.status()
    return runner


def _rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _per_day(settings: Settings, since: date) -> list[tuple[date, int]]:
    return [
        (day, int(count))
        for day, count in _rows(
            settings,
            "SELECT DATE(DP_DATE), COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= %s "
            "AND DP_DATE < '2025-01-01' GROUP BY DATE(DP_DATE) ORDER BY 1",
            (since,),
        )
    ]


def test_a_stream_after_generated_history_continues_the_generator(db_settings: Settings) -> None:
    seed_from_generator(db_settings, HISTORY, progress=False)

    with connection(db_settings) as conn:
        latest = latest_simulated_date(conn)
        assert latest == HISTORY_END
        base = stream_base(conn, latest, 100_000)

    assert base == GeneratorBase(HISTORY, 10)


def test_a_realtime_stream_does_not_move_the_simulated_clock(
    db_settings: Settings, manager: StreamManager
) -> None:
    seed_from_generator(db_settings, HISTORY, progress=False)
    _run(manager, "realtime", clock="realtime")
    today = _rows(db_settings, "SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= '2025-01-01'")
    assert today == [(300,)]

    _run(manager, "first", num_batches=2)
    _run(manager, "second", num_batches=2)

    with connection(db_settings) as conn:
        latest = latest_simulated_date(conn)
    days = _per_day(db_settings, date(2024, 1, 11))
    # 400 rows of ~58 a day: 2024-01-11 .. 01-17, the second stream after the first.
    assert days[0][0] == date(2024, 1, 11)
    assert [day.toordinal() for day, _ in days] == list(
        range(days[0][0].toordinal(), days[0][0].toordinal() + len(days))
    )
    assert sum(rows for _, rows in days) == 400
    assert latest is not None and latest.date() == days[-1][0]
    anchors = dict(_rows(db_settings, "SELECT source_id, anchor_date FROM ingest_sources"))
    assert anchors["first"] == datetime(2024, 1, 11)
    first_last_day = _rows(
        db_settings,
        "SELECT MAX(DP_DATE) FROM DP_CDR_Data WHERE DP_DATE < %s",
        (anchors["second"],),
    )[0][0]
    assert anchors["second"] == simulated_anchor(first_last_day)
    assert anchors["second"] > anchors["first"]


def test_the_streamed_days_look_like_history_days(
    db_settings: Settings, manager: StreamManager
) -> None:
    seed_from_generator(db_settings, HISTORY, progress=False)
    _run(manager, "days", num_batches=6)

    history = _per_day(db_settings, date(2024, 1, 1))[:10]
    stream = _per_day(db_settings, date(2024, 1, 11))[:-1]  # the last day is cut
    subscribers = _rows(
        db_settings,
        "SELECT COUNT(*), COUNT(DISTINCT DP_MSISDN) FROM DP_CDR_Data WHERE DP_DATE >= %s "
        "GROUP BY DATE(DP_DATE)",
        (date(2024, 1, 11),),
    )
    history_mean = sum(rows for _, rows in history) / len(history)
    assert all(abs(rows / history_mean - 1) < 0.15 for _, rows in stream), (history, stream)
    # One row per subscriber and day, as in history.
    assert all(rows == distinct for rows, distinct in subscribers)


def test_a_stream_after_a_loaded_csv_continues_from_profiles(
    db_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    generate_cdr(HISTORY.model_copy(update={"seed": 9})).to_csv(path, index=False)
    seed_from_source(db_settings, str(path), progress=False)

    with connection(db_settings) as conn:
        latest = latest_simulated_date(conn)
        assert latest == HISTORY_END
        base = stream_base(conn, latest, 100_000)

    assert isinstance(base, ProfileBase)
    assert base.start_date == date(2024, 1, 11)
    assert 50 < len(base.initial) <= 70
