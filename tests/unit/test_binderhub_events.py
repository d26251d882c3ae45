"""BinderHub's events made from a build's record and log (store reads faked)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api import binderhub
from common.log_store import phase_banner


class FakeBuild:
    """A build whose log grows and whose status changes as it is polled."""

    def __init__(self, polls: list[tuple[list[str], dict[str, Any]]]) -> None:
        self.polls = polls
        self.lines: list[str] = []
        self.now = 0.0
        self.record: dict[str, Any] = {}

    def find_attempt(self, name: str, build_id: str) -> dict[str, Any]:
        if self.polls:  # the last state stays once every poll is used
            lines, self.record = self.polls.pop(0)
            self.lines += lines
        return {"name": name, "build_id": build_id, **self.record}

    def read_lines(self, build_id: str, after: int = 0,
                   limit: int | None = None) -> list[tuple[int, str]]:
        return [(seq, text) for seq, text in enumerate(self.lines, 1) if seq > after][:limit]

    def wait_for_lines(self, build_id: str, after: int, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(polls: list[tuple[list[str], dict[str, Any]]]) -> FakeBuild:
        build = FakeBuild(polls)
        monkeypatch.setattr(binderhub.build_store, "find_attempt", build.find_attempt)
        monkeypatch.setattr(binderhub.log_store, "read_lines", build.read_lines)
        monkeypatch.setattr(binderhub.log_store, "wait_for_lines", build.wait_for_lines)
        monkeypatch.setattr(binderhub.time, "monotonic", lambda: build.now)
        return build
    return install


def events(chunks: list[str]) -> list[Any]:
    return [json.loads(c.removeprefix("data: ")) if c.startswith("data: ") else c
            for c in chunks]


RUNNING = {"status": "running"}
RECORD = {"name": "o-r", "build_id": "b1"}


def test_lines_carry_the_phase_of_their_banner_and_ready_ends(fake: Any) -> None:
    fake([([], RUNNING),
          ([phase_banner("fetching", "w1", 1), "resolved HEAD"], RUNNING),
          ([phase_banner("detecting", "w1", 1), "picked dockerfile",
            phase_banner("building", "w1", 1), "#5 1.0 step"], RUNNING),
          ([phase_banner("pushing", "w1", 1), phase_banner("registering", "w1", 1)],
           {"status": "completed", "image_name": "reg/o-r:abc", "cached": False})])
    got = events(list(binderhub._follow(RECORD)))
    assert got[0] == {"phase": "waiting", "message": "Waiting for build to start...\n"}
    assert [(e["phase"], e["message"]) for e in got[1:-1]] == [
        ("fetching", "== fetching on w1 (attempt 1)\n"), ("fetching", "resolved HEAD\n"),
        ("building", "== detecting on w1 (attempt 1)\n"), ("building", "picked dockerfile\n"),
        ("building", "== building on w1 (attempt 1)\n"), ("building", "#5 1.0 step\n"),
        ("pushing", "== pushing on w1 (attempt 1)\n"),
        ("pushing", "== registering on w1 (attempt 1)\n")]
    assert got[-1] == {"phase": "ready", "message": "Done! Image built\n",
                       "imageName": "reg/o-r:abc"}


def test_a_long_log_is_sent_a_part_at_a_time_without_waiting_between_parts(
        fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binderhub.log_store, "READ_LINES", 2)
    build = fake([([f"line {n}" for n in range(1, 8)],
                   {"status": "completed", "image_name": "reg/o-r:abc", "cached": False})])
    got = events(list(binderhub._follow(RECORD)))
    assert [e["message"] for e in got[1:-1]] == [f"line {n}\n" for n in range(1, 8)]
    assert got[-1]["phase"] == "ready"
    assert build.now == 0  # every part was sent at once, no wait for new lines


def test_a_cache_hit_says_found(fake: Any) -> None:
    fake([([phase_banner("fetching", "w1", 1), "reusing it"],
           {"status": "completed", "image_name": "reg/o-r:abc", "cached": True})])
    assert events(list(binderhub._follow(RECORD)))[-1] == {
        "phase": "ready", "message": "Done! Found built image\n", "imageName": "reg/o-r:abc"}


@pytest.mark.parametrize("record, message", [
    ({"status": "failed", "error": "The build failed: exit 3."}, "The build failed: exit 3.\n"),
    ({"status": "cancelled", "error": "Cancelled by request."},
     "Build cancelled. Cancelled by request.\n"),
])
def test_failures_end_with_the_error(fake: Any, record: dict[str, Any], message: str) -> None:
    fake([(["some line"], record)])
    got = events(list(binderhub._follow(RECORD)))
    assert got[-2] == {"phase": "waiting", "message": "some line\n"}
    assert got[-1] == {"phase": "failed", "message": message}


def test_an_idle_build_gets_a_keepalive_every_25_seconds(fake: Any) -> None:
    build = fake([([], RUNNING)] * 300 + [([], {"status": "failed", "error": "x"})])
    got = list(binderhub._follow(RECORD))
    keepalives = got.count(":keepalive\n\n")
    elapsed = build.now
    assert keepalives == int(elapsed // 25) or keepalives == int(elapsed // 25) - 1
    assert keepalives >= 2
