"""A build's log: as text, or followed live as Server-Sent Events."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, request, stream_with_context

from api.auth import public_read
from api.blueprint import Blueprint
from api.log_follow import (
    Ended,
    Failed,
    KeepAlive,
    Lines,
    bound_writes,
    client_left,
    follow,
    take_follower_slot,
)
from api.schemas.builds import MAX_LINE, LogEventSchema, LogHeadersSchema, LogQuerySchema
from api.schemas.common import ErrorSchema
from common import build_store, log_store
from common.config import Config
from common.errors import BadQuery, LogPruned
from common.models import BuildRecord
from common.terminal_text import shown_line

bp = Blueprint("logs", __name__, description="Build logs, kept and followed live.")

#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
#: Server-Sent Events sent in one write while following a log.
EVENTS_PER_WRITE = 1000


@bp.route("/builds/<name:name>/logs")
@public_read
@bp.arguments(LogQuerySchema, location="query")
@bp.arguments(LogHeadersSchema, location="headers")
@bp.response(200, {"type": "string"}, content_type="text/plain", description="the log as text")
@bp.alt_response(200, schema=LogEventSchema, content_type="text/event-stream", success=True,
                 description="the log as text; Server-Sent Events (one per line, id = line "
                             "number) when following")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(410, schema=ErrorSchema, description="retention deleted the log "
                                                     "(BINDER_LOG_RETENTION_DAYS): logPruned")
def logs(query: dict[str, Any], headers: dict[str, Any], name: str) -> Response:
    """A build's log: the current attempt's (or ``build-id``'s) as text.

    ``?follow=1`` streams Server-Sent Events instead, one event per line with
    the line number as its id, until the attempt ends (``event: end``);
    ``Last-Event-ID`` (or ``after``) resumes after that line. A log retention
    deleted answers 410 (``logPruned``) instead of an empty log.
    """
    # Every argument is checked before the database is asked.
    after = (_resume_after(headers.get("last_event_id"), query.get("after", 0))
             if query["follow"] else query.get("after", 0))
    build_id = query.get("build_id")
    record = (build_store.find_attempt(name, build_id) if build_id
              else build_store.get_build(name))
    if record.get("log_pruned"):
        raise pruned(record, current_app.config["BINDER"])
    if query["follow"]:
        give_back = take_follower_slot(current_app.config["BINDER"].api_threads)
        events = _follow(name, record["build_id"], after, client_left(request.environ))
        response = Response(stream_with_context(events),
                            mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.call_on_close(give_back)
        response.call_on_close(bound_writes(request.environ))
        return response
    # The first part is read here, so a store that fails answers an error, not a cut text.
    first = log_store.read_lines(record["build_id"], after, log_store.READ_LINES)
    response = Response(stream_with_context(_text(record["build_id"], first)),
                        mimetype="text/plain", headers={"Cache-Control": "no-cache"})
    response.call_on_close(bound_writes(request.environ))
    return response


def _text(build_id: str, lines: list[tuple[int, str]]) -> Iterator[str]:
    """The log from ``lines`` (its first part) on, one part at a time: a log of
    a gigabyte is sent without being held whole in the API's memory."""
    while True:
        yield "".join(f"{text}\n" for _, text in lines)
        if len(lines) < log_store.READ_LINES:
            return  # that was the end (of what a running build has written so far)
        lines = log_store.read_lines(build_id, lines[-1][0], log_store.READ_LINES)


def pruned(record: BuildRecord, config: Config) -> LogPruned:
    """The answer for a build whose stored log retention deleted."""
    when = record["log_pruned"].strftime("%Y-%m-%d")
    days = config.log_retention_days
    kept = (f"this farm keeps the logs of builds for {days} days after they end" if days > 0
            else "the farm kept logs for a limited time then")
    return LogPruned(
        f"The log of {record['name']} (build {record['build_id']}) was removed on {when}: "
        f"{kept} (BINDER_LOG_RETENTION_DAYS).",
        suggestions=[f"The build record is kept: GET /builds/{record['name']} and "
                     f"/builds/{record['name']}/history.",
                     "Start the build again with force to make a new log."])


def _resume_after(header: str | None, after: int) -> int:
    """The line to resume after: ``Last-Event-ID`` wins over ``after``; a line number
    (``after``'s range), checked before it is read as one (a number too long for Python
    or for the store would fail the request rather than refuse it)."""
    if header is None or header.strip() == "":
        return after
    header = header.strip()
    if not (header.isascii() and header.isdigit() and len(header) <= len(str(MAX_LINE))
            and int(header) <= MAX_LINE):
        raise BadQuery("Last-Event-ID must be a line number.",
                       suggestions=["Send the id of the last event received."])
    return int(header)


def _sse(seq: int, text: str) -> str:
    """One line as an event: as a terminal shows it (a line that redraws itself with
    carriage returns, its last redraw; an event cannot carry a carriage return)."""
    data = "\n".join(f"data: {part}" for part in _LINE_BREAKS.split(shown_line(text)))
    return f"id: {seq}\n{data}\n\n"


def _follow(name: str, build_id: str, after: int, left: Callable[[], bool]) -> Iterator[str]:
    """SSE events of ``build_id``'s lines after ``after`` until the attempt ends
    (or the client leaves)."""
    yield "retry: 1000\n\n"
    for event in follow(name, build_id, after, KEEPALIVE_SECONDS, left):
        match event:
            case Lines(lines):
                for start in range(0, len(lines), EVENTS_PER_WRITE):
                    # one write per batch of events: a log printing megabytes a second
                    # is sent as fast as it is stored, not one system call per line
                    batch = lines[start:start + EVENTS_PER_WRITE]
                    yield "".join(_sse(seq, text) for seq, text in batch)
            case KeepAlive():
                yield ": keep-alive\n\n"
            case Ended(record):
                yield f"event: end\ndata: {record['status']}\n\n"
            case Failed(error):
                yield f"event: error\ndata: {error.message}\n\n"
