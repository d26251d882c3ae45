"""A build's log: as text, or followed live as Server-Sent Events."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context
from flask.typing import ResponseReturnValue

from common import buildlog, builds
from common.errors import BinderError
from common.models import Status

bp = Blueprint("logs", __name__)

POLL_SECONDS = 0.25
#: A follower is closed after this long even if the build still runs;
#: clients resume with Last-Event-ID.
FOLLOW_MAX_SECONDS = 3600


@bp.get("/builds/<name>/logs")
def logs(name: str) -> ResponseReturnValue:
    """Plain text; ``?follow=1`` streams SSE until the build ends (resumable)."""
    record = builds.get_build(name)
    if request.args.get("follow", "").lower() in {"1", "true", "yes"}:
        after = _last_event_id()
        return Response(stream_with_context(_follow(name, record["build_id"], after)),
                        mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    lines = buildlog.read_lines(record["build_id"])
    return Response("".join(f"{text}\n" for _, text in lines), mimetype="text/plain")


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


def _sse(seq: int, text: str) -> str:
    data = "\n".join(f"data: {part}" for part in text.split("\n"))
    return f"id: {seq}\n{data}\n\n"


def _follow(name: str, build_id: str, after: int) -> Iterator[str]:
    deadline = time.monotonic() + FOLLOW_MAX_SECONDS
    yield "retry: 1000\n\n"
    while time.monotonic() < deadline:
        try:
            for seq, text in buildlog.read_lines(build_id, after):
                after = seq
                yield _sse(seq, text)
            record = builds.get_build(name)
        except BinderError as exc:
            yield f"event: error\ndata: {exc.message}\n\n"
            return
        if record["build_id"] != build_id or record["status"] != Status.RUNNING.value:
            for seq, text in buildlog.read_lines(build_id, after):
                after = seq
                yield _sse(seq, text)
            yield f"event: end\ndata: {record['status']}\n\n"
            return
        time.sleep(POLL_SECONDS)
