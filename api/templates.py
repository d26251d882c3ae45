"""Templates: the protocol's ``registry fetch`` and ``registry fetchAll``."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from api.auth import require_key
from api.schemas import TemplateSchema
from common import template_store

bp = Blueprint("templates", __name__)

template_schema = TemplateSchema()


@bp.get("/templates/", strict_slashes=False)
@require_key
def list_all() -> ResponseReturnValue:
    return jsonify(template_schema.dump(template_store.list_templates(), many=True))


@bp.get("/templates/<name>")
@require_key
def fetch(name: str) -> ResponseReturnValue:
    return jsonify(template_schema.dump(template_store.get_template(name)))
