"""The farm's pages: the builds and the farm at ``/``, one build at ``/build/<name>``.

The pages are Jinja templates in ``api/pages/`` and talk to the same JSON
API as every client (``api/static/*.js``, plain modules, no build step);
the key a person types stays in the browser tab's session storage.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, make_response, render_template

from api.auth import no_key
from api.blueprint import Blueprint
from common.build_store import NO_BUILD_INFO
from common.errors import NoBuildInfo
from common.models import SHOWN_AS_RUNNING, STEPS, Status
from common.naming import possible_name

bp = Blueprint("web", __name__, description="The farm's own web pages.")

#: The phases a build works through, in order, as the progress bar shows them.
WORK_PHASES = [step.state.value for step in STEPS]

_HTML = {"type": "string"}


#: What a person does on the pages, and the operations of the API it takes.
PAGE_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "starting and cancelling builds": (("post", "/builds/repo"), ("delete", "/builds/{name}")),
    "the list of builds": (("get", "/builds/"),),
    "a build's status, log and attempts": (("get", "/builds/{name}"),
                                           ("get", "/builds/{name}/logs"),
                                           ("get", "/builds/{name}/history")),
    "templates": (("get", "/templates/{name}"),),
    "workers and queues": (("get", "/workers/"), ("get", "/queue/")),
    "the farm's health": (("get", "/health/"),),
}


def needs_key(operation: dict[str, Any], public_reads: bool) -> bool:
    """Whether an operation of the OpenAPI document needs a key on this farm: it
    requires one, or it is a public read (the key optional) and public reads are off."""
    requirements = operation.get("security") or []
    if not requirements:
        return False
    return {} not in requirements or not public_reads


def page_access(paths: dict[str, Any], public_reads: bool) -> dict[str, list[str]]:
    """What the pages can do without a key and what needs one, for the note on every
    page, as the API's document ``paths`` declares it."""
    access: dict[str, list[str]] = {"needs_key": [], "public": []}
    for action, operations in PAGE_ACTIONS.items():
        keyed = any(needs_key(paths[path][method], public_reads) for method, path in operations)
        access["needs_key" if keyed else "public"].append(action)
    return access


def _document_paths() -> dict[str, Any]:
    api = current_app.extensions["flask-smorest"]["blp_name_to_api"][bp.name]
    return dict(api.spec.to_dict()["paths"])


def _page(template: str, script: str, **context: Any) -> Response:
    access = page_access(_document_paths(), current_app.config["BINDER"].public_reads)
    response = make_response(render_template(template, script=script, access=access, **context))
    # The pages only ever load their own scripts and styles, and talk to this API.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/")
@no_key
@bp.response(200, _HTML, content_type="text/html", description="an HTML page")
def index() -> Response:
    """The farm's page: start a build, the builds updating live, health, workers and queue."""
    return _page("index.html", "index.js",
                 statuses=[(status.value, status_label(status)) for status in Status])


def status_label(status: Status) -> str:
    """A status as the list's filter offers it: running names the statuses the list
    shows for some running builds, which the filter finds under it."""
    if status is Status.RUNNING:
        return f"running (with {' and '.join(SHOWN_AS_RUNNING)})"
    return status.value


@bp.route("/build/<name:name>")
@no_key
@bp.response(200, _HTML, content_type="text/html", description="an HTML page")
@bp.alt_response(404, response="NOT_FOUND")
def build_page(name: str) -> Response:
    """One build: its phases, the log streaming live, the image, the template, its attempts.

    The page itself reads no record (it loads for a build that is just being
    made); a name no build can have is refused here.
    """
    if not possible_name(name):
        raise NoBuildInfo(f"{NO_BUILD_INFO}: no build can be named {name}.",
                          suggestions=["Build names are lower-case letters, digits and . _ -; "
                                       "open a build from the list at /."])
    return _page("build.html", "build.js", name=name, phases=WORK_PHASES)
