"""A build's log: as text, or followed live as Server-Sent Events."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context

from api.auth import public_read
from api.blueprint import Blueprint
from api.schemas.builds import LogEventSchema, LogHeadersSchema, LogQuerySchema
from common import build_store, log_store
from common.errors import BadQuery, BinderError
from common.models import Status

bp = Blueprint("logs", __name__, description="Build logs, kept and followed live.")

#: Longest wait for a new line (a new line ends the wait at once) or the end.
POLL_SECONDS = 0.25
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15
#: A follower is closed after this long even if the build still runs;
#: clients resume with Last-Event-ID.
FOLLOW_MAX_SECONDS = 3600
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


@bp.route("/builds/<name:name>/logs")
@public_read
@bp.arguments(LogQuerySchema, location="query")
@bp.arguments(LogHeadersSchema, location="headers")
@bp.response(200, {"type": "string"}, content_type="text/plain", description="the log as text")
@bp.alt_response(200, schema=LogEventSchema, content_type="text/event-stream", success=True,
                 description="the log as text; Server-Sent Events (one per line, id = line "
                             "number) when following")
@bp.alt_response(404, response="NOT_FOUND")
def logs(query: dict[str, Any], headers: dict[str, Any], name: str) -> Response:
    """A build's log: the current attempt's (or ``build-id``'s) as text.

    ``?follow=1`` streams Server-Sent Events instead, one event per line with
    the line number as its id, until the attempt ends (``event: end``);
    ``Last-Event-ID`` (or ``after``) resumes after that line.
    """
    # Every argument is checked before the database is asked.
    after = (_resume_after(headers.get("last_event_id"), query.get("after", 0))
             if query["follow"] else query.get("after", 0))
    build_id = query.get("build_id")
    record = build_store.find_attempt(name, build_id) if build_id else build_store.get_build(name)
    if query["follow"]:
        return Response(stream_with_context(_follow(name, record["build_id"], after)),
                        mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    lines = log_store.read_lines(record["build_id"], after)
    return Response("".join(f"{text}\n" for _, text in lines),
                    mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _resume_after(header: str | None, after: int) -> int:
    """The line to resume after: ``Last-Event-ID`` wins over ``after``."""
    if header is None or header.strip() == "":
        return after
    header = header.strip()
    if not (header.isascii() and header.isdigit()):
        raise BadQuery("Last-Event-ID must be a line number.",
                       suggestions=["Send the id of the last event received."])
    return int(header)


def _sse(seq: int, text: str) -> str:
    data = "\n".join(f"data: {part}" for part in _LINE_BREAKS.split(text))
    return f"id: {seq}\n{data}\n\n"


def _follow(name: str, build_id: str, after: int) -> Iterator[str]:
    """SSE events of ``build_id``'s lines after ``after`` until the attempt ends."""
    started = last_sent = time.monotonic()
    ended: str | None = None
    yield "retry: 1000\n\n"
    while time.monotonic() - started < FOLLOW_MAX_SECONDS:
        try:
            status = build_store.find_attempt(name, build_id)["status"]
            lines = log_store.read_lines(build_id, after)
        except BinderError as exc:
            yield f"event: error\ndata: {exc.message}\n\n"
            return
        for seq, text in lines:
            after = seq
            yield _sse(seq, text)
        if ended is not None:
            yield f"event: end\ndata: {ended}\n\n"
            return
        if status != Status.RUNNING.value:
            ended = status  # one more read: the worker's last lines may trail its status
        elif lines:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        log_store.wait_for_lines(build_id, after, POLL_SECONDS)
