"""Fixtures shared by every test package: settings for a throw-away database on the real server.

Tests talk to the MariaDB/MySQL server the `DB_*` settings name (CI: 127.0.0.1:3306). Each
test session creates its own databases, named `cdrtest_<pid>_<n>`, and drops only those.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from config.settings import Settings, load_settings
from db.connection import connection, drop_database
from db.errors import DatabaseError
from db.ingest_log import Source
from db.migrate import init_database
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import load_frame
from spark_jobs.analysis import run_analysis
from spark_jobs.model import run_model
from spark_jobs.session import build_spark_session
from tests import trained_history as history
from tests.trained_history import TrainedHistory

_counter = itertools.count()


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The environment's settings with a temporary output folder; stops the run without a server."""
    settings = load_settings(output_dir=tmp_path_factory.mktemp("output"))
    try:
        with connection(settings, with_database=False):
            pass
    except DatabaseError as exc:
        pytest.exit(f"the tests need a database server ({exc}); run `make test`", returncode=3)
    return settings


@contextmanager
def _fresh_database(base: Settings, **update: Any) -> Iterator[Settings]:
    name = f"cdrtest_{os.getpid()}_{next(_counter)}"
    settings = base.model_copy(update={**update, "db_name": name})
    init_database(settings)
    try:
        yield settings
    finally:
        drop_database(settings)


@pytest.fixture
def db_settings(base_settings: Settings) -> Iterator[Settings]:
    """Settings for a new, migrated, empty database of this test's own."""
    with _fresh_database(base_settings) as settings:
        yield settings


@pytest.fixture(scope="module")
def module_db_settings(base_settings: Settings) -> Iterator[Settings]:
    """Like ``db_settings``, shared by the tests of one module (for read-only tests)."""
    with _fresh_database(base_settings) as settings:
        yield settings


@pytest.fixture(scope="session")
def spark(base_settings: Settings) -> Iterator[Any]:
    """One `local[1]` session for every Spark test (starting one costs ~10 s)."""
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


@pytest.fixture(scope="session")
def trained_history(
    spark: Any, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainedHistory]:
    """The history of `tests/trained_history.py`, analysed, with a model: read-only, copy it."""
    config = GeneratorConfig(
        subscribers=history.SUBSCRIBERS,
        days=history.GENERATED_DAYS,
        churn_rate=0.3,
        seed=history.SEED,
    )
    frame = generate_cdr(config)
    with _fresh_database(
        base_settings,
        output_dir=tmp_path_factory.mktemp("trained-out"),
        model_dir=str(tmp_path_factory.mktemp("trained-models")),
        **history.MODEL_SETTINGS,
    ) as settings:
        rows = frame[frame["DP_DATE"].dt.date < history.FIRST_NEW_DAY].reset_index(drop=True)
        source = Source("test-history", "generator", "test rows: history", {}, 0)
        load_frame(settings, rows, source, progress=False)
        run_analysis(spark, settings, history.DATES)
        run_model(spark, settings, history.DATES)
        yield TrainedHistory(frame, settings)
