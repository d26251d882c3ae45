"""Builds: start, status, list, history, cancel."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from api.auth import require_key
from api.requests import load_json, load_query
from api.schemas import BuildListQuerySchema, BuildRequestSchema, BuildSchema
from common import builds
from workers.dispatch import enqueue_fetch
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
        "display-name": spec.display_name,
        "repository": spec.repository,
        "clone_url": spec.clone_url,
        "source": spec.source,
        "ref": spec.ref,
        "force": body["force"],
    }
    record = builds.create_build(spec.name, fields, force=body["force"])
    enqueue_fetch(record)
    return jsonify(build_schema.dump(record))


@bp.get("/builds/", strict_slashes=False)
@require_key
def list_all() -> ResponseReturnValue:
    """All builds, newest first; filters ``status``, ``repository``; ``limit``, ``offset``."""
    query = load_query(BuildListQuerySchema())
    selector: dict[str, Any] = {key: query[key] for key in ("status", "repository") if key in query}
    records = builds.list_builds(selector, query["limit"], query["offset"])
    return jsonify(build_schema.dump(records, many=True))


@bp.get("/builds/<name>")
def status(name: str) -> ResponseReturnValue:
    """One build's record (the protocol's ``build status``)."""
    return jsonify(build_schema.dump(builds.get_build(name)))


@bp.get("/builds/<name>/history")
def history(name: str) -> ResponseReturnValue:
    """Every attempt of a build, newest first."""
    return jsonify(build_schema.dump(builds.history(name), many=True))


@bp.delete("/builds/<name>")
@require_key
def cancel(name: str) -> ResponseReturnValue:
    """Cancel a queued or running build; it ends ``cancelled``."""
    return jsonify(build_schema.dump(builds.request_cancel(name)))
