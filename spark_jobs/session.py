"""The one SparkSession factory, and the JDBC connection details derived from the settings.

Only entry points call :func:`build_spark_session`; everything else receives the session.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

JDBC_DRIVER = "org.mariadb.jdbc.Driver"
# Spark's log4j configuration: the line format of config.cli.LOG_FORMAT, warnings only.
LOG4J_CONFIG = Path(__file__).resolve().with_name("log4j2.properties")
_EXECUTOR_POLL_SECONDS = 0.5


class SparkSetupError(RuntimeError):
    """Spark cannot be started as configured (no Java, no JDBC driver jar, no executors)."""


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
        "spark.driver.extraJavaOptions": driver_java_options(settings),
    }


def driver_java_options(settings: Settings) -> str:
    """The driver JVM's options: Spark's logging in our line format, chatter only if asked.

    The levels are system properties read by ``log4j2.properties``: WARN and ERROR by
    default, INFO for both with ``SPARK_VERBOSE``.
    """
    options = [f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}"]
    if settings.spark_verbose:
        options += ["-Dcdr.spark.level=INFO", "-Dcdr.spark.chatter=INFO"]
    return " ".join(options)


def is_local(master: str) -> bool:
    """Whether ``master`` runs the executors inside the driver (``local``, ``local[4]``, ...)."""
    return master == "local" or master.startswith("local[")


def build_spark_session(settings: Settings, app_name: str) -> SparkSession:
    """Start (or reuse) the SparkSession for ``app_name``.

    On a cluster master, waits up to ``SPARK_EXECUTOR_WAIT_SECONDS`` for an executor.

    Raises:
        SparkSetupError: no Java runtime, no JDBC driver jar, or no executor granted.
    """
    from pyspark.sql import SparkSession  # imported here: pyspark takes seconds to import

    config = spark_config(settings, app_name)
    if not os.environ.get("JAVA_HOME") and not _on_path("java"):
        raise SparkSetupError("Spark needs a Java runtime (17): install default-jre-headless")
    if is_local(settings.spark_master):
        # Everything runs on this machine: binding to loopback also spares the warning that
        # the hostname resolves to a loopback address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (the CDR stream source, UDFs) must run this interpreter: the system
    # python3 Spark would start lacks pyarrow and this project. A cluster whose hosts keep
    # the virtualenv elsewhere sets PYSPARK_PYTHON itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not is_local(settings.spark_master):
        try:
            wait_for_executors(
                lambda: executor_count(spark),
                settings.spark_executor_wait_seconds,
                settings.spark_master,
                settings.spark_executor_memory,
            )
        except SparkSetupError:
            spark.stop()
            raise
    log.info("Spark %s on %s", spark.version, settings.spark_master)
    return spark


def executor_count(spark: SparkSession) -> int:
    """Executors registered with the driver (the driver's own entry not counted)."""
    tracker = spark.sparkContext._jsc.sc().statusTracker()
    return max(0, len(tracker.getExecutorInfos()) - 1)


def wait_for_executors(
    count: Callable[[], int],
    timeout: float,
    master: str,
    executor_memory: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Wait until ``count()`` reports an executor; return how many registered.

    A cluster whose workers lack the memory or cores an executor asks for never grants
    one; Spark itself only repeats "Initial job has not accepted any resources" forever.

    Raises:
        SparkSetupError: no executor within ``timeout`` seconds; the message names the
            settings to change.
    """
    deadline = clock() + timeout
    while True:
        executors = count()
        if executors > 0:
            return executors
        if clock() >= deadline:
            raise SparkSetupError(
                f"the cluster at {master} granted no executor within {timeout:g} s "
                f"(SPARK_EXECUTOR_WAIT_SECONDS): each executor asks for "
                f"SPARK_EXECUTOR_MEMORY={executor_memory} and one core, and no worker has that "
                "free. Lower SPARK_EXECUTOR_MEMORY, give the workers more memory "
                "(spark-class ... Worker --memory, or SPARK_WORKER_MEMORY), or check that "
                "the master has live workers"
            )
        sleep(_EXECUTOR_POLL_SECONDS)


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
