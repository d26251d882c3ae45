"""A build seen through the store calls a log follower makes, for followers' unit tests."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest


class FakeBuild:
    """A build whose log grows and whose status changes as it is polled."""

    def __init__(self, polls: list[tuple[list[str], dict[str, Any]]]) -> None:
        self.polls = polls
        self.lines: list[str] = []
        self.now = 0.0
        self.waits: list[float] = []
        self.record: dict[str, Any] = {}
        self.reads = 0
        #: what each wait says the live stream had: a new line, none, or unknown
        self.stream_says: bool | None = None

    def find_attempt(self, name: str, build_id: str) -> dict[str, Any]:
        self.reads += 1
        if self.polls:  # the last state stays once every poll is used
            lines, self.record = self.polls.pop(0)
            self.lines += lines
        return {"name": name, "build_id": build_id, **self.record}

    def read_lines(self, build_id: str, after: int = 0,
                   limit: int | None = None) -> list[tuple[int, str]]:
        return [(seq, text) for seq, text in enumerate(self.lines, 1) if seq > after][:limit]

    def wait_for_lines(self, build_id: str, after: int, seconds: float) -> bool | None:
        self.waits.append(seconds)
        self.now += seconds
        return self.stream_says


Polls = list[tuple[list[str], dict[str, Any]]]


def installer(monkeypatch: pytest.MonkeyPatch,
              follower: ModuleType) -> Callable[[Polls], FakeBuild]:
    """What a test calls to put a ``FakeBuild`` behind the store reads and the clock
    of ``follower`` (a module with a log follower)."""
    def install(polls: Polls) -> FakeBuild:
        build = FakeBuild(polls)
        monkeypatch.setattr(follower.build_store, "find_attempt", build.find_attempt)
        monkeypatch.setattr(follower.log_store, "read_lines", build.read_lines)
        monkeypatch.setattr(follower.log_store, "wait_for_lines", build.wait_for_lines)
        monkeypatch.setattr(follower.time, "monotonic", lambda: build.now)
        return build
    return install
