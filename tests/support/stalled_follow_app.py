"""The API app with a build that prints without end, to serve under a real gunicorn.

``gunicorn 'tests.support.stalled_follow_app:app()'`` serves the farm's own
log route; the build's record and log are faked (no MongoDB, no Redis): every
poll of the follower finds another megabyte of lines. When a follower's response
closes, its slot given back, the file ``$STALLED_FOLLOW_CLOSED`` gets a line.
``$STALLED_FOLLOW_WRITE_SECONDS`` replaces the write bound of followers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask

import api.log_follow
import api.logs
from api import create_app
from api.log_follow import Lines
from common.config import load_config

#: One poll's lines: a megabyte, so a client that stops reading fills the buffers fast.
LINES = 1000
LINE = "x" * 1000


def _follow(name: str, build_id: str, after: int, keepalive: float,
            left: Callable[[], bool]) -> Iterator[Any]:
    seq = after
    while not left():
        yield Lines([(seq + n, LINE) for n in range(1, LINES + 1)])
        seq += LINES


def _counted(take: Callable[[int], Callable[[], None]]) -> Callable[[int], Callable[[], None]]:
    def take_slot(threads: int) -> Callable[[], None]:
        give_back = take(threads)

        def given_back() -> None:
            give_back()
            with open(os.environ["STALLED_FOLLOW_CLOSED"], "a") as closed:
                closed.write("closed\n")
        return given_back
    return take_slot


def app() -> Flask:
    api.logs.build_store.get_build = lambda name: {  # type: ignore[assignment]
        "name": name, "build_id": "b1", "status": "running"}
    api.logs.follow = _follow  # type: ignore[assignment]
    api.logs.take_follower_slot = _counted(api.log_follow.take_follower_slot)
    if "STALLED_FOLLOW_WRITE_SECONDS" in os.environ:
        api.log_follow.WRITE_SECONDS = float(os.environ["STALLED_FOLLOW_WRITE_SECONDS"])
    config = load_config(environ={"BINDER_API_KEY": "k",
                                  "BINDER_DATA_DIR": tempfile.mkdtemp(prefix="stalled-"),
                                  "BINDER_START_RATE_PER_KEY": "",
                                  "BINDER_START_RATE_PER_REPO": ""})
    return create_app(config)
