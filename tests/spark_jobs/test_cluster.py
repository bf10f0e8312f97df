"""The jobs on a Spark standalone cluster started from the pyspark package (slow).

The jobs run as users run them, `python -m spark_jobs ...` in a child process: a process
holds one SparkContext, and this suite's is the local session of the other tests. The
model folder is a `file://` URI, as a folder every host mounts at the same place would be.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from config.settings import Settings
from db.connection import connection, drop_database, transaction
from db.ingest_log import Source
from db.migrate import init_database
from db.models import current_model
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import load_frame
from tests.spark_jobs.cluster import SparkCluster, spark_cluster

__all__ = ["spark_cluster"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.slow

# Small enough for a 1-core, 512 MB executor; large enough for a time split with both
# classes in each part. Days up to NEW_DAY - 1 are history; NEW_DAY arrives for the stream.
HISTORY = GeneratorConfig(subscribers=200, days=44, churn_rate=0.3, seed=5)
NEW_DAY = date(2024, 2, 13)
DATES = {
    "start_date": "2024-01-01",
    "end_date": "2024-02-12",
    "processed_start": "2024-01-01",
    "processed_end": "2024-02-08",
}
APPS = ("cdr-analysis", "cdr-model", "cdr-stream")
_databases = itertools.count()


@pytest.fixture
def cluster_settings(base_settings: Settings) -> Iterator[Settings]:
    """A new, migrated database named `cluster_<pid>_<n>`, dropped afterwards."""
    settings = base_settings.model_copy(
        update={"db_name": f"cluster_{os.getpid()}_{next(_databases)}"}
    )
    init_database(settings)
    try:
        yield settings
    finally:
        drop_database(settings)


def _run_job(
    settings: Settings, cluster: SparkCluster, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **cluster.job_environment(),
        "DB_HOST": settings.db_host,
        "DB_PORT": str(settings.db_port),
        "DB_USER": settings.db_user,
        "DB_PASSWORD": settings.db_password.get_secret_value(),
        "DB_NAME": settings.db_name,
        "JDBC_JAR": str(settings.jdbc_jar),
        "OUTPUT_DIR": str(settings.output_dir),
        "SPARK_MASTER": cluster.master_url,
        "SPARK_DRIVER_MEMORY": "1g",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "spark_jobs", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,  # a safety net against a hang, not a speed check
        check=False,
    )


def _query(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _load(settings: Settings, frame: pd.DataFrame, name: str) -> int:
    source = Source(f"cluster-{name}", "generator", f"test rows: {name}", {}, 0)
    load_frame(settings, frame.reset_index(drop=True), source, progress=False)
    return len(frame)


def test_executors_larger_than_the_worker_fail_with_a_clear_message(
    spark_cluster: SparkCluster, cluster_settings: Settings
) -> None:
    assert spark_cluster.worker_memory == "1g"
    result = _run_job(
        cluster_settings,
        spark_cluster,
        "analysis",
        SPARK_EXECUTOR_MEMORY="2g",
        SPARK_EXECUTOR_WAIT_SECONDS="5",
    )
    assert result.returncode == 1, result.stderr + spark_cluster.logs()
    assert f"the cluster at {spark_cluster.master_url} granted no executor within 5 s" in (
        result.stderr
    )
    assert "SPARK_EXECUTOR_MEMORY=2g" in result.stderr
    assert "Initial job has not accepted any resources" not in result.stderr


def test_analysis_model_and_stream_run_on_the_cluster(
    spark_cluster: SparkCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    frame = generate_cdr(HISTORY)
    days = frame["DP_DATE"].dt.date
    _load(settings, frame[days < NEW_DAY], "history")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(DATES))
    models = (tmp_path / "shared" / "models").as_uri()  # file:///...: a URI, not a path
    env = {
        "MODEL_DIR": models,
        "SPARK_EXECUTOR_MEMORY": "512m",
        "MODEL_EMBARGO_DAYS": "7",
        "MODEL_CV_FOLDS": "2",
        "MODEL_TUNING_MAX_ROWS": "3000",
        "STREAM_CHECKPOINT_DIR": str(tmp_path / "shared" / "checkpoint"),
    }

    analysis = _run_job(settings, spark_cluster, "analysis", "--config", str(config), **env)
    assert analysis.returncode == 0, analysis.stderr + spark_cluster.logs()
    assert "raw rows ->" in analysis.stdout
    [(processed_days,)] = _query(settings, "SELECT COUNT(DISTINCT `Date`) FROM Processed_Data")
    assert processed_days == (NEW_DAY - date(2024, 1, 1)).days

    model = _run_job(settings, spark_cluster, "model", "--config", str(config), **env)
    assert model.returncode == 0, model.stderr + spark_cluster.logs()
    with connection(settings) as conn:
        record = current_model(conn)
    assert record is not None
    # The registry holds the URI; the files are in the folder it names.
    assert record.path == f"{models}/{record.version}"
    folder = tmp_path / "shared" / "models" / record.version
    assert json.loads((folder / "model.json").read_text())["version"] == record.version
    assert (folder / "metrics.json").is_file() and (folder / "pipeline" / "metadata").is_dir()

    [(before,)] = _query(settings, "SELECT COALESCE(MAX(id), 0) FROM DP_CDR_Data")
    loaded = _load(settings, frame[days == NEW_DAY], "new-day")
    stream = _run_job(
        settings, spark_cluster, "stream", "--once", "--starting-id", str(before), **env
    )
    assert stream.returncode == 0, stream.stderr + spark_cluster.logs()
    assert f"{loaded:,} rows" in stream.stdout

    # Exactly once: each new row went through one logged batch, and each subscriber-day of
    # the new day has one aggregate of all its rows and one prediction of the model.
    [(rows, first_id, last_id)] = _query(
        settings, "SELECT SUM(cdr_rows), MIN(first_cdr_id), MAX(last_cdr_id) FROM stream_batches"
    )
    assert (rows, first_id, last_id) == (loaded, before + 1, before + loaded)
    [(subscribers,)] = _query(
        settings,
        "SELECT COUNT(DISTINCT DP_MSISDN) FROM DP_CDR_Data WHERE DP_DATE >= %s AND DP_DATE < %s",
        NEW_DAY,
        NEW_DAY + timedelta(days=1),
    )
    [(aggregates, counted)] = _query(
        settings,
        "SELECT COUNT(*), SUM(Record_Count) FROM Processed_Data WHERE `Date` = %s",
        NEW_DAY,
    )
    assert (aggregates, counted) == (subscribers, loaded)
    [(predictions, predicted, versions)] = _query(
        settings,
        "SELECT COUNT(*), COUNT(DISTINCT subscriber), GROUP_CONCAT(DISTINCT model_version) "
        "FROM model_predictions WHERE as_of_date = %s",
        NEW_DAY,
    )
    assert (predictions, predicted, versions) == (subscribers, subscribers, record.version)

    # Every job was an application of the master, and its tasks ran in the worker's executor.
    finished = {app["name"]: app for app in spark_cluster.state()["completedapps"]}
    assert set(APPS) <= finished.keys(), finished.keys()
    for name in APPS:
        executors = spark_cluster.executor_logs(finished[name]["id"])
        assert executors, f"{name}: no executor ran\n{spark_cluster.logs()}"
        assert any("Finished task" in log for log in executors.values()), name
