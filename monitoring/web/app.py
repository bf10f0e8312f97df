"""The monitoring service's app factory, and serving it with waitress.

``GET /run-monitoring`` runs the monitoring of a model version (see `monitoring.web.views` for
the status codes; it needs ``Authorization: Bearer <API_TOKEN>`` when ``API_TOKEN`` is set),
``GET /`` is the dashboard of the latest stored figures (with ``GET /dashboard/state``, which
it polls, and ``GET /dashboard/drilldown``, see `monitoring.web.dashboard`), ``GET /metrics``
their Prometheus exposition and ``GET /health`` says whether the database answers. These
stay open.
"""

from __future__ import annotations

import logging

from flask import Flask

from config.settings import Settings, load_settings
from config.web import init_service
from config.web import serve as serve_app
from db.connection import database_exists
from db.errors import DatabaseError
from monitoring.web.dashboard import dashboard_bp
from monitoring.web.metrics import ServiceMetrics
from monitoring.web.views import METRICS_KEY, SETTINGS_KEY, ops_bp, runs_bp

log = logging.getLogger(__name__)

DEFAULT_THREADS = 4
PORT_SETTING = "MONITORING_PORT"


class DatabaseMissing(DatabaseError):
    """The configured database does not exist: serving would answer 503 to everything."""


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app; ``settings`` default to the environment's."""
    settings = settings or load_settings()
    # No package static folder: the dashboard blueprint serves plotly.js from plotly itself.
    app = Flask(__name__, static_folder=None)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    init_service(app, token, settings.instance_id)
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[METRICS_KEY] = ServiceMetrics()
    app.register_blueprint(runs_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(dashboard_bp)
    return app


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Check that the database exists and its schema is current, then serve until interrupted.

    Args:
        settings: The service's settings.
        host: Address to listen on; default ``settings.monitoring_host``.
        port: Port; default ``settings.monitoring_port``.
        threads: Request threads. Runs are serialised whatever the number; the others answer
            the dashboard, /metrics and /health meanwhile.

    Raises:
        DatabaseMissing: ``DB_NAME`` names no database: a typo is not silently served.
        PortInUse: The port is taken (the message names ``MONITORING_PORT``).
        DatabaseError: The server cannot be reached or the schema brought up to date.
    """
    from db.migrate import init_database

    if not database_exists(settings):
        raise DatabaseMissing(
            f"database {settings.db_name!r} does not exist: check DB_NAME, or create it "
            "with `python -m db init`"
        )
    init_database(settings)  # an existing database gets the newest monitoring tables
    app = create_app(settings)
    host = host or settings.monitoring_host
    port = port or settings.monitoring_port
    log.info("monitoring service on http://%s:%s", host, port)
    serve_app(app, host, port, PORT_SETTING, threads=threads)
