"""BinderHub's build API in its build-only mode, over the farm's own builds and logs.

Launchers written for BinderHub (and its npm client
``@jupyterhub/binderhub-client``) open ``GET /build/<prefix>/<spec>
?build_only=true`` as an EventSource and read ``data: {json}`` events:

- ``{"phase": "waiting", "message": "Waiting for build to start...\\n"}`` first;
- every log line as ``{"phase": P, "message": LINE + "\\n"}``, ``P`` being
  ``waiting``, ``fetching``, ``building`` or ``pushing`` (the farm's phase
  the line belongs to, in BinderHub's words);
- at the end ``{"phase": "ready", "message": "Done! Image built\\n",
  "imageName": IMAGE}`` (``"Done! Found built image\\n"`` when nothing had
  to be built) or ``{"phase": "failed", "message": ERROR + "\\n"}``, the error
  followed by its suggestions;
- a ``:keepalive`` comment every 25 seconds.

A request for a spec whose build is running attaches to it and replays its
log from the start; one already built (same content, image in the
registry) answers ``ready`` at once. Errors are events too (an EventSource
cannot read an error body): ``{"phase": "failed", "status_code": N,
"message": ...}``, as BinderHub sends them. Also here: ``/versions``,
BinderHub's public ``/health`` and ``/api/repoproviders``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, request, stream_with_context

from api.auth import check_scope, no_key
from api.binderhub_specs import PREFIXES, farm_spec
from api.blueprint import Blueprint
from api.builds import build_request, start_build
from api.health import check_all
from api.keys import Scope
from api.log_follow import (
    FOLLOW_MAX_SECONDS,
    Ended,
    Failed,
    KeepAlive,
    Lines,
    bound_writes,
    client_left,
    follow,
    take_follower_slot,
)
from api.schemas.binderhub import BinderHubHealthSchema, RepoProviderSchema, VersionsSchema
from common import build_store, log_store
from common.config import Config
from common.errors import AlreadyBuilding, BinderError, NoBuildInfo
from common.models import BuildRecord, Phase, Status

bp = Blueprint("binderhub", __name__,
               description="BinderHub's build API (build-only mode), for BinderHub launchers.")

#: BinderHub's keepalive period: idle proxies keep the stream open.
KEEPALIVE_SECONDS = 25
#: How long the check that a finished build is still current may take.
RESOLVE_SECONDS = 10

#: The farm's phases in BinderHub's words.
BINDERHUB_PHASES = {
    Phase.QUEUED: "waiting",
    Phase.FETCHING: "fetching",
    Phase.DETECTING: "building",
    Phase.BUILDING: "building",
    Phase.PUSHING: "pushing",
    Phase.REGISTERING: "pushing",
    Phase.FINISHED: "pushing",
}

WAITING = {"phase": "waiting", "message": "Waiting for build to start...\n"}
BUILT = "Done! Image built\n"
FOUND = "Done! Found built image\n"


def _data(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def _failed(message: str, status_code: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"phase": "failed"}
    if status_code is not None:
        event["status_code"] = status_code
    event["message"] = message.rstrip("\n") + "\n"
    return event


def _with_suggestions(message: str, suggestions: list[str]) -> str:
    """One message for the protocol's single ``message``: the sentence, then each suggestion."""
    sentence = message if message.endswith((".", "?", "!")) else f"{message}."
    return " ".join([sentence, *suggestions])


def _error_event(exc: BinderError) -> dict[str, Any]:
    return _failed(_with_suggestions(exc.message, exc.suggestions), exc.status)


def _stream(events: Iterator[str]) -> Response:
    return Response(stream_with_context(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _raw_spec(prefix: str, routed: str) -> str:
    """The spec as the client escaped it: ``gl`` and ``git`` specs carry ``%2F`` that
    the routed (decoded) path has lost."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        path = urlsplit(raw).path
        marker = f"/build/{prefix}/"
        at = path.find(marker)
        if at >= 0:
            return path[at + len(marker):]
    return routed


@bp.route("/build/<prefix>/<path:spec>")
@bp.doc(security=[{"apiKey": []}],
        parameters=[{"name": "build_only", "in": "query", "required": True,
                     "schema": {"type": "string", "enum": ["true"]},
                     "description": "this farm serves BinderHub's build-only mode"}],
        responses={200: {"description": "Server-Sent Events (data: one JSON object each), "
                                        "errors included",
                         "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
def build(prefix: str, spec: str) -> Response:
    """BinderHub's ``GET /build/<provider>/<spec>?build_only=true`` as an event stream.

    Starts the build of the spec (or attaches to the running one) and
    streams its phases and log in BinderHub's events until ``ready`` or
    ``failed``. Prefixes: gh, gl, gist, git, zenodo, figshare, dataverse.
    ``HEAD`` answers the stream's headers and starts nothing.
    """
    if request.method == "HEAD":
        # Flask answers HEAD with the GET view; a HEAD (a link checker, a proxy's
        # probe) must not start a build.
        return _stream(iter(()))
    config: Config = current_app.config["BINDER"]
    try:
        check_scope(Scope.BUILD)
    except BinderError as exc:  # no key, or one that may not start builds
        return _stream(iter([_data(_error_event(exc))]))
    if request.args.get("build_only", "").lower() != "true":
        return _stream(iter([_data(_failed(
            "This server builds images only (BinderHub's build-only mode) and launches "
            "nothing: add ?build_only=true to the request.", 400))]))
    try:
        # Before the build starts: a process that cannot follow one more build
        # refuses the request whole, and the launcher's retry starts it.
        give_back = take_follower_slot(config.api_threads)
    except BinderError as exc:
        return _stream(iter([_data(_error_event(exc))]))
    try:
        text = farm_spec(prefix, _raw_spec(prefix, spec), config)
        # Refuses a banned repository, also one built or begun before the ban: its
        # image is not handed out.
        name, fields = build_request(text)
        record = _current_or_started(config, name, fields, text)
    except BinderError as exc:
        give_back()
        return _stream(iter([_data(_error_event(exc))]))
    except BaseException:  # a failure of the farm's own: answered 500, the slot kept by none
        give_back()
        raise
    if record["status"] == Status.COMPLETED.value:
        give_back()
        return _stream(iter([_data(_ready(record, FOUND))]))
    response = _stream(_follow(record, client_left(request.environ)))
    response.call_on_close(give_back)
    response.call_on_close(bound_writes(request.environ))
    return response


def _current_or_started(config: Config, name: str, fields: dict[str, Any],
                        text: str) -> BuildRecord:
    """The running build of ``name``, its finished build when still current, or a new one."""
    try:
        record = build_store.get_build(name)
    except NoBuildInfo:
        record = None
    if record is not None:
        if record["status"] == Status.RUNNING.value:
            return record
        if record["status"] == Status.COMPLETED.value and _still_current(config, record, text):
            return record
    try:
        return start_build(name, fields)
    except AlreadyBuilding:  # another request started it just now: attach
        return build_store.get_build(name)


def _still_current(config: Config, record: BuildRecord, text: str) -> bool:
    """Whether a completed build holds what ``text`` names now: its image is in the
    registry and its content id is what the ref resolves to (a moved branch rebuilds)."""
    from workers.providers import FetchLimits, parse_spec, provider_for
    from workers.registry import manifest_exists

    image = record.get("image_name")
    built = record.get("content_id") or record.get("commit")
    if not image or not built:
        return False
    try:
        spec = parse_spec(text, config)
        resolved = provider_for(spec, config).resolve(
            spec, FetchLimits.from_config(config, timeout=RESOLVE_SECONDS))
        return resolved.content_id == built and manifest_exists(config, image)
    except Exception:  # noqa: BLE001 -- any doubt means: build (the build says what is wrong)
        return False


def _ready(record: BuildRecord, message: str) -> dict[str, Any]:
    return {"phase": "ready", "message": message, "imageName": record.get("image_name")}


def _ending(record: BuildRecord) -> dict[str, Any]:
    status = record["status"]
    if status == Status.COMPLETED.value:
        return _ready(record, FOUND if record.get("cached") else BUILT)
    if status == Status.CANCELLED.value:
        return _failed(f"Build cancelled. {record.get('error') or ''}".strip())
    error = record.get("error")
    suggestions = list(record.get("suggestions") or [])
    if not error:
        return _failed(f"Build {status}.")
    # An error without suggestions is sent as it is stored.
    return _failed(_with_suggestions(error, suggestions) if suggestions else error)


def _follow(record: BuildRecord, left: Callable[[], bool]) -> Iterator[str]:
    """The build's events from the start of its log until it ends (or the client leaves)."""
    name = record["name"]
    yield _data(WAITING)
    phase = "waiting"
    for event in follow(name, record["build_id"], 0, KEEPALIVE_SECONDS, left):
        match event:
            case Lines(lines):
                for _, text in lines:
                    banner = log_store.banner_phase(text)
                    if banner in BINDERHUB_PHASES:
                        phase = BINDERHUB_PHASES[Phase(banner)]
                    yield _data({"phase": phase, "message": f"{text}\n"})
            case KeepAlive():
                yield ":keepalive\n\n"
            case Ended(ended):
                yield _data(_ending(ended))
                return
            case Failed(error):
                yield _data(_error_event(error))
                return
    yield _data(_failed(f"Stopped following after {FOLLOW_MAX_SECONDS} s; the build goes "
                        f"on: GET /builds/{name}."))


def _farm_version() -> str:
    try:
        return version("binder-build")
    except PackageNotFoundError:
        return "unknown"


@bp.route("/versions")
@no_key
@bp.response(200, VersionsSchema, description="the farm's version, in BinderHub's shape")
def versions() -> dict[str, Any]:
    """BinderHub's ``/versions``: ``binderhub`` (this farm's version) and ``builder_info``."""
    farm = _farm_version()
    return {"builder_info": {"binder-build": farm}, "binderhub": f"binder-build {farm}"}


#: The farm's components as BinderHub's /health names them (no addresses, no reasons).
PUBLIC_NAMES = {"mongo": "MongoDB", "redis": "Redis", "docker": "Docker",
                "registry": "Docker registry", "workers": "Build workers"}


@bp.route("/health")
@no_key
@bp.response(200, BinderHubHealthSchema, description="every service is ok")
@bp.alt_response(503, schema=BinderHubHealthSchema, description="a service is failing")
def health() -> tuple[dict[str, Any], int]:
    """BinderHub's public ``/health``: ``{"ok": ..., "checks": [{"service", "ok"}]}``.

    No addresses and no failure reasons; ``/health/`` has the details.
    """
    components = check_all(current_app.config["BINDER"], current_app.extensions["celery"])
    checks = [{"service": PUBLIC_NAMES.get(c.name, c.name), "ok": c.status == "ok"}
              for c in components]
    ok = all(check["ok"] for check in checks)
    return {"ok": ok, "checks": checks}, 200 if ok else 503


@bp.route("/api/repoproviders")
@no_key
@bp.response(200, RepoProviderSchema(many=True),
             description="each prefix's display configuration")
def repoproviders() -> list[dict[str, Any]]:
    """BinderHub's ``/api/repoproviders``: each prefix's launch-form configuration."""
    config = current_app.config["BINDER"]
    return [prefix.display_config(config) for prefix in PREFIXES.values()]
