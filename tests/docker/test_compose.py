"""Static checks of `docker/compose*.yaml`: the Compose Specification schema and project rules.

No Docker engine runs in CI, so the files are checked as data. Each rule is a function from a
loaded compose file to a list of problems, and is shown failing on a small broken file too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILES = sorted(DOCKER_DIR.glob("compose*.yaml"))
COMPOSE_SPEC = REPO_ROOT.parent / "shared" / "vendor-data" / "compose-spec.json"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"

DATABASE_IMAGE = re.compile(r"^(?:docker\.io/)?(?:library/)?(?:mariadb|mysql)(?:[:@]|$)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY", re.IGNORECASE)
# `${VAR}` or `${VAR:?message}` take the value from elsewhere; `${VAR:-default}` would inline it.
VARIABLE_REFERENCE = re.compile(r"^\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*(?::?\?[^}]*)?\})$")
# Restart policies under which a container never "completes".
ENDLESS_RESTART = {"always", "unless-stopped"}

Compose = Mapping[str, Any]


def load_compose(path: Path) -> dict[str, Any]:
    """Parse one compose file; YAML anchors and `<<` merge keys are resolved by the loader."""
    compose = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(compose, dict), f"{path.name}: top level is not a mapping"
    return compose


def included(compose: Compose, base_dir: Path) -> dict[str, dict[str, Any]]:
    """The services, volumes and networks of the files `compose` includes, recursively."""
    found: dict[str, dict[str, Any]] = {"services": {}, "volumes": {}, "networks": {}}
    for entry in compose.get("include") or []:
        paths = entry if isinstance(entry, str) else entry["path"]
        for relative in [paths] if isinstance(paths, str) else paths:
            path = (base_dir / relative).resolve()
            child = load_compose(path)
            for section, items in included(child, path.parent).items():
                found[section].update(items)
            for section in found:
                found[section].update(child.get(section) or {})
    return found


def _services(compose: Compose) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from (compose.get("services") or {}).items()


def _environment(service: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    environment = service.get("environment") or {}
    if isinstance(environment, Mapping):
        yield from environment.items()
        return
    for item in environment:
        name, sep, value = str(item).partition("=")
        yield name, value if sep else None


def _env_files(service: Mapping[str, Any]) -> list[str]:
    env_file = service.get("env_file") or []
    entries = [env_file] if isinstance(env_file, str) else env_file
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


def _dependencies(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, Mapping):
        return {name: dict(spec) for name, spec in depends_on.items()}
    return {name: {"condition": "service_started"} for name in depends_on}


def _has_healthcheck(service: Mapping[str, Any]) -> bool:
    healthcheck = service.get("healthcheck")
    if not healthcheck or healthcheck.get("disable") in (True, "true"):
        return False
    test = healthcheck.get("test")
    return bool(test) and test not in ("NONE", ["NONE"])


def _named_volumes(service: Mapping[str, Any]) -> Iterator[str]:
    for volume in service.get("volumes") or []:
        if isinstance(volume, Mapping):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                yield volume["source"]
            continue
        source, sep, _ = str(volume).partition(":")
        # Without a colon it is an anonymous volume; paths and variables are bind mounts.
        if sep and not source.startswith(("/", ".", "~", "$")):
            yield source


def _networks(service: Mapping[str, Any]) -> Iterator[str]:
    networks = service.get("networks") or []
    yield from (name for name in networks if name != "default")


def database_services(compose: Compose) -> set[str]:
    """Services running a MariaDB or MySQL image."""
    return {
        name
        for name, service in _services(compose)
        if DATABASE_IMAGE.match(service.get("image", ""))
    }


def database_clients(compose: Compose, others: Compose) -> set[str]:
    """Services that depend, directly or through other services, on a database service."""
    every = {**others.get("services", {}), **(compose.get("services") or {})}
    databases = database_services({"services": every})
    clients: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, service in every.items():
            if name not in clients and set(_dependencies(service)) & (databases | clients):
                clients.add(name)
                changed = True
    return clients


def inline_secrets(compose: Compose, others: Compose) -> list[str]:
    """Secret-looking variables given a literal value in `environment`."""
    return [
        f"{name}: environment sets {key} inline; put it in the env_file"
        for name, service in _services(compose)
        for key, value in _environment(service)
        if SECRET_NAME.search(key)
        and value is not None
        and not VARIABLE_REFERENCE.match(str(value))
    ]


def database_users_without_env_file(compose: Compose, others: Compose) -> list[str]:
    """Databases and their clients that do not take their settings from an env_file."""
    users = database_services(compose) | database_clients(compose, others)
    return [
        f"{name}: a database or its client without env_file"
        for name, service in _services(compose)
        if name in users and not _env_files(service)
    ]


def undeclared_resources(compose: Compose, others: Compose) -> list[str]:
    """Named volumes and networks a service uses that no top-level key declares."""
    volumes = {*(compose.get("volumes") or {}), *others.get("volumes", {})}
    networks = {*(compose.get("networks") or {}), *others.get("networks", {})}
    problems = []
    for name, service in _services(compose):
        problems += [
            f"{name}: volume {v!r} is not declared"
            for v in _named_volumes(service)
            if v not in volumes
        ]
        problems += [
            f"{name}: network {n!r} is not declared"
            for n in _networks(service)
            if n not in networks
        ]
    return problems


def ports_without_healthcheck(compose: Compose, others: Compose) -> list[str]:
    """Services publishing ports without a healthcheck of their own."""
    return [
        f"{name}: publishes ports but has no healthcheck"
        for name, service in _services(compose)
        if service.get("ports") and not _has_healthcheck(service)
    ]


def broken_dependencies(compose: Compose, others: Compose) -> list[str]:
    """`depends_on` entries naming no service or waiting for a state that cannot come."""
    every = {**others.get("services", {}), **(compose.get("services") or {})}
    problems = []
    for name, service in _services(compose):
        for target, spec in _dependencies(service).items():
            condition = spec.get("condition")
            if target not in every:
                problems.append(f"{name}: depends on unknown service {target!r}")
            elif condition == "service_healthy" and not _has_healthcheck(every[target]):
                problems.append(
                    f"{name}: waits for {target!r} to be healthy; it has no healthcheck"
                )
            elif (
                condition == "service_completed_successfully"
                and str(every[target].get("restart", "no")) in ENDLESS_RESTART
            ):
                problems.append(f"{name}: waits for {target!r} to complete; it restarts forever")
    return problems


RULES: list[Callable[[Compose, Compose], list[str]]] = [
    inline_secrets,
    database_users_without_env_file,
    undeclared_resources,
    ports_without_healthcheck,
    broken_dependencies,
]


@pytest.fixture(scope="module")
def compose_validator() -> Validator:
    if not COMPOSE_SPEC.is_file():
        pytest.skip(f"Compose Specification schema not found at {COMPOSE_SPEC}")
    schema = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    validator_class = validator_for(schema, default=Draft7Validator)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _schema_errors(validator: Validator, compose: Compose) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
        for error in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.path)))
    ]


def test_compose_files_exist() -> None:
    assert COMPOSE_FILES, f"no compose*.yaml in {DOCKER_DIR}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_compose_file_matches_the_compose_specification(
    compose_validator: Validator, path: Path
) -> None:
    assert _schema_errors(compose_validator, load_compose(path)) == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_compose_file_follows_project_rule(
    path: Path, rule: Callable[[Compose, Compose], list[str]]
) -> None:
    compose = load_compose(path)
    assert rule(compose, included(compose, path.parent)) == []


def test_the_schema_rejects_a_broken_compose_file(compose_validator: Validator) -> None:
    errors = _schema_errors(compose_validator, {"services": {"x": {"image": 1, "bogus": True}}})

    assert any("services/x/image" in error and "not of type" in error for error in errors), errors
    assert any(error.startswith("services/x: 'bogus'") for error in errors), errors


BROKEN: list[tuple[Callable[[Compose, Compose], list[str]], dict[str, Any], list[str]]] = [
    (
        inline_secrets,
        {
            "services": {
                "app": {"environment": {"DB_PASSWORD": "hunter2"}},
                "db": {"environment": ["MARIADB_ROOT_PASSWORD=${ROOT_PASSWORD:-hunter2}"]},
            }
        },
        [
            "app: environment sets DB_PASSWORD inline; put it in the env_file",
            "db: environment sets MARIADB_ROOT_PASSWORD inline; put it in the env_file",
        ],
    ),
    (
        database_users_without_env_file,
        {
            "services": {
                "db": {"image": "mariadb:10.11"},
                "migrate": {"image": "app", "depends_on": ["db"], "env_file": ".env"},
                "job": {"depends_on": {"migrate": {"condition": "service_started"}}},
                "docs": {"image": "nginx"},
            }
        },
        [
            "db: a database or its client without env_file",
            "job: a database or its client without env_file",
        ],
    ),
    (
        undeclared_resources,
        {
            "services": {
                "db": {
                    "volumes": ["data:/var/lib/mysql", "./conf:/etc/mysql", "/tmp"],
                    "networks": {"backend": None, "front": None},
                }
            },
            "networks": {"backend": None},
        },
        ["db: volume 'data' is not declared", "db: network 'front' is not declared"],
    ),
    (
        ports_without_healthcheck,
        {
            "services": {
                "api": {"ports": ["5000:5000"]},
                "ui": {"ports": ["80:80"], "healthcheck": {"test": ["NONE"]}},
            }
        },
        [
            "api: publishes ports but has no healthcheck",
            "ui: publishes ports but has no healthcheck",
        ],
    ),
    (
        broken_dependencies,
        {
            "services": {
                "db": {"image": "mariadb:10.11"},
                "init": {"restart": "always"},
                "app": {
                    "depends_on": {
                        "db": {"condition": "service_healthy"},
                        "init": {"condition": "service_completed_successfully"},
                        "cache": {"condition": "service_started"},
                    }
                },
            }
        },
        [
            "app: waits for 'db' to be healthy; it has no healthcheck",
            "app: waits for 'init' to complete; it restarts forever",
            "app: depends on unknown service 'cache'",
        ],
    ),
]


@pytest.mark.parametrize(
    ("rule", "compose", "expected"), BROKEN, ids=[rule.__name__ for rule, *_ in BROKEN]
)
def test_each_rule_reports_a_broken_compose_file(
    rule: Callable[[Compose, Compose], list[str]], compose: dict[str, Any], expected: list[str]
) -> None:
    assert rule(compose, {}) == expected


def test_inline_secret_rule_accepts_references_and_names_only() -> None:
    compose = {
        "services": {
            "app": {
                "environment": {"DB_PASSWORD": "${DB_PASSWORD:?set it in .env}", "DB_USER": "cdr"}
            },
            "db": {"environment": ["MARIADB_ROOT_PASSWORD"]},
        }
    }

    assert inline_secrets(compose, {}) == []


def test_includes_declare_resources_for_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "services: {db: {image: 'mariadb:10.11', healthcheck: {test: [CMD, 'true']}}}\n"
        "volumes: {data: null}\nnetworks: {backend: null}\n",
        encoding="utf-8",
    )
    stage = {
        "include": ["base.yaml"],
        "services": {
            "job": {
                "volumes": ["data:/data"],
                "networks": ["backend"],
                "depends_on": {"db": {"condition": "service_healthy"}},
            }
        },
    }
    others = included(stage, tmp_path)

    assert undeclared_resources(stage, others) == []
    assert broken_dependencies(stage, others) == []


def _env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_every_env_file_has_a_committed_example(path: Path) -> None:
    compose = load_compose(path)
    env_files = {env_file for _, service in _services(compose) for env_file in _env_files(service)}

    missing = [f for f in sorted(env_files) if not (path.parent / f"{f}.example").is_file()]
    assert missing == []


def test_env_example_points_the_pipeline_at_the_database_service() -> None:
    env = _env_example()
    databases = set().union(*(database_services(load_compose(path)) for path in COMPOSE_FILES))

    assert env["DB_HOST"] in databases
    assert env["DB_NAME"] == env["MARIADB_DATABASE"]
    assert env["DB_USER"] == env["MARIADB_USER"]
    assert env["DB_PASSWORD"] == env["MARIADB_PASSWORD"]


def test_env_example_holds_placeholders_not_passwords() -> None:
    secrets = {key: value for key, value in _env_example().items() if SECRET_NAME.search(key)}

    assert {"DB_PASSWORD", "MARIADB_ROOT_PASSWORD"} <= secrets.keys()
    assert [key for key, value in secrets.items() if "change-me" not in value] == []
