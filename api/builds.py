"""Builds: start, status, list, history, cancel."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import current_app, request

from api.admission import ADMISSION_EXTENSION, Admission
from api.auth import current_key, public_read, require_build
from api.blueprint import Blueprint
from api.cache_hits import answer, look_up
from api.schemas.builds import (
    MAX_OFFSET,
    BuildListQuerySchema,
    BuildRequestSchema,
    BuildSchema,
)
from common import build_store, leases, name_store
from common.errors import BadDatabase, BadRepoSource, NoDatabase
from common.models import BuildRecord
from workers.dispatch import enqueue_build
from workers.placement import queue_for
from workers.providers import Spec, parse_spec, provider_for

log = logging.getLogger(__name__)

bp = Blueprint("builds", __name__, description="Start, read, list and cancel builds.")

_NEXT_PAGE = {"Link": {"description": 'on a full page, <?QUERY of the next page>; rel="next": '
                                      "a reference relative to the request's URL; none when "
                                      f"the next offset would be past {MAX_OFFSET}",
                       "schema": {"type": "string"}}}


@bp.route("/builds/repo", methods=["POST"])
@bp.route("/builds/", methods=["POST"], strict_slashes=False, endpoint="start_protocol")
@require_build
@bp.arguments(BuildRequestSchema)
@bp.response(200, BuildSchema, description="the build, started")
@bp.alt_response(409, response="CONFLICT")
@bp.alt_response(429, response="TOO_MANY_REQUESTS")
def start(body: dict[str, Any]) -> BuildRecord:
    """Start a build of a repository (the protocol's ``build start``).

    ``POST /builds/`` is the protocol's path, ``POST /builds/repo`` the
    original binder-build's; both do the same. A build of that name that is
    still running answers ``alreadyBuilding`` (409) unless ``force``; a name
    held by another repository answers ``nameTaken`` (409). A banned
    repository answers ``repositoryBanned`` (403), a start past the key's or
    the repository's rate ``rateLimited`` (429, ``Retry-After``).
    """
    name, fields = build_request(body["repository"], body["force"], body["ref"])
    return start_build(name, fields)


def build_request(repository: str, force: bool = False,
                  ref: str | None = None) -> tuple[str, dict[str, Any]]:
    """The build name and record fields a start of ``repository`` (at ``ref``, when
    given apart from it) makes; ``BadRepoSource`` says what is wrong with the spec,
    ``RepositoryBanned`` that the farm refuses it. No network: the name is claimed in
    MongoDB (one name per repository and ref, see common/name_store.py), and only
    for a repository that is not banned, so a banned start stores nothing."""
    config = current_app.config["BINDER"]
    spec = parse_spec(repository, config)
    if ref is not None:
        spec = parse_spec(provider_for(spec, config).with_ref(spec, ref), config)
    admission: Admission = current_app.extensions[ADMISSION_EXTENSION]
    admission.bans.check(spec.repository, spec.ref)
    name = name_store.claim_name(spec.preferred_name, spec.repository, spec.ref,
                                 spec.provider)
    return name, {
        "display_name": spec.display_name,
        "provider": spec.provider,
        "repository": spec.repository,
        "ref": spec.ref,
        "spec": spec.text,
        "force": force,
    }


def start_build(name: str, fields: dict[str, Any]) -> BuildRecord:
    """Admit the start (ban list, the key's and the repository's rates), store the build
    and queue its first step; ``AlreadyBuilding`` while one runs (unless ``force``).
    Content already built is answered ``completed`` and ``cached`` at once
    (``api/cache_hits.py``); else the build fetches the commit the lookup
    resolved, if it did. A start of a build that runs is refused before its ref
    is resolved. The caller has checked the request's key."""
    key = current_key()
    assert key is not None  # the caller checked it
    admission: Admission = current_app.extensions[ADMISSION_EXTENSION]
    admission.admit(key, fields["repository"], fields["ref"])
    # A start of a build that runs is refused before its ref is resolved: a burst
    # of starts of one repository asks its Git host once, not once per start.
    absent = build_store.check_startable(name, fields)
    lookup = look_up(current_app.config["BINDER"], name, fields)
    if lookup.hit is not None:  # already built: completed now, no task sent
        return answer(name, fields, lookup.hit)
    if lookup.resolved_commit:
        fields = {**fields, "resolved_commit": lookup.resolved_commit}
    # Placed before it is stored: the record is written with its host, and the host
    # is not noted in a write of its own.
    placed = queue_for(current_app.config["BINDER"], name, built_before=not absent)
    record = build_store.create_build(name, {**fields, "placed_on": placed[1]},
                                      force=bool(fields.get("force")), absent=absent)
    _send_first_step(record, placed)
    return record


def _send_first_step(record: BuildRecord, placed: tuple[str, str | None]) -> None:
    """Send the stored ``record``'s first step. Stored, the start is accepted: a store
    that fails now leaves the build for the reaper, which sends a queued build not
    marked sent (a duplicate of one that went is dropped by its claim); an error
    answered now would only send the client to start it again, into
    ``alreadyBuilding``."""
    try:
        enqueue_build(current_app.extensions["celery"], current_app.config["BINDER"], record,
                      placed)
    except (NoDatabase, BadDatabase) as exc:
        log.warning("stored %s but could not send it (%s); the reaper sends it",
                    record["name"], exc)


@bp.route("/builds/", strict_slashes=False)
@public_read
@bp.arguments(BuildListQuerySchema, location="query")
@bp.response(200, BuildSchema(many=True), description="one page of builds",
             headers=_NEXT_PAGE)
def list_all(query: dict[str, Any]) -> tuple[list[BuildRecord], dict[str, str]]:
    """Builds newest first (the protocol's ``build statusAll``), one page at a time.

    Filters ``status`` and ``repository``; ``limit`` and ``offset`` page. A full
    page carries a ``Link: <?...>; rel="next"`` header to the next one: the query of
    the next page, a reference relative to the request's URL (RFC 8288, 3.1); none
    when the next page's offset would be past the largest one the API takes.
    """
    spec = _understood(query["repository"]) if "repository" in query else None
    records = build_store.list_builds(
        status=query.get("status"),
        repository=spec.repository if spec else query.get("repository"),
        ref=spec.ref if spec else None,
        limit=query["limit"], offset=query["offset"])
    headers = {}
    next_offset = query["offset"] + query["limit"]
    # No link the query schema would refuse: past MAX_OFFSET the list ends for the API.
    if len(records) == query["limit"] and next_offset <= MAX_OFFSET:
        after = {**request.args.to_dict(), "offset": next_offset}
        # Relative, so that the client resolves it against the URL it used: the API may
        # sit behind a proxy (TLS, another host or path) whose part of the URL it cannot know.
        headers["Link"] = f'<?{urlencode(after)}>; rel="next"'
    return records, headers


def _understood(repository: str) -> Spec | None:
    """The spec as builds store it, so any spelling of a repository filters alike.

    A spec that names a ref (``/tree/REF``, ``@REF``) filters on it too.
    """
    try:
        return parse_spec(repository, current_app.config["BINDER"])
    except BadRepoSource:
        return None


@bp.route("/builds/<name:name>")
@public_read
@bp.response(200, BuildSchema)
@bp.alt_response(404, response="NOT_FOUND")
def status(name: str) -> BuildRecord:
    """One build's record (the protocol's ``build status``)."""
    return build_store.get_build(name)


@bp.route("/builds/<name:name>/history")
@public_read
@bp.response(200, BuildSchema(many=True))
@bp.alt_response(404, response="NOT_FOUND")
def history(name: str) -> list[BuildRecord]:
    """Every attempt of a build, newest first; a rebuild keeps the earlier ones."""
    return build_store.history(name)


@bp.route("/builds/<name:name>", methods=["DELETE"])
@require_build
@bp.response(200, BuildSchema, description="the build, cancelled or cancelling")
@bp.alt_response(404, response="NOT_FOUND")
def cancel(name: str) -> BuildRecord:
    """Cancel a queued or running build; it ends ``cancelled`` (idempotent): at once
    when no worker holds it, else within seconds, by the worker that does."""
    return leases.cancel(name, current_app.config["BINDER"])
