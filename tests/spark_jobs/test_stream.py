"""The streaming job: streamed days score like the batch path, exactly once, through replays,
restarts after kill -9, model switches and late rows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from config.settings import PROJECT_ROOT, Settings
from db.connection import connection, transaction
from db.ingest_log import Source
from db.models import PREDICTION_COLUMNS, PREDICTIONS_TABLE, current_model, register_model
from db.processed import PROCESSED_COLUMNS
from db.staging import create_staging, drop_staging
from db.stream_log import committed_batches
from ingest.seeding import load_frame
from spark_jobs.__main__ import main as spark_main
from spark_jobs.analysis import run_analysis
from spark_jobs.artifacts import CARD_FILE, ModelCard
from spark_jobs.cdr_source import CDR_STREAM_SCHEMA
from spark_jobs.errors import NoModelError
from spark_jobs.scoring import run_score
from spark_jobs.stream import (
    ModelCache,
    StreamOptions,
    StreamSummary,
    aggregate_days,
    aggregate_raw,
    process_batch,
    run_stream,
)
from tests import trained_history as history
from tests.trained_history import TrainedHistory

FIRST_NEW_DAY = history.FIRST_NEW_DAY  # days from here on are loaded by the tests, as "new" rows
DATES = history.DATES
# A hard bound on every wait for the stream (a stuck query fails the test instead of hanging).
WAIT_SECONDS = 240

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cdr_frame(trained_history: TrainedHistory) -> pd.DataFrame:
    return trained_history.frame


@pytest.fixture(scope="module")
def trained(
    trained_history: TrainedHistory,
    module_db_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """History up to 2024-02-12 analysed, and a model trained on it (test window to 02-08)."""
    settings = module_db_settings.model_copy(
        update={
            "output_dir": tmp_path_factory.mktemp("out"),
            "model_dir": tmp_path_factory.mktemp("models"),
            **history.MODEL_SETTINGS,
        }
    )
    trained_history.copy_into(settings)
    return settings


def _load(settings: Settings, frame: pd.DataFrame, name: str) -> None:
    source = Source(f"test-{name}", "generator", f"test rows: {name}", {}, 0)
    load_frame(settings, frame.reset_index(drop=True), source, progress=False)


def _load_day(settings: Settings, frame: pd.DataFrame, day: date) -> int:
    rows = frame[frame["DP_DATE"].dt.date == day]
    _load(settings, rows, f"day-{day}")
    return len(rows)


def _query(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _max_id(settings: Settings) -> int:
    return int(_query(settings, "SELECT COALESCE(MAX(id), 0) FROM DP_CDR_Data")[0][0])


def _current_version(settings: Settings) -> str:
    with connection(settings) as conn:
        model = current_model(conn)
    assert model is not None
    return model.version


def _processed(settings: Settings, day: date) -> dict[str, tuple[Any, ...]]:
    columns = ", ".join(f"`{c}`" for c in PROCESSED_COLUMNS)
    rows = _query(settings, f"SELECT {columns} FROM Processed_Data WHERE `Date` = %s", day)
    return {row[1]: row for row in rows}


def _predictions(settings: Settings, day: date, version: str | None = None) -> dict[str, Any]:
    """`model_predictions` rows of ``day`` by subscriber: (id, scored_at, *PREDICTION_COLUMNS)."""
    columns = ", ".join(f"`{c}`" for c in PREDICTION_COLUMNS)
    rows = _query(
        settings,
        f"SELECT id, scored_at, {columns} FROM {PREDICTIONS_TABLE} "
        "WHERE as_of_date = %s AND model_version = COALESCE(%s, model_version)",
        day,
        version,
    )
    return {row[3]: row for row in rows}


def _stream_once(spark: Any, settings: Settings, checkpoint: Path, **options: Any) -> StreamSummary:
    return run_stream(spark, settings, StreamOptions(checkpoint=checkpoint, once=True, **options))


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS} s")
        time.sleep(0.5)


# --- settings and the command line -----------------------------------------------------------


def test_bad_settings_are_clear_usage_errors(
    db_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exited:
        spark_main(["stream", "--trigger-seconds", "0"])
    assert exited.value.code == 2
    assert "must be a number of seconds above zero" in capsys.readouterr().err

    monkeypatch.setenv("DB_NAME", db_settings.db_name)
    monkeypatch.setenv("STREAM_TRIGGER_SECONDS", "-1")
    assert spark_main(["stream"]) == 2
    assert "STREAM_TRIGGER_SECONDS" in capsys.readouterr().err


def test_no_model_is_a_clear_error(
    db_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_NAME", db_settings.db_name)
    assert spark_main(["stream", "--once"]) == 1
    assert "no model trained yet" in capsys.readouterr().err


# --- the driver's aggregation against the analysis job's --------------------------------------

_RAW = [
    # Spaces around the subscriber; a negative count; a NULL reading; labels 0/1/2/NULL.
    (1, datetime(2024, 3, 1, 0, 0, 1), " 2771 ", 3, 1.5, 2, 3.25, 1, 0, 4, 10.25, 0),
    (2, datetime(2024, 3, 1, 23, 59, 59), "2771", -1, 2.25, None, 1.0, 1, 0, 4, 0.5, 1),
    # The same content again under a new id (a source exported twice): counted once.
    (3, datetime(2024, 3, 1, 23, 59, 59), "2771", -1, 2.25, None, 1.0, 1, 0, 4, 0.5, 1),
    (4, datetime(2024, 3, 1, 12), "2771", 1, 0.125, 1, 0.25, 0, 0, 0, 0.375, 2),
    (5, datetime(2024, 3, 2), "2771", 5, 1.0, 1, 1.0, 1, 1, 1, 1.0, 2),
    (6, datetime(2024, 3, 2, 5), "2772", None, None, None, None, None, None, None, None, None),
    # Unattributable: no date, a blank subscriber, no subscriber.
    (7, None, "2772", 5, 1.0, 1, 1.0, 1, 1, 1, 1.0, 0),
    (8, datetime(2024, 3, 2), "   ", 5, 1.0, 1, 1.0, 1, 1, 1, 1.0, 0),
    (9, datetime(2024, 3, 2, 5), None, 5, 1.0, 1, 1.0, 1, 1, 1, 1.0, 0),
]


def test_the_driver_aggregates_days_as_the_analysis_job_does(spark: Any) -> None:
    frame = spark.createDataFrame(_RAW, CDR_STREAM_SCHEMA)
    expected = sorted(tuple(row) for row in aggregate_days(frame).collect())
    ours = aggregate_raw(frame.toArrow())
    rows = sorted(zip(*(column.to_pylist() for column in ours.columns), strict=True))
    assert rows == expected
    assert [row[:2] for row in rows] == [
        (date(2024, 3, 1), "2771"),
        (date(2024, 3, 2), "2771"),
        (date(2024, 3, 2), "2772"),
    ]
    assert rows[0][2:] == (4, 3.875, 3, 4.5, 2, 0, 8, 11.125, 3, 1)
    assert rows[2][2:] == (0, 0.0, 0, 0.0, 0, 0, 0, 0.0, 1, None)


# --- the stream against the batch path --------------------------------------------------------


def test_streamed_days_score_like_the_batch_path(
    spark: Any, trained: Settings, cdr_frame: pd.DataFrame, tmp_path_factory: Any
) -> None:
    day = FIRST_NEW_DAY
    before = _max_id(trained)
    loaded = _load_day(trained, cdr_frame, day)
    summary = _stream_once(
        spark,
        trained,
        tmp_path_factory.mktemp("stream") / "checkpoint",
        starting_id=before,
        max_rows_per_trigger=120,
    )
    assert summary.rows == loaded and summary.batches == -(-loaded // 120)
    streamed_days = _processed(trained, day)
    streamed = _predictions(trained, day)
    assert len(streamed) == len(streamed_days) > 0

    batch_dates = DATES.model_copy(update={"start_date": day, "end_date": day})
    run_analysis(spark, trained, batch_dates)
    assert _processed(trained, day) == streamed_days
    run_score(spark, trained, day, day)
    batch = _predictions(trained, day)
    assert batch.keys() == streamed.keys()
    for subscriber, row in batch.items():
        ours = streamed[subscriber]
        assert ours[2:6] == row[2:6]  # version, subscriber, date, period
        assert ours[6:8] == pytest.approx(row[6:8], abs=1e-12)  # probabilities
        assert ours[8:10] == row[8:10]  # prediction, label
        assert ours[10:] == pytest.approx(row[10:])  # features, slot by slot


def test_a_replayed_batch_changes_nothing(
    spark: Any, trained: Settings, cdr_frame: pd.DataFrame
) -> None:
    day = FIRST_NEW_DAY + timedelta(days=1)
    before = _max_id(trained)
    _load_day(trained, cdr_frame, day)
    columns = ", ".join(f.name for f in CDR_STREAM_SCHEMA.fields)
    raw = _query(trained, f"SELECT {columns} FROM DP_CDR_Data WHERE id > %s", before)
    frame = spark.createDataFrame(raw, CDR_STREAM_SCHEMA)
    models = ModelCache()

    first = process_batch(frame, 7, settings=trained, query_id="replay", models=models)
    assert not first.replayed and first.rows == len(raw) and first.predictions > 0
    stored = (_processed(trained, day), _predictions(trained, day))
    again = process_batch(frame, 7, settings=trained, query_id="replay", models=models)
    assert again.replayed
    assert (_processed(trained, day), _predictions(trained, day)) == stored  # ids too
    with connection(trained) as conn:
        assert [b.batch_id for b in committed_batches(conn, "replay")] == [7]


def test_late_rows_rescore_their_day(
    spark: Any, trained: Settings, cdr_frame: pd.DataFrame, tmp_path: Path
) -> None:
    day = FIRST_NEW_DAY
    stored = _processed(trained, day)
    scored = _predictions(trained, day)
    late = cdr_frame[cdr_frame["DP_DATE"].dt.date == day].head(2).copy()
    late["DP_MOC_COUNT"] += 40
    before = _max_id(trained)
    _load(trained, late, "late")
    summary = _stream_once(spark, trained, tmp_path / "checkpoint", starting_id=before)
    assert summary.rows == 2

    now = _processed(trained, day)
    rescored = _predictions(trained, day)
    changed = set(late["DP_MSISDN"])
    for subscriber in changed:
        # The day is re-aggregated whole: the earlier rows plus the late one.
        assert now[subscriber][-2] == stored[subscriber][-2] + 1  # Record_Count
        assert now[subscriber][2] > stored[subscriber][2]  # M_Out_Call_Count
        assert rescored[subscriber][0] != scored[subscriber][0]  # a new row id
        assert rescored[subscriber][10:] != scored[subscriber][10:]  # its typed features
    for subscriber in scored.keys() - changed:
        assert rescored[subscriber] == scored[subscriber]
        assert now[subscriber] == stored[subscriber]


def _register_copy(settings: Settings, source: Settings, version: str, shift: float) -> str:
    """Register a copy of ``source``'s current model as ``version`` in ``settings``' database,
    with its calibration shifted by ``shift`` (so its probabilities differ)."""
    with connection(source) as conn:
        model = current_model(conn)
    assert model is not None
    folder = Path(settings.model_dir) / version
    if not folder.exists():
        shutil.copytree(model.path, folder)
        card = ModelCard.model_validate_json((folder / CARD_FILE).read_text())
        card = card.model_copy(
            update={"version": version, "platt_intercept": card.platt_intercept + shift}
        )
        (folder / CARD_FILE).write_text(card.model_dump_json())
    record = model.__class__(**{**vars(model), "version": version, "path": str(folder)})
    with connection(settings) as conn:
        staging = create_staging(conn, PREDICTIONS_TABLE, PREDICTION_COLUMNS)
        try:
            register_model(conn, staging, record)
        finally:
            drop_staging(conn, staging)
    return version


def test_a_new_model_is_used_without_a_restart(
    spark: Any, trained: Settings, cdr_frame: pd.DataFrame, tmp_path: Path
) -> None:
    first_day, second_day = FIRST_NEW_DAY + timedelta(days=2), FIRST_NEW_DAY + timedelta(days=3)
    old = _current_version(trained)
    stop = threading.Event()
    outcome: dict[str, Any] = {}
    options = StreamOptions(
        checkpoint=tmp_path / "checkpoint", trigger_seconds=0.5, starting_id=_max_id(trained)
    )

    def stream() -> None:
        try:
            outcome["summary"] = run_stream(spark, trained, options, stop)
        except BaseException as exc:  # reported by the test thread below
            outcome["error"] = exc

    runner = threading.Thread(target=stream, daemon=True)
    runner.start()
    try:
        _load_day(trained, cdr_frame, first_day)
        _wait(lambda: bool(_predictions(trained, first_day)) or not runner.is_alive(), "batch")
        new = _register_copy(trained, trained, "churn-switch-test", shift=1.5)
        _load_day(trained, cdr_frame, second_day)
        _wait(lambda: bool(_predictions(trained, second_day)) or not runner.is_alive(), "batch")
    finally:
        stop.set()
        runner.join(WAIT_SECONDS)
    assert "error" not in outcome, outcome.get("error")
    assert {row[2] for row in _predictions(trained, first_day).values()} == {old}
    assert {row[2] for row in _predictions(trained, second_day).values()} == {new}
    with connection(trained) as conn, transaction(conn) as cursor:  # the trained model again
        cursor.execute("UPDATE model_registry SET is_current = (version = %s)", (old,))


def test_the_stream_waits_on_an_empty_table(
    spark: Any, trained: Settings, db_settings: Settings, tmp_path: Path
) -> None:
    empty = db_settings.model_copy(update={"model_dir": tmp_path / "models"})
    _register_copy(empty, trained, "churn-empty-test", shift=0.0)
    stop = threading.Event()
    timer = threading.Timer(4.0, stop.set)  # a few triggers of 0.5 s, then stop
    timer.start()
    options = StreamOptions(checkpoint=tmp_path / "checkpoint", trigger_seconds=0.5)
    summary = run_stream(spark, empty, options, stop)
    assert (summary.batches, summary.rows) == (0, 0)
    assert _query(empty, "SELECT COUNT(*) FROM stream_batches") == [(0,)]
    with connection(empty) as conn, transaction(conn) as cursor:
        cursor.execute("UPDATE model_registry SET is_current = 0")
    with pytest.raises(NoModelError, match="no model trained yet"):
        run_stream(spark, empty, options)


# --- kill -9 and restart ---------------------------------------------------------------------


def _job_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "DB_NAME": settings.db_name,
        "OUTPUT_DIR": str(settings.output_dir),
        "MODEL_DIR": str(settings.model_dir),
        "SPARK_MASTER": "local[1]",
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_SHUFFLE_PARTITIONS": "2",
        "STREAM_CHECKPOINT_DIR": str(settings.stream_checkpoint),
    }


def _start_job(settings: Settings, *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "spark_jobs", "stream", *args],
        cwd=PROJECT_ROOT,
        env=_job_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _batch_in_progress(checkpoint: Path) -> bool:
    """Spark has planned a batch (its offsets are logged) but not committed it."""
    offsets = {p.name for p in (checkpoint / "offsets").glob("[0-9]*")}
    commits = {p.name for p in (checkpoint / "commits").glob("[0-9]*")}
    return bool(commits) and bool(offsets - commits)


@pytest.fixture
def job_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "job.log"
    yield path
    if path.exists():
        print(path.read_text(errors="replace")[-4000:])


def test_restart_after_kill_9_loses_and_repeats_nothing(
    trained: Settings, cdr_frame: pd.DataFrame, tmp_path: Path, job_log: Path
) -> None:
    days = [FIRST_NEW_DAY + timedelta(days=n) for n in (4, 5, 6)]
    before = _max_id(trained)
    loaded = sum(_load_day(trained, cdr_frame, day) for day in days)
    checkpoint = tmp_path / "checkpoint"
    settings = trained.model_copy(update={"stream_checkpoint_dir": checkpoint})
    env_args = ("--max-rows-per-trigger", "250", "--trigger-seconds", "0.5")

    job = _start_job(
        settings,
        *env_args,
        "--starting-id",
        str(before),
        log=job_log,
    )
    try:
        _wait(lambda: _batch_in_progress(checkpoint) or job.poll() is not None, "batch")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == -signal.SIGKILL

    restarted = _start_job(settings, *env_args, log=job_log.with_suffix(".2.log"))
    try:
        _wait(
            lambda: _streamed_rows(trained, checkpoint) >= loaded or restarted.poll() is not None,
            "rows",
        )
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(WAIT_SECONDS) == 0, job_log.with_suffix(".2.log").read_text()
    finally:
        if restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGKILL)
    assert "micro-batches" in job_log.with_suffix(".2.log").read_text()

    # Every new row went through exactly one logged batch: none lost, none applied twice.
    assert _streamed_rows(trained, checkpoint) == loaded
    [(lowest, highest)] = _query(
        trained,
        "SELECT MIN(first_cdr_id), MAX(last_cdr_id) FROM stream_batches WHERE query_id = %s",
        json.loads((checkpoint / "metadata").read_text())["id"],
    )
    assert (lowest, highest) == (before + 1, before + loaded)
    for day in days:
        [(raw_rows, subscribers)] = _query(
            trained,
            "SELECT COUNT(*), COUNT(DISTINCT DP_MSISDN) FROM DP_CDR_Data "
            "WHERE DP_DATE >= %s AND DP_DATE < %s",
            day,
            day + timedelta(days=1),
        )
        processed = _processed(trained, day)
        assert len(processed) == subscribers
        assert sum(row[-2] for row in processed.values()) == raw_rows  # Record_Count
        assert _predictions(trained, day).keys() == processed.keys()


def _streamed_rows(settings: Settings, checkpoint: Path) -> int:
    """Raw rows the checkpoint's query has applied (its batches log their row counts)."""
    metadata = checkpoint / "metadata"
    if not metadata.exists():
        return 0
    query_id = json.loads(metadata.read_text())["id"]
    [(rows,)] = _query(
        settings,
        "SELECT COALESCE(SUM(cdr_rows), 0) FROM stream_batches WHERE query_id = %s",
        query_id,
    )
    return int(rows)
