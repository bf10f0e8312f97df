"""The jobs on a Spark standalone cluster started from the pyspark package (slow).

The jobs run as users run them, `python -m spark_jobs ...` in a child process: a process
holds one SparkContext, and this suite's is the local session of the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from config.settings import Settings
from db.connection import connection
from db.processed import count_processed
from ingest.generator import GeneratorConfig
from ingest.seeding import seed_from_generator
from tests.spark_jobs.cluster import SparkCluster, cluster_environment, spark_cluster

__all__ = ["spark_cluster"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.slow


def _run_job(
    settings: Settings, cluster: SparkCluster, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **cluster_environment(),
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


def test_executors_larger_than_the_worker_fail_with_a_clear_message(
    spark_cluster: SparkCluster, db_settings: Settings
) -> None:
    assert spark_cluster.worker_memory == "1g"
    result = _run_job(
        db_settings,
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


def test_the_analysis_runs_on_the_cluster(
    spark_cluster: SparkCluster, db_settings: Settings, tmp_path: Path
) -> None:
    seed_from_generator(db_settings, GeneratorConfig(subscribers=30, days=5), progress=False)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "start_date": "2024-01-01",
                "end_date": "2024-01-05",
                "processed_start": "2024-01-01",
                "processed_end": "2024-01-05",
            }
        )
    )
    result = _run_job(
        db_settings,
        spark_cluster,
        "analysis",
        "--config",
        str(config),
        SPARK_EXECUTOR_MEMORY="512m",
    )
    assert result.returncode == 0, result.stderr + spark_cluster.logs()
    assert "raw rows ->" in result.stdout
    with connection(db_settings) as conn:
        assert count_processed(conn, date(2024, 1, 1), date(2024, 1, 5)) > 0
