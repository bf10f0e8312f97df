"""The one SparkSession factory, and the JDBC connection details derived from the settings.

Only entry points call :func:`build_spark_session`; everything else receives the session.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from config.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

JDBC_DRIVER = "org.mariadb.jdbc.Driver"


class SparkSetupError(RuntimeError):
    """Spark cannot be started as configured (no Java, no JDBC driver jar)."""


def jdbc_url(settings: Settings) -> str:
    """`jdbc:mysql://` URL of ``DB_NAME``.

    With `jdbc:mariadb://` Spark falls back to a generic dialect that quotes column names
    with double quotes, which MariaDB reads as strings; `jdbc:mysql://` selects the MySQL
    dialect (backticks) while the MariaDB driver, named explicitly, does the work.
    """
    return (
        f"jdbc:mysql://{settings.db_host}:{settings.db_port}/{settings.db_name}"
        "?permitMysqlScheme&useUnicode=true&characterEncoding=utf8"
    )


def jdbc_properties(settings: Settings, *, write: bool = False) -> dict[str, str]:
    """Connection properties for `DataFrameReader.jdbc` / `DataFrameWriter.jdbc`.

    Reads stream rows in pages of `JDBC_FETCH_SIZE`; writes batch `JDBC_BATCH_SIZE` rows
    per round trip with MariaDB's bulk protocol (`useBulkStmts`, ~6x the default here).
    """
    properties = {
        "driver": JDBC_DRIVER,
        "user": settings.db_user,
        "password": settings.db_password.get_secret_value(),
    }
    if write:
        properties.update(
            {
                "batchsize": str(settings.jdbc_batch_size),
                "useBulkStmts": "true",
                "rewriteBatchedStatements": "false",
                "isolationLevel": "READ_COMMITTED",
            }
        )
    else:
        properties["fetchsize"] = str(settings.jdbc_fetch_size)
    return properties


def spark_config(settings: Settings, app_name: str) -> dict[str, Any]:
    """The session's configuration: memory for a 2-core / 24 GB laptop, the JDBC jar."""
    if not settings.jdbc_jar.is_file():
        raise SparkSetupError(
            f"the MariaDB JDBC driver is not at {settings.jdbc_jar}; install Debian's "
            "libmariadb-java (make demo does) or set JDBC_JAR to the driver's jar"
        )
    return {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": str(settings.jdbc_jar),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions or 4),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        # Cached frames (the analysis' aggregate, the model's rows) are a few hundred MB at
        # most: storing them uncompressed spends memory we have to save CPU we lack,
        # ~1 of ~12 Spark CPU-seconds per analysis of 1M rows (bench/spark.py).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
    }


def build_spark_session(settings: Settings, app_name: str) -> SparkSession:
    """Start (or reuse) the SparkSession for ``app_name``.

    Raises:
        SparkSetupError: no Java runtime or no JDBC driver jar.
    """
    from pyspark.sql import SparkSession  # imported here: pyspark takes seconds to import

    config = spark_config(settings, app_name)
    if not os.environ.get("JAVA_HOME") and not _on_path("java"):
        raise SparkSetupError("Spark needs a Java runtime (17): install default-jre-headless")
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s", spark.version, settings.spark_master)
    return spark


def shuffle_partitions_for(rows: int, settings: Settings) -> int:
    """Shuffle partitions sized to the work: ~250k rows each, at least 2, at most 200."""
    if settings.spark_shuffle_partitions:
        return settings.spark_shuffle_partitions
    return max(2, min(200, rows // 250_000 + 1))


def _on_path(program: str) -> bool:
    return any(
        os.access(os.path.join(directory, program), os.X_OK)
        for directory in os.environ.get("PATH", "").split(os.pathsep)
    )
