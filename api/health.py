"""``GET /health/``: one entry per component; 503 naming what fails."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from api.schemas import HealthSchema
from common.health import check_all

bp = Blueprint("health", __name__)


@bp.get("/health/", strict_slashes=False)
def health() -> ResponseReturnValue:
    components = check_all(current_app.config["BINDER"])
    status = 200 if all(c.status == "ok" for c in components) else 503
    return jsonify(HealthSchema().dump(components, many=True)), status
