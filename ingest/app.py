"""The streaming simulator's app factory."""

from __future__ import annotations

from flask import Flask

from config.settings import Settings, load_settings
from ingest.api import ops_bp, register_error_handlers, stream_bp
from ingest.stream import StreamManager


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app; ``settings`` default to the environment's."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ingest.settings"] = settings
    app.extensions["ingest.streams"] = StreamManager(settings)
    app.register_blueprint(stream_bp)
    app.register_blueprint(ops_bp)
    register_error_handlers(app)
    return app
