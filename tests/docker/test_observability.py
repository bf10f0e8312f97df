"""Static checks of the observability stack: Prometheus's configuration and alert rules (by
`promtool`, from Debian's `prometheus` package), the Grafana provisioning and dashboard, and
that every metric they query is one the services export. The compose file itself is checked
with the others by `tests/docker/test_compose.py`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.stream import StreamMetrics
from monitoring.web.metrics import ServiceMetrics
from tests.docker.test_compose import included, load_compose

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
PROMETHEUS_DIR = DOCKER_DIR / "prometheus"
GRAFANA_DIR = DOCKER_DIR / "grafana"
COMPOSE = DOCKER_DIR / "compose.observability.yaml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "model-monitoring.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: scripts/system_deps.sh must install the Debian package "
    "`prometheus` (it provides /usr/bin/promtool)",
)
METRIC_NAME = re.compile(r"\b(?:monitoring|ingest)_[a-z_]+\b")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_alert_rules_pass_promtool_check_rules() -> None:
    checked = _promtool("check", "rules", "alert-rules.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@needs_promtool
def test_prometheus_config_passes_promtool_check_config() -> None:
    checked = _promtool("check", "config", "prometheus.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    tested = _promtool("test", "rules", "alert-rules.test.yml")

    assert tested.returncode == 0, tested.stdout + tested.stderr


def _exported() -> set[str]:
    """Every series name the two services can export."""
    names = {"up"}
    for registry in (ServiceMetrics().registry, StreamMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
    return names


def _rule_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alert-rules.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in _dashboard()["panels"] for target in panel["targets"]]


@pytest.mark.parametrize(
    "expressions",
    [
        pytest.param(_rule_expressions, id="alert-rules"),
        pytest.param(_dashboard_expressions, id="dashboard"),
    ],
)
def test_every_queried_metric_is_exported(expressions: Any) -> None:
    exported = _exported()
    queried = {name for expression in expressions() for name in METRIC_NAME.findall(expression)}

    assert queried, "no metric found in the expressions"
    assert queried <= exported, f"not exported by any service: {sorted(queried - exported)}"


def test_the_alert_rules_cover_every_verdict_but_healthy() -> None:
    expressions = " ".join(_rule_expressions())

    for verdict in ("data_quality", "performance_degraded", "data_drift"):
        assert f'verdict="{verdict}"' in expressions


def test_the_dashboard_shows_performance_alerts_and_drift_per_feature() -> None:
    dashboard = _dashboard()
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    expressions = " ".join(_dashboard_expressions())

    assert "Estimated against realized" in titles
    assert "monitoring_estimate{" in expressions and "monitoring_realized{" in expressions
    assert "monitoring_alerts{" in expressions and "monitoring_verdict{" in expressions
    assert "Drift per feature" in titles and "monitoring_drift{" in expressions
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"model_version", "metric"} <= variables


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = _dashboard()

    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    used |= {target["datasource"]["uid"] for p in dashboard["panels"] for target in p["targets"]}
    assert used and used <= uids


def test_prometheus_scrapes_both_services_where_compose_serves_them() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    compose = load_compose(COMPOSE)
    services = {**included(compose, DOCKER_DIR)["services"], **compose["services"]}
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }

    assert set(targets) == {"ingest", "monitoring"}
    for job, target in targets.items():
        service, port = target.split(":")
        assert service == job and service in services
        assert ["--port", port] == services[service]["command"][-2:]


def test_the_compose_mounts_exist() -> None:
    compose = load_compose(COMPOSE)

    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (DOCKER_DIR / source).exists(), f"{name}: {source} is missing"
