"""Repositories and stream readers the API tests share.

Each ``*_repo`` helper creates a uniquely named repository on the test Git
server and returns its GitHub-style URL; ``read_sse`` parses a live
Server-Sent Events response, recording when each event arrived.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.git_server import GitServer
from tests.support.service_clients import base_image

BASE_IMAGE = base_image()


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def plain_repo(git_server: GitServer, repo_url: str, owner: str = "api") -> str:
    """A repository without config files: builds in a few seconds."""
    repo = _unique("plain")
    git_server.make_repo(f"github/{owner}/{repo}", {"README.md": f"{repo}\n"})
    return f"{repo_url}/{owner}/{repo}"


def slow_repo(git_server: GitServer, repo_url: str, seconds: int = 60,
              owner: str = "api") -> str:
    """A Dockerfile repository whose build sleeps ``seconds`` (tests cancel it)."""
    repo = _unique("slow")  # in the RUN line too, so no layer cache skips it
    git_server.make_repo(f"github/{owner}/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} sleeping && sleep {seconds}\n"})
    return f"{repo_url}/{owner}/{repo}"


def ticking_repo(git_server: GitServer, repo_url: str, ticks: int = 8,
                 owner: str = "api") -> str:
    """A Dockerfile repository whose build prints ``tick-N`` once a second."""
    repo = _unique("ticks")  # in the RUN line too, so no layer cache skips it
    git_server.make_repo(f"github/{owner}/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} && "
                      f"for i in $(seq 1 {ticks}); do echo tick-$i; sleep 1; done\n"})
    return f"{repo_url}/{owner}/{repo}"


@dataclass
class Event:
    """One Server-Sent Event and the monotonic time it was read."""

    id: str | None
    event: str
    data: str
    at: float


def read_sse(response: Any) -> Iterator[Event]:
    """Events of a streaming ``requests`` response, as they arrive."""
    fields: dict[str, list[str]] = {}
    for raw in response.iter_lines(chunk_size=1, decode_unicode=True):
        line = raw if isinstance(raw, str) else raw.decode()
        if line == "":
            if "data" in fields or "event" in fields:
                ids = fields.get("id")
                yield Event(id=ids[-1] if ids else None,
                            event=(fields.get("event") or ["message"])[-1],
                            data="\n".join(fields.get("data", [])), at=time.monotonic())
            fields = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key, []).append(value.removeprefix(" "))
