"""Templates: the protocol's ``registry fetch`` and ``registry fetchAll``."""

from __future__ import annotations

from api.auth import require_read
from api.blueprint import Blueprint
from api.schemas.templates import TemplateSchema
from common import template_store
from common.models import TemplateRecord

bp = Blueprint("templates", __name__, description="What a launcher needs to run a built image.")


@bp.route("/templates/", strict_slashes=False)
@require_read
@bp.response(200, TemplateSchema(many=True))
def list_all() -> list[TemplateRecord]:
    """Every template, by name (the protocol's ``registry fetchAll``); of more than
    1000, the 1000 built most recently."""
    return template_store.list_templates()


@bp.route("/templates/<name:name>")
@require_read
@bp.response(200, TemplateSchema)
@bp.alt_response(404, response="NOT_FOUND")
def fetch(name: str) -> TemplateRecord:
    """One build's template (the protocol's ``registry fetch``)."""
    return template_store.get_template(name)
