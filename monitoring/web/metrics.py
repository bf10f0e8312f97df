"""The monitoring service's Prometheus metrics: the latest stored figures and this process's
runs, served by ``GET /metrics``."""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from config.settings import Settings
from db.connection import Connection, connection
from db.errors import DatabaseError
from db.models import current_model
from db.monitoring import (
    SUCCEEDED,
    last_monitored_version,
    latest_run,
    stored_results,
)
from monitoring.compute.result import METRICS

log = logging.getLogger(__name__)


def monitored_version(conn: Connection) -> str | None:
    """The version the dashboard and metrics show by default: the current model, else the
    version of the latest successful run."""
    model = current_model(conn)
    return model.version if model is not None else last_monitored_version(conn)


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per app).

    The latest figures come from the database at each scrape, so they include the poller's
    runs; the run counters and durations count this process's runs only.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model_version", "metric"]
        self.estimate = Gauge(
            "monitoring_estimate",
            "CBPE estimate of the latest chunk of the latest successful run",
            labels,
            registry=self.registry,
        )
        self.lower = Gauge(
            "monitoring_estimate_lower",
            "Lower confidence bound of that estimate (3 sampling errors)",
            labels,
            registry=self.registry,
        )
        self.upper = Gauge(
            "monitoring_estimate_upper",
            "Upper confidence bound of that estimate",
            labels,
            registry=self.registry,
        )
        self.estimate_alert = Gauge(
            "monitoring_estimate_alert",
            "1 when the latest chunk's estimate is outside the alert thresholds",
            labels,
            registry=self.registry,
        )
        self.realized = Gauge(
            "monitoring_realized",
            "Realized value of the latest chunk with known labels",
            labels,
            registry=self.registry,
        )
        self.alerts = Gauge(
            "monitoring_alerts",
            "Chunks in alert in the latest successful run, per kind of alert",
            ["model_version", "kind"],
            registry=self.registry,
        )
        self.last_run = Gauge(
            "monitoring_last_run_timestamp_seconds",
            "When the latest successful run finished (Unix time)",
            ["model_version"],
            registry=self.registry,
        )
        self.last_run_id = Gauge(
            "monitoring_last_run_id",
            "Run id of the latest successful run",
            ["model_version"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "monitoring_database_up",
            "1 when the latest scrape could read the stored results",
            registry=self.registry,
        )
        self.runs = Counter(
            "monitoring_runs",
            "Runs requested from this service, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "monitoring_run_duration_seconds",
            "Wall time of the successful runs requested from this service",
            buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self._lock = threading.Lock()

    def refresh(self, settings: Settings) -> None:
        """Set the gauges of the latest figures from the database (under a lock: scrapes may
        run in parallel). A database error leaves them empty and ``database_up`` at 0."""
        with self._lock:
            for gauge in (
                self.estimate,
                self.lower,
                self.upper,
                self.estimate_alert,
                self.realized,
                self.alerts,
                self.last_run,
                self.last_run_id,
            ):
                gauge.clear()
            try:
                self._load(settings)
            except DatabaseError as exc:
                log.warning("metrics: cannot read the stored results: %s", exc)
                self.database_up.set(0)
                return
            self.database_up.set(1)

    def _load(self, settings: Settings) -> None:
        with connection(settings) as conn:
            version = monitored_version(conn)
            if version is None:
                return
            run = latest_run(conn, version, SUCCEEDED)
            results = stored_results(conn, version)
        if run is None:
            return
        self.last_run.labels(version).set(run.finished_at.replace(tzinfo=UTC).timestamp())
        self.last_run_id.labels(version).set(run.run_id)
        for kind, count in run.alerts.items():
            self.alerts.labels(version, kind).set(count)
        for metric in METRICS:
            rows = results[results["metric"] == metric]
            if rows.empty:
                continue
            latest = rows.iloc[-1]
            _set(self.estimate, (version, metric), latest["estimate"])
            _set(self.lower, (version, metric), latest["lower_bound"])
            _set(self.upper, (version, metric), latest["upper_bound"])
            self.estimate_alert.labels(version, metric).set(int(bool(latest["alert"])))
            known = rows["realized"].dropna()
            if not known.empty:
                _set(self.realized, (version, metric), known.iloc[-1])


def _set(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    # No figure (NaN), no sample: a child created by labels() alone would export 0.
    number = float(value)
    if not math.isnan(number):
        gauge.labels(*labels).set(number)
