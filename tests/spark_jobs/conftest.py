"""One local Spark session for every Spark test (starting one costs ~10 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import Settings
from spark_jobs.session import build_spark_session


@pytest.fixture(scope="session")
def spark(base_settings: Settings) -> Iterator[Any]:
    """A `local[1]` session with the project's configuration and two shuffle partitions."""
    settings = base_settings.model_copy(
        update={
            "spark_master": "local[1]",
            "spark_driver_memory": "2g",
            "spark_shuffle_partitions": 2,
        }
    )
    session = build_spark_session(settings, "cdr-tests")
    yield session
    session.stop()
