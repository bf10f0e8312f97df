"""`docker compose up`, stage by stage, reaches `make demo`'s end state, without Docker.

No Docker engine runs in CI, so the compose files are executed as data: every service of
every `docker/compose.*.yaml` that runs the project's image runs its `command` as a local
process, in `depends_on` order, with the compose environment (`env_file` from
`docker/.env.example`, then `environment`, interpolated as compose would), adapted to the
machine: the test's database server and a database of its own, output and model folders in a
temporary directory, and free local ports for the published ones. One-shot services run to
completion and must exit 0; long-running ones (the ingest API, the monitoring service, the
poller, the streaming query) start in the background, waited for through their own healthcheck
when they have one, and are stopped at the end. MariaDB itself is the test's server.

The check is the demo's end state: the March and streamed April days scored into
`model_predictions`, a monitoring run stored, and a day streamed through the ingest API
afterwards scored by the streaming query (restarted, as its restart policy says, should it
exit), which then stops cleanly on SIGTERM. The departures
from the compose files are the seed's size (`SMALLER`: fewer subscribers keep the model job
short), the model's cross-validation (`SMALLER_MODEL`: two folds on at most 3,000 rows) and the
folders (a temporary directory for the output, the models and the checkpoint).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from db.connection import connection, drop_database, transaction
from ingest.client import run_stream
from tests.docker.test_compose import COMPOSE_FILES, ENV_EXAMPLE, included, load_compose

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_IMAGE = "cdr-churn-pipeline:local"
# Restart policies of services that run until stopped.
LONG_RUNNING = {"always", "unless-stopped"}
# Free local ports for the published ones (this test's share of the machine).
PORT_RANGE = range(5620, 5650)
# Arguments added to a service's command, to keep the run short; everything else is as composed.
SMALLER: dict[str, list[str]] = {"seed": ["--subscribers", "600"]}
# The model job's tuning, smaller too (this test is about the wiring, not the tuning).
SMALLER_MODEL = {"MODEL_CV_FOLDS": "2", "MODEL_TUNING_MAX_ROWS": "3000"}
# Generous bounds so a stuck process fails the test instead of hanging it; not speed checks.
COMMAND_TIMEOUT = 1800.0
HEALTHY_TIMEOUT = 120.0
MONITORING_TIMEOUT = 900.0
SCORING_TIMEOUT = 600.0
# A long-running service that exits is restarted this many times (`restart: unless-stopped`).
RESTARTS = 2
# A day streamed through the ingest API once everything runs, for the streaming query.
EXTRA_STREAM = {
    "stream_id": "compose-test-extra-day",
    "batch_size": 600,
    "num_batches": 1,
    "interval": 0,
    "clock": "simulated",
    "seed": 11,
}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_]\w*)"
    r"|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


# --- Reading the compose files as compose does -------------------------------------------


def all_services() -> dict[str, dict[str, Any]]:
    """Every service of every stage's compose file, its includes' services first."""
    services: dict[str, dict[str, Any]] = {}
    for path in COMPOSE_FILES:
        compose = load_compose(path)
        for name, service in {
            **included(compose, path.parent)["services"],
            **(compose.get("services") or {}),
        }.items():
            services.setdefault(name, service)
    return services


def dependencies(service: Mapping[str, Any]) -> list[str]:
    """The services ``service`` waits for, whatever the form of its `depends_on`."""
    return list(service.get("depends_on") or [])


def dependency_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The services in an order compose could start them: each after all it depends on.

    Each step takes the first service, in the order of ``services``, whose dependencies are
    all placed. Raises ValueError on a cycle or an unknown service.
    """
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(services):
        ready = [
            name
            for name, service in services.items()
            if name not in placed and set(dependencies(service)) <= placed
        ]
        if not ready:
            waiting = sorted(set(services) - placed)
            unknown = {d for n in waiting for d in dependencies(services[n])} - set(services)
            what = f"unknown services {sorted(unknown)}" if unknown else "a cycle"
            raise ValueError(f"depends_on of {waiting} names {what}")
        order.append(ready[0])
        placed.add(ready[0])
    return order


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}`` and ``$$``.

    Raises:
        KeyError: A required (``?``) variable is unset, or empty with ``:?``.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        current = variables.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if missing else str(current)
        if op in ("?", ":?"):
            if missing:
                raise KeyError(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(substitute, value)


def env_file_variables(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file; quotes around a value are removed."""
    variables: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[key.strip()] = value
    return variables


def composed_environment(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """What the service's container gets: its env_file's variables, then `environment`."""
    env: dict[str, str] = {}
    if service.get("env_file"):
        env.update(dotenv)  # every service names the one .env (test_compose checks the example)
    environment = service.get("environment") or {}
    items = (
        environment.items()
        if isinstance(environment, Mapping)
        else (str(item).partition("=")[::2] for item in environment)
    )
    for key, value in items:
        if value is None:
            continue
        env[key] = interpolate(str(value), dotenv)
    return env


def published_ports(service: Mapping[str, Any]) -> list[int]:
    """The container ports ``service`` publishes (short syntax ``[ip:]host:container``)."""
    ports = []
    for entry in service.get("ports") or []:
        target = entry.get("target") if isinstance(entry, Mapping) else str(entry).split(":")[-1]
        ports.append(int(str(target).split("/")[0]))
    return ports


# --- Running them as local processes ------------------------------------------------------


def free_ports(candidates: Iterable[int]) -> Iterator[int]:
    """The ports of ``candidates`` that nothing listens on when they are asked for."""
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        yield port


@dataclass
class Localizer:
    """Maps the compose network's addresses to this machine's.

    A published port of a service gets a free local port; ``http://<service>:<port>`` and
    ``127.0.0.1:<port>`` (in that service's own command and healthcheck) follow it.
    """

    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    _free: Iterator[int] = field(default_factory=lambda: free_ports(PORT_RANGE))

    def publish(self, name: str, service: Mapping[str, Any]) -> None:
        for port in published_ports(service):
            self.ports[(name, port)] = next(self._free)

    def args(self, name: str, args: Sequence[str]) -> list[str]:
        """A service's command or healthcheck as it runs here."""
        local = []
        for i, arg in enumerate(args):
            if i == 0 and arg == "python":
                arg = sys.executable
            elif arg == "0.0.0.0":
                arg = "127.0.0.1"
            elif i > 0 and args[i - 1] == "--port" and (name, int(arg)) in self.ports:
                arg = str(self.ports[(name, int(arg))])
            for (service, port), local_port in self.ports.items():
                arg = arg.replace(f"//{service}:{port}", f"//127.0.0.1:{local_port}")
                if service == name:
                    arg = arg.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{local_port}/")
            local.append(arg)
        return local


@dataclass
class ComposeRun:
    """The services of one run, their logs and the background processes to stop."""

    services: dict[str, dict[str, Any]]
    environment: dict[str, str]
    dotenv: dict[str, str]
    logs: Path
    localizer: Localizer = field(default_factory=Localizer)
    background: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        composed = composed_environment(self.services[name], self.dotenv)
        return {**os.environ, **composed, **self.environment}

    def command(self, name: str) -> list[str]:
        return self.localizer.args(name, self.services[name]["command"]) + SMALLER.get(name, [])

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def run_one_shot(self, name: str) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            try:
                finished = subprocess.run(
                    self.command(name),
                    cwd=REPO_ROOT,
                    env=self.env(name),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"{name} still ran after {COMMAND_TIMEOUT:.0f} s:\n{self.log_tail(name)}"
                )
        if finished.returncode != 0:
            pytest.fail(f"{name} exited {finished.returncode}:\n{self.log_tail(name)}")

    def start(self, name: str, mode: str = "wb") -> None:
        log = (self.logs / f"{name}.log").open(mode)
        self.background[name] = subprocess.Popen(
            self.command(name), cwd=REPO_ROOT, env=self.env(name), stdout=log, stderr=log
        )
        log.close()
        healthcheck = self.services[name].get("healthcheck")
        if healthcheck:
            self._wait_healthy(name, healthcheck["test"])

    def _wait_healthy(self, name: str, test: Sequence[str]) -> None:
        assert test[0] == "CMD", f"{name}: only CMD healthchecks are run here"
        probe = self.localizer.args(name, test[1:])
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        while True:
            if self.background[name].poll() is not None:
                pytest.fail(
                    f"{name} exited {self.background[name].returncode}:\n{self.log_tail(name)}"
                )
            if subprocess.run(probe, env=self.env(name), capture_output=True).returncode == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{name} not healthy after {HEALTHY_TIMEOUT:.0f} s:\n{self.log_tail(name)}"
                )
            time.sleep(1)

    def keep_running(self, name: str) -> None:
        """Restart ``name`` if it has exited, as its restart policy would (up to
        :data:`RESTARTS` times); its log goes on in the same file."""
        process = self.background[name]
        if process.poll() is None:
            return
        self.restarts[name] = self.restarts.get(name, 0) + 1
        if self.restarts[name] > RESTARTS:
            pytest.fail(
                f"{name} exited {process.returncode} {RESTARTS + 1} times:\n{self.log_tail(name)}"
            )
        self.start(name, mode="ab")

    def stop(self, name: str) -> int:
        """SIGTERM one background service, as `docker compose stop` does; its exit status."""
        process = self.background.pop(name)
        process.terminate()
        try:
            return process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{name} did not stop within 120 s of SIGTERM:\n{self.log_tail(name)}")

    def stop_all(self) -> None:
        for process in self.background.values():
            process.terminate()
        for process in self.background.values():
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def runs_project_image(service: Mapping[str, Any]) -> bool:
    return service.get("image") == PROJECT_IMAGE or "build" in service


def is_long_running(service: Mapping[str, Any]) -> bool:
    return str(service.get("restart", "no")) in LONG_RUNNING


def _demo_constants() -> Any:
    spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flag(command: Sequence[str], flag: str) -> str:
    return command[list(command).index(flag) + 1]


# --- Fast checks of the composition -------------------------------------------------------


def test_the_stages_run_the_pipeline_in_the_demos_order() -> None:
    order = dependency_order(all_services())
    pipeline = ["db-init", "seed", "ingest", "stream", "analysis", "model", "score", "poller"]

    assert [name for name in order if name in pipeline] == pipeline


def test_the_compose_seed_and_stream_are_the_demos() -> None:
    demo = _demo_constants()
    services = all_services()
    seed, stream = services["seed"]["command"], services["stream"]["command"]

    assert _flag(seed, "--days") == demo.SEED_DAYS
    # The compose stream is the batch-scored April; the demo's own stream adds a drift.
    expected = {
        "--batch-size": demo.DEMO_STREAM["batch_size"],
        "--clock": demo.DEMO_STREAM["clock"],
        "--seed": demo.DEMO_STREAM["seed"],
    }
    assert {flag: _flag(stream, flag) for flag in expected} == {
        flag: str(value) for flag, value in expected.items()
    }


def test_the_stream_scorer_runs_until_stopped_with_its_checkpoint_in_a_volume() -> None:
    services = all_services()
    scorer = services["stream-scorer"]
    checkpoint = Path(scorer["environment"]["STREAM_CHECKPOINT_DIR"])
    mounts = {
        Path(str(volume).split(":")[1]): str(volume).split(":")[0] for volume in scorer["volumes"]
    }

    assert scorer["command"][1:] == ["-m", "spark_jobs", "stream"]
    assert is_long_running(scorer)
    assert [mounts[m] for m in mounts if checkpoint.is_relative_to(m)] == ["stream-checkpoint"]
    assert "stream-checkpoint" in load_compose(REPO_ROOT / "docker/compose.spark.yaml")["volumes"]
    assert "model" in dependencies(scorer)


def test_the_services_take_the_api_token_from_env() -> None:
    services = all_services()
    dotenv = env_file_variables(ENV_EXAMPLE)

    for name in ("ingest", "stream", "monitoring"):
        environment = services[name]["environment"]
        assert environment["API_TOKEN"].startswith("${API_TOKEN"), name
        assert composed_environment(services[name], dotenv)["API_TOKEN"] == dotenv["API_TOKEN"]
    with pytest.raises(KeyError, match="API_TOKEN"):
        composed_environment(services["ingest"], {})


def test_dependency_order_rejects_cycles_and_unknown_services() -> None:
    with pytest.raises(ValueError, match="a cycle"):
        dependency_order({"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}})
    with pytest.raises(ValueError, match="unknown services \\['c'\\]"):
        dependency_order({"a": {"depends_on": {"c": {"condition": "service_started"}}}})
    assert dependency_order({"c": {"depends_on": ["a"]}, "a": {}, "b": {}}) == ["a", "c", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "x"),
        ("$SET/$$SET", "x/$SET"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}|${EMPTY-d}", "d|"),
        ("${SET:?need it}", "x"),
        ("${UNSET}", ""),
    ],
)
def test_interpolate_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, {"SET": "x", "EMPTY": ""}) == expected


def test_interpolate_refuses_a_missing_required_variable() -> None:
    with pytest.raises(KeyError, match="EMPTY: set it"):
        interpolate("${EMPTY:?set it}", {"EMPTY": ""})


def test_localizer_follows_published_ports() -> None:
    localizer = Localizer()
    localizer.publish("api", {"ports": ["127.0.0.1:5000:5000"]})
    port = localizer.ports[("api", 5000)]

    assert localizer.args("api", ["python", "-m", "x", "--host", "0.0.0.0", "--port", "5000"]) == [
        sys.executable,
        "-m",
        "x",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    assert localizer.args("client", ["x", "--url", "http://api:5000"]) == [
        "x",
        "--url",
        f"http://127.0.0.1:{port}",
    ]
    assert localizer.args("api", ["python", "-c", "open('http://127.0.0.1:5000/health')"])[2] == (
        f"open('http://127.0.0.1:{port}/health')"
    )


# --- The whole composition --------------------------------------------------------------


@pytest.fixture
def compose_run(base_settings: Settings, tmp_path: Path) -> Iterator[ComposeRun]:
    """A run of every compose service against a database no other test uses."""
    settings = base_settings.model_copy(update={"db_name": f"cdrtest_{os.getpid()}_compose"})
    drop_database(settings)
    logs = tmp_path / "logs"
    logs.mkdir()
    run = ComposeRun(
        services=all_services(),
        dotenv=env_file_variables(ENV_EXAMPLE),
        logs=logs,
        environment={
            "DB_HOST": settings.db_host,
            "DB_PORT": str(settings.db_port),
            "DB_USER": settings.db_user,
            "DB_PASSWORD": settings.db_password.get_secret_value(),
            "DB_NAME": settings.db_name,
            "OUTPUT_DIR": str(tmp_path / "output"),
            "MODEL_DIR": str(tmp_path / "models"),
            "STREAM_CHECKPOINT_DIR": str(tmp_path / "checkpoints" / "stream"),
            **SMALLER_MODEL,
            # The image's code is this checkout.
            "PYTHONPATH": str(REPO_ROOT),
            "PYSPARK_PYTHON": sys.executable,
            "NML_DISABLE_USAGE_LOGGING": "1",
        },
    )
    try:
        yield run
    finally:
        run.stop_all()
        drop_database(settings)


def _query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _wait(run: ComposeRun, done: Callable[[], bool], what: str) -> None:
    """Wait for ``done``, restarting the stream-scorer as compose would if it exits."""
    deadline = time.monotonic() + SCORING_TIMEOUT
    while not done():
        run.keep_running("stream-scorer")
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what} not within {SCORING_TIMEOUT:.0f} s:\n{run.log_tail('stream-scorer')}"
            )
        time.sleep(0.5)


def _stream_one_more_day(run: ComposeRun, settings: Settings) -> tuple[Any, ...]:
    """Stream a day through the ingest API and wait for the streaming query to score it.

    The day is streamed once the query has fixed its first offset in its checkpoint: a query
    without one starts after the rows committed when it plans its first batch.
    """
    offsets = Path(run.environment["STREAM_CHECKPOINT_DIR"]) / "offsets"
    _wait(run, lambda: offsets.is_dir() and any(offsets.iterdir()), "the query's first offset")
    port = run.localizer.ports[("ingest", 5000)]
    token = run.dotenv["API_TOKEN"]
    final = run_stream(f"http://127.0.0.1:{port}", EXTRA_STREAM, lambda _: None, token=token)
    assert final["state"] == "completed", final
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(cdr_rows), 0), COALESCE(SUM(predictions), 0) "
        "FROM stream_batches"
    )
    _wait(run, lambda: _query(settings, sql)[0][1] >= EXTRA_STREAM["batch_size"], "scoring")
    return _query(settings, sql)[0]


def _wait_for_monitoring_run(run: ComposeRun, settings: Settings) -> tuple[Any, ...]:
    deadline = time.monotonic() + MONITORING_TIMEOUT
    while True:
        rows = _query(
            settings,
            "SELECT model_version, run_trigger, status FROM monitoring_runs ORDER BY run_id",
        )
        if rows:  # a run stores its row when it ends
            return rows[-1]
        poller = run.background["poller"]
        if poller.poll() is not None:
            pytest.fail(f"the poller exited {poller.returncode}:\n{run.log_tail('poller')}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"no monitoring run within {MONITORING_TIMEOUT:.0f} s: {rows}\n"
                f"{run.log_tail('poller')}"
            )
        time.sleep(0.5)


@pytest.mark.slow
def test_compose_up_reaches_predictions_and_a_monitoring_run(
    compose_run: ComposeRun, base_settings: Settings
) -> None:
    run = compose_run
    settings = base_settings.model_copy(update={"db_name": run.environment["DB_NAME"]})
    for name in dependency_order(run.services):
        service = run.services[name]
        if not runs_project_image(service):
            continue  # MariaDB: the test's own server stands in for it
        run.localizer.publish(name, service)
        if is_long_running(service):
            run.start(name)
        else:
            run.run_one_shot(name)

    analysed = _query(
        settings,
        "SELECT MIN(as_of_date), MAX(as_of_date), COUNT(*) FROM model_predictions "
        "WHERE period = 'analysis'",
    )
    # `make demo`'s end state: March (the seeded days after the model's test window) and the
    # streamed April days scored. How many days the stream's rows make depends on the seed's
    # population, so only its start is fixed.
    first, last, rows = analysed[0]
    assert first == date(2024, 3, 1)
    assert last > date(2024, 3, 31)
    assert rows > 0
    version, trigger, status = _wait_for_monitoring_run(run, settings)
    assert (trigger, status) == ("poller", "succeeded"), run.log_tail("poller")

    port = run.localizer.ports[("monitoring", 5001)]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
            page = response.read().decode()
    except urllib.error.URLError as exc:
        pytest.fail(f"the dashboard did not answer: {exc}\n{run.log_tail('monitoring')}")
    assert version in page

    batches, cdr_rows, predictions = _stream_one_more_day(run, settings)
    assert batches >= 1
    assert cdr_rows == EXTRA_STREAM["batch_size"]
    assert predictions > 0
    assert run.stop("stream-scorer") == 0, run.log_tail("stream-scorer")
