"""The farm's web page: recent builds, and any build's log followed live."""

from __future__ import annotations

from flask import Response, make_response, render_template

from api.auth import no_key
from api.blueprint import Blueprint

bp = Blueprint("web", __name__, description="The farm's own web page.")


@bp.route("/")
@no_key
@bp.response(200, {"type": "string"}, content_type="text/html", description="an HTML page")
def index() -> Response:
    """The farm's page: builds, their status and live logs."""
    return make_response(render_template("index.html"))
