"""A Spark standalone cluster (one master, one worker) started from the pyspark package.

Use the ``spark_cluster`` fixture (import it into a test module, or a conftest). It binds
only 127.0.0.1 and ports of this suite's range, writes its logs and work files under a
temporary folder, and stops exactly the processes it started (each in its own process
group, so the worker's executors go with it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MASTER_PORT = 7301
MASTER_UI_PORT = 7302
WORKER_PORT = 7303
WORKER_UI_PORT = 7304
WORKER_MEMORY = "1g"
# The jobs' own ports (driver RPC, driver and executor block managers), fixed as on a host
# behind a firewall; each is retried upwards (spark.port.maxRetries) when taken.
JOB_PORTS = {
    "spark.driver.port": 7310,
    "spark.driver.blockManager.port": 7330,
    "spark.blockManager.port": 7340,
}
_PORT_RETRIES = 9
_START_TIMEOUT = 90.0


@dataclass(frozen=True)
class SparkCluster:
    """A running standalone cluster: its master URL and one worker's resources."""

    master_url: str
    ui_url: str
    worker_memory: str
    log_dir: Path

    @property
    def conf_dir(self) -> Path:
        """The jobs' `SPARK_CONF_DIR`: a `spark-defaults.conf` with :data:`JOB_PORTS`."""
        return self.log_dir / "conf"

    @property
    def work_dir(self) -> Path:
        """The worker's folder: `<app id>/<executor id>/stderr` is each executor's log."""
        return self.log_dir / "work"

    def state(self) -> dict[str, Any]:
        """The master's JSON status (workers, applications)."""
        with urllib.request.urlopen(f"{self.ui_url}/json", timeout=5) as answer:
            return dict(json.load(answer))

    def job_environment(self) -> dict[str, str]:
        """The environment of a driver (`python -m spark_jobs ...`) run on this cluster."""
        return {**cluster_environment(), "SPARK_CONF_DIR": str(self.conf_dir)}

    def executor_logs(self, app_id: str) -> dict[str, str]:
        """The stderr of each executor the worker ran for ``app_id``, by executor id."""
        return {
            path.parent.name: path.read_text(errors="replace")
            for path in sorted((self.work_dir / app_id).glob("*/stderr"))
        }

    def logs(self) -> str:
        """The master's and worker's logs, for a failing test's message."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def spark_class() -> Path:
    """`bin/spark-class` of the installed pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "bin" / "spark-class"


def cluster_environment() -> dict[str, str]:
    """The environment of the master, worker and their executors."""
    return {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        # Executors run Python workers with the interpreter running the tests.
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }


@contextmanager
def _daemon(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(spark_class()), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=cluster_environment(),
            start_new_session=True,  # its own process group: the stop takes its children too
        )
    try:
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(
    condition: str, check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{condition}: the process exited\n{log.read_text()[-4000:]}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{condition}: not within {_START_TIMEOUT:g} s\n{log.read_text()[-4000:]}")


@contextmanager
def standalone_cluster(folder: Path) -> Iterator[SparkCluster]:
    """Start a master and a worker of ``WORKER_MEMORY`` and one core; stop both on exit."""
    cluster = SparkCluster(
        master_url=f"spark://127.0.0.1:{MASTER_PORT}",
        ui_url=f"http://127.0.0.1:{MASTER_UI_PORT}",
        worker_memory=WORKER_MEMORY,
        log_dir=folder,
    )
    cluster.conf_dir.mkdir()
    (cluster.conf_dir / "spark-defaults.conf").write_text(
        "".join(f"{key} {port}\n" for key, port in JOB_PORTS.items())
        + f"spark.port.maxRetries {_PORT_RETRIES}\n"
    )
    with ExitStack() as stack:
        master_log = folder / "master.log"
        master = stack.enter_context(
            _daemon(
                [
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(MASTER_PORT),
                    "--webui-port",
                    str(MASTER_UI_PORT),
                ],
                master_log,
            )
        )
        _wait_for("the Spark master", lambda: "workers" in cluster.state(), master, master_log)
        worker_log = folder / "worker.log"
        worker = stack.enter_context(
            _daemon(
                [
                    "org.apache.spark.deploy.worker.Worker",
                    cluster.master_url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(WORKER_PORT),
                    "--webui-port",
                    str(WORKER_UI_PORT),
                    "--memory",
                    WORKER_MEMORY,
                    "--cores",
                    "1",
                    "--work-dir",
                    str(cluster.work_dir),
                ],
                worker_log,
            )
        )

        def worker_alive() -> bool:
            workers: list[dict[str, Any]] = cluster.state().get("workers", [])
            return any(w.get("state") == "ALIVE" for w in workers)

        _wait_for("the Spark worker", worker_alive, worker, worker_log)
        yield cluster


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A standalone cluster for the tests of one module (see :func:`standalone_cluster`)."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster
