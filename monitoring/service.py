"""The monitoring service's app factory, and serving it with waitress.

``GET /run-monitoring`` runs the monitoring of a model version (see `monitoring.api` for the
status codes), ``GET /`` is the dashboard of the latest stored figures, ``GET /metrics`` their
Prometheus exposition and ``GET /health`` says whether the database answers.
"""

from __future__ import annotations

import logging

from flask import Flask

from config.settings import Settings, load_settings
from monitoring.api import (
    METRICS_KEY,
    SETTINGS_KEY,
    ServiceMetrics,
    ops_bp,
    register_error_handlers,
    runs_bp,
)
from monitoring.dashboard import dashboard_bp

log = logging.getLogger(__name__)

DEFAULT_THREADS = 4


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app; ``settings`` default to the environment's."""
    settings = settings or load_settings()
    # No package static folder: the dashboard blueprint serves plotly.js from plotly itself.
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[METRICS_KEY] = ServiceMetrics()
    app.register_blueprint(runs_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(dashboard_bp)
    register_error_handlers(app)
    return app


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Bring the schema up to date, then serve the app with waitress until interrupted.

    Args:
        settings: The service's settings.
        host: Address to listen on; default ``settings.monitoring_host``.
        port: Port; default ``settings.monitoring_port``.
        threads: Request threads. Runs are serialised whatever the number; the others answer
            the dashboard, /metrics and /health meanwhile.

    Raises:
        DatabaseError: The schema could not be brought up to date.
    """
    from waitress import serve as waitress_serve

    from db.migrate import init_database

    init_database(settings)  # a fresh database gets its tables instead of 500s
    host = host or settings.monitoring_host
    port = port or settings.monitoring_port
    app = create_app(settings)
    log.info("monitoring service on http://%s:%s", host, port)
    waitress_serve(app, host=host, port=port, threads=threads)
