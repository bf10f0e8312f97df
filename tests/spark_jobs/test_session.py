"""The session factory's edges: Spark's logging setup and the wait for cluster executors."""

from __future__ import annotations

import re

import pytest

from config.cli import LOG_DATE_FORMAT, LOG_FORMAT
from config.settings import load_settings
from spark_jobs.session import (
    LOG4J_CONFIG,
    SparkSetupError,
    driver_java_options,
    is_local,
    spark_config,
    wait_for_executors,
)


class FakeClock:
    """A clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def test_waiting_returns_once_an_executor_registers() -> None:
    clock = FakeClock()
    counts = iter([0, 0, 2])
    found = wait_for_executors(
        lambda: next(counts), 10, "spark://h:7077", "4g", clock=clock, sleep=clock.sleep
    )
    assert found == 2 and clock.sleeps == 2


def test_no_executor_within_the_timeout_names_the_settings_to_change() -> None:
    clock = FakeClock()
    with pytest.raises(SparkSetupError) as error:
        wait_for_executors(lambda: 0, 3, "spark://h:7077", "4g", clock=clock, sleep=clock.sleep)
    message = str(error.value)
    assert "spark://h:7077" in message and "within 3 s" in message
    assert "SPARK_EXECUTOR_MEMORY=4g" in message and "SPARK_EXECUTOR_WAIT_SECONDS" in message
    assert 3 <= clock.now < 4


def test_local_masters_are_told_apart_from_cluster_ones() -> None:
    assert all(is_local(m) for m in ("local", "local[1]", "local[*]"))
    assert not any(is_local(m) for m in ("spark://h:7077", "yarn", "k8s://h", "localhost"))


def test_spark_logs_through_the_shipped_log4j_file(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    options = driver_java_options(settings)
    assert options == f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}"
    assert LOG4J_CONFIG.is_file()
    verbose = driver_java_options(settings.model_copy(update={"spark_verbose": True}))
    assert "-Dcdr.spark.level=INFO" in verbose and "-Dcdr.spark.chatter=INFO" in verbose
    if settings.jdbc_jar.is_file():
        assert spark_config(settings, "x")["spark.driver.extraJavaOptions"] == options


def test_the_log4j_pattern_is_python_s_log_format() -> None:
    text = LOG4J_CONFIG.read_text()
    [pattern] = re.findall(r"^appender\.console\.layout\.pattern = (.*)$", text, re.M)
    # Python: "%(asctime)s %(levelname)s %(name)s: %(message)s" with "%H:%M:%S".
    assert LOG_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"
    assert LOG_DATE_FORMAT == "%H:%M:%S"
    assert pattern.startswith("%d{HH:mm:ss} %level{WARN=WARNING")
    assert pattern.endswith("} %c: %m%n")
    levels = dict(re.findall(r"^logger\.(\w+)\.name = (\S+)$", text, re.M))
    chatter = {
        "org.apache.hadoop.util.NativeCodeLoader",
        "org.apache.spark.scheduler.DAGScheduler",
        "org.apache.spark.util.SparkStringUtils",
    }
    assert chatter <= set(levels.values())
    assert text.count("${sys:cdr.spark.chatter:-ERROR}") == len(chatter)
