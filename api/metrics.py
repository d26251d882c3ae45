"""``GET /metrics``: Prometheus text format, computed from the shared stores."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.metrics import farm_registry

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    registry = farm_registry(current_app.config["BINDER"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
