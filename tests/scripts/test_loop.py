"""The closed loop's building blocks on a small database: a stream through the ingest API is
scored by the streaming query and judged by the poller, and everything started is stopped."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from db.connection import drop_database
from db.migrate import init_database
from scripts.children import Children, group_alive, supervised
from scripts.loop import LoopOptions, follow_stream, start_scoring, start_services
from scripts.stages import ROOT, current_version
from spark_jobs.scoring import run_score
from tests import trained_history as history
from tests.trained_history import TrainedHistory

pytestmark = pytest.mark.slow

# Two simulated days of the 400 subscribers, at once.
STREAM = {
    "stream_id": "loop-test",
    "batch_size": 400,
    "num_batches": 2,
    "interval": 0,
    "clock": "simulated",
    "seed": 3,
}
# This helper's share of the machine's ports.
PORTS = range(5604, 5620)


def _free_ports(count: int) -> list[int]:
    free = []
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        free.append(port)
        if len(free) == count:
            return free
    pytest.skip(f"no {count} free ports in {PORTS}")


@pytest.fixture
def loop_settings(
    base_settings: Settings,
    spark: Any,
    trained_history: TrainedHistory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """A `demo_` database with history, a model and March-like batch scores; the children
    read the same settings from the environment."""
    ingest_port, monitoring_port = _free_ports(2)
    settings = base_settings.model_copy(
        update={
            "db_name": f"demo_looptest_{os.getpid()}",
            "output_dir": tmp_path / "output",
            "model_dir": tmp_path / "models",
            "stream_checkpoint_dir": tmp_path / "checkpoint",
            "ingest_port": ingest_port,
            "monitoring_port": monitoring_port,
            **history.MODEL_SETTINGS,
        }
    )
    drop_database(settings)
    init_database(settings)
    environment = {
        "DB_NAME": settings.db_name,
        "OUTPUT_DIR": str(settings.output_dir),
        "MODEL_DIR": str(settings.model_dir),
        "STREAM_CHECKPOINT_DIR": str(settings.stream_checkpoint),
        "INGEST_PORT": str(ingest_port),
        "MONITORING_PORT": str(monitoring_port),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "NML_DISABLE_USAGE_LOGGING": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("API_TOKEN", raising=False)
    trained_history.copy_into(settings)
    run_score(spark, settings, end=date(2024, 2, 12))
    try:
        yield settings
    finally:
        drop_database(settings)


def test_a_stream_is_scored_and_monitored_and_every_child_stops(
    loop_settings: Settings, tmp_path: Path
) -> None:
    settings = loop_settings
    options = LoopOptions(trigger_seconds=1.0, poll_seconds=1.0)
    lines: list[str] = []
    started: list[Any] = []

    with supervised(ROOT, tmp_path / "logs") as children:
        assert isinstance(children, Children)
        start_scoring(children, settings, options)
        ingest = start_services(children, settings, options)
        started = list(children.started)
        watcher = follow_stream(
            settings,
            ingest,
            STREAM,
            children,
            lines.append,
            model_version=current_version(settings),
            settle_seconds=300,
        )

    complete = [day for day in watcher.days if day.complete]
    # The stream carries the history's population on from its last day, 2024-02-12.
    assert [day.day for day in complete] == [
        date(2024, 2, 13) + timedelta(days=n) for n in range(len(complete))
    ]
    assert sum(day.rows for day in complete) == 800
    assert all(day.scored and day.predictions > 0 for day in complete), lines
    assert all(day.latency is not None and day.latency >= 0 for day in complete)
    assert all(day.verdict is not None for day in complete), lines
    assert sum("monitored by run" in line for line in lines) == len(complete)
    # Everything started is stopped, with its whole process group (no JVM left behind).
    assert {child.name for child in started} == {
        "stream-scorer",
        "poller",
        "monitoring-service",
        "ingest-service",
    }
    for child in started:
        assert child.process.returncode is not None, child.name
        assert not group_alive(child.pid), child.name
    assert children.started == []
