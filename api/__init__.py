"""The Flask API: ``create_app`` builds it; nothing is created at import time.

``api:create_app()`` is what gunicorn serves; the settings come from the
environment (and the local services' credentials) then, or from the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from common.config import Config, get_config, set_config

if TYPE_CHECKING:
    from api.docs import Api

#: Where the API's HTML pages (Jinja templates) live, beside this file.
PAGES = "pages"


def register_api(app: Flask) -> Api:
    """Register every resource's blueprint, ``/openapi.json``, ``/docs`` and the error
    handlers on ``app``; returns the flask-smorest ``Api`` holding the document."""
    from api import binderhub, builds, farm, health, logs, metrics, templates, web
    from api.docs import Api
    from api.errors import register_error_handlers

    api = Api(app)
    register_error_handlers(app)
    for module in (builds, templates, logs, health, farm, metrics, web, binderhub):
        api.register_blueprint(module.bp)
    api.list_error_types()
    return api


def create_app(config: Config | None = None) -> Flask:
    """Build the API app for ``config`` (default: the environment's)."""
    from api.admission import ADMISSION_EXTENSION, Admission
    from api.auth import KEYS_EXTENSION
    from api.cors import register_cors
    from api.json_answers import OrjsonProvider
    from api.keys import KeyRing
    from api.request_logs import register_request_logs
    from api.request_metrics import register_request_metrics
    from api.response_headers import register_response_headers
    from common.api_keys import ensure_api_key
    from workers.celery_app import create_celery

    config = config or get_config()
    if not config.api_key:
        config = config.replace(api_key=ensure_api_key(config))
    set_config(config)
    app = Flask(__name__, template_folder=PAGES)
    app.config["BINDER"] = config
    app.extensions["celery"] = create_celery(config)  # sends work; runs no task here
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.extensions[KEYS_EXTENSION] = KeyRing(config)
    app.extensions[ADMISSION_EXTENSION] = Admission(config)
    app.json = OrjsonProvider(app)
    app.json.sort_keys = False
    register_request_metrics(app)
    register_request_logs(app)
    register_response_headers(app)
    register_api(app)
    register_cors(app, config.cors_allow_origin)
    return app
