"""Builds: start, status, list, history, cancel."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from api.auth import require_key
from api.requests import load_json, load_query
from api.schemas import BuildListQuerySchema, BuildRequestSchema, BuildSchema
from common import build_store
from common.errors import BadRepoSource
from workers.dispatch import enqueue_build
from workers.sources import parse_repository

bp = Blueprint("builds", __name__)

build_schema = BuildSchema()


@bp.post("/builds/repo")
@bp.post("/builds/", strict_slashes=False)
@require_key
def start() -> ResponseReturnValue:
    """Start a build of a repository (the protocol's ``build start``)."""
    body = load_json(BuildRequestSchema())
    spec = parse_repository(body["repository"], current_app.config["BINDER"])
    fields: dict[str, Any] = {
        "display_name": spec.display_name,
        "repository": spec.repository,
        "clone_url": spec.clone_url,
        "source": spec.source,
        "ref": spec.ref,
        "force": body["force"],
    }
    record = build_store.create_build(spec.name, fields, force=body["force"])
    enqueue_build(current_app.extensions["celery"], current_app.config["BINDER"], record)
    return jsonify(build_schema.dump(record))


@bp.get("/builds/", strict_slashes=False)
@require_key
def list_all() -> ResponseReturnValue:
    """Builds newest first (the protocol's ``build statusAll``), one page at a time.

    Filters ``status`` and ``repository``; ``limit`` and ``offset`` page. A full
    page carries a ``Link: <...>; rel="next"`` header to the next one.
    """
    query = load_query(BuildListQuerySchema())
    repository = _normalised(query["repository"]) if "repository" in query else None
    records = build_store.list_builds(status=query.get("status"), repository=repository,
                                 limit=query["limit"], offset=query["offset"])
    response = jsonify(build_schema.dump(records, many=True))
    if len(records) == query["limit"]:
        after = {**request.args.to_dict(), "offset": query["offset"] + query["limit"]}
        response.headers["Link"] = f'<{request.base_url}?{urlencode(after)}>; rel="next"'
    return response


def _normalised(repository: str) -> str:
    """The repository URL as builds store it, so any spelling of it filters alike."""
    try:
        return parse_repository(repository, current_app.config["BINDER"]).repository
    except BadRepoSource:
        return repository


@bp.get("/builds/<name>")
def status(name: str) -> ResponseReturnValue:
    """One build's record (the protocol's ``build status``)."""
    return jsonify(build_schema.dump(build_store.get_build(name)))


@bp.get("/builds/<name>/history")
def history(name: str) -> ResponseReturnValue:
    """Every attempt of a build, newest first; a rebuild keeps the earlier ones."""
    return jsonify(build_schema.dump(build_store.history(name), many=True))


@bp.delete("/builds/<name>")
@require_key
def cancel(name: str) -> ResponseReturnValue:
    """Cancel a queued or running build; it ends ``cancelled`` (idempotent)."""
    return jsonify(build_schema.dump(build_store.request_cancel(name)))
