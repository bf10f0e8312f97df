"""The streaming simulator's app factory."""

from __future__ import annotations

from flask import Flask

from config.settings import Settings, load_settings
from config.web import init_service
from ingest.api import ops_bp, stream_bp
from ingest.stream import StreamManager


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app; ``settings`` default to the environment's.

    `/health` reports the ``INSTANCE_ID`` setting (random when unset), so a launcher can tell
    that the service answering on the port is the one it started.
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    init_service(app, token, settings.instance_id)
    app.extensions["ingest.settings"] = settings
    # The instance id owns the app's stream leases, so two services never write one stream.
    app.extensions["ingest.streams"] = StreamManager(settings, owner=app.config["INSTANCE_ID"])
    app.register_blueprint(stream_bp)
    app.register_blueprint(ops_bp)
    return app
