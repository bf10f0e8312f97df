"""The monitoring service's Prometheus metrics: the latest stored figures and this process's
runs, served by ``GET /metrics``.

No series double-counts under ``sum()``: ``monitoring_alerts`` has one sample per alert kind
(no total), ``monitoring_verdict_chunks`` one per verdict (they add up to the run's chunks),
and ``monitoring_verdict`` is 1 for the latest chunk's verdict only.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from config.settings import Settings
from db.connection import Connection, connection
from db.errors import DatabaseError
from db.models import current_model
from db.monitoring import (
    SUCCEEDED,
    last_monitored_version,
    latest_run,
    stored_drift,
    stored_results,
)
from monitoring.compute.result import METRICS, VERDICTS

log = logging.getLogger(__name__)

# The `monitoring_drift` kinds of drift statistics (data quality is counted in the alerts).
DRIFT_STATISTIC_KINDS = ("continuous", "categorical", "multivariate")


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
        self.realized_alert = Gauge(
            "monitoring_realized_alert",
            "1 when the latest chunk with known labels is beyond the alert thresholds",
            labels,
            registry=self.registry,
        )
        self.threshold = Gauge(
            "monitoring_threshold",
            "Alert threshold of a metric (bound=lower|upper; no upper on one-sided alerts)",
            ["model_version", "metric", "bound"],
            registry=self.registry,
        )
        self.alerts = Gauge(
            "monitoring_alerts",
            "Alerts in the latest successful run, per kind (metric-chunks, feature-chunks or "
            "chunks); the kinds do not overlap",
            ["model_version", "kind"],
            registry=self.registry,
        )
        self.verdict = Gauge(
            "monitoring_verdict",
            "1 for the health verdict of the latest chunk, 0 for the others",
            ["model_version", "verdict"],
            registry=self.registry,
        )
        self.verdict_chunks = Gauge(
            "monitoring_verdict_chunks",
            "Chunks of the latest successful run per health verdict",
            ["model_version", "verdict"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "monitoring_drift",
            "Drift statistic of the latest chunk per feature ('all features': multivariate)",
            ["model_version", "feature", "method"],
            registry=self.registry,
        )
        self.drift_threshold = Gauge(
            "monitoring_drift_threshold",
            "Upper alert threshold of that drift statistic",
            ["model_version", "feature", "method"],
            registry=self.registry,
        )
        self.drift_alert = Gauge(
            "monitoring_drift_alert",
            "1 when the latest chunk's drift statistic of the feature is in alert",
            ["model_version", "feature", "method"],
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
                self.realized_alert,
                self.threshold,
                self.alerts,
                self.verdict,
                self.verdict_chunks,
                self.drift,
                self.drift_threshold,
                self.drift_alert,
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
            drift = stored_drift(conn, version)
        if run is None:
            return
        self.last_run.labels(version).set(run.finished_at.replace(tzinfo=UTC).timestamp())
        self.last_run_id.labels(version).set(run.run_id)
        for kind, count in run.alerts.items():
            if kind != "total":  # runs stored before the total was dropped
                self.alerts.labels(version, kind).set(count)
        if run.verdicts:
            latest_verdict = run.verdicts[-1]["verdict"]
            counts = dict.fromkeys(VERDICTS, 0)
            for entry in run.verdicts:
                counts[entry["verdict"]] = counts.get(entry["verdict"], 0) + 1
            for verdict, count in counts.items():
                self.verdict.labels(version, verdict).set(int(verdict == latest_verdict))
                self.verdict_chunks.labels(version, verdict).set(count)
        self._load_drift(version, drift)
        for metric in METRICS:
            rows = results[results["metric"] == metric]
            if rows.empty:
                continue
            latest = rows.iloc[-1]
            _set(self.estimate, (version, metric), latest["estimate"])
            _set(self.lower, (version, metric), latest["lower_bound"])
            _set(self.upper, (version, metric), latest["upper_bound"])
            self.estimate_alert.labels(version, metric).set(int(bool(latest["alert"])))
            _set(self.threshold, (version, metric, "lower"), latest["lower_threshold"])
            _set(self.threshold, (version, metric, "upper"), latest["upper_threshold"])
            known = rows[rows["realized"].notna()]
            if not known.empty:
                _set(self.realized, (version, metric), known["realized"].iloc[-1])
                flag = known["realized_alert"].iloc[-1]
                self.realized_alert.labels(version, metric).set(int(bool(flag)))

    def _load_drift(self, version: str, drift: pd.DataFrame) -> None:
        statistics = drift[drift["kind"].isin(DRIFT_STATISTIC_KINDS)]
        if statistics.empty:
            return
        last_chunk = statistics["chunk_start"].max()
        latest = statistics[statistics["chunk_start"] == last_chunk]
        for row in latest.itertuples(index=False):
            labels = (version, str(row.feature), str(row.method))
            _set(self.drift, labels, row.value)
            _set(self.drift_threshold, labels, row.upper_threshold)
            self.drift_alert.labels(*labels).set(int(bool(row.alert)))


def _set(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    # No figure (NaN), no sample: a child created by labels() alone would export 0.
    number = float(value)
    if not math.isnan(number):
        gauge.labels(*labels).set(number)
