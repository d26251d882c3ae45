"""BinderHub's events made from a build's record and log (store reads faked)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api import binderhub, log_follow
from common import log_store
from common.log_store import end_line, phase_banner
from tests.support.fake_build import installer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    return installer(monkeypatch, log_follow)


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
    got = events(list(binderhub._follow(RECORD, lambda: False)))
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
    got = events(list(binderhub._follow(RECORD, lambda: False)))
    assert [e["message"] for e in got[1:-1]] == [f"line {n}\n" for n in range(1, 8)]
    assert got[-1]["phase"] == "ready"
    # Every part was sent at once; the one wait is for lines that may trail the status
    # (this log has no end line).
    assert build.waits == [log_follow.POLL_SECONDS]


def test_a_cache_hit_says_found(fake: Any) -> None:
    fake([([phase_banner("fetching", "w1", 1), "reusing it"],
           {"status": "completed", "image_name": "reg/o-r:abc", "cached": True})])
    assert events(list(binderhub._follow(RECORD, lambda: False)))[-1] == {
        "phase": "ready", "message": "Done! Found built image\n", "imageName": "reg/o-r:abc"}


@pytest.mark.parametrize("record, message", [
    ({"status": "failed", "error": "The build failed: exit 3."}, "The build failed: exit 3.\n"),
    ({"status": "failed", "error": "The port is wrong", "suggestions": ["Set it.", "Or not."]},
     "The port is wrong. Set it. Or not.\n"),
    ({"status": "failed", "error": "Its last output: exit 3", "suggestions": []},
     "Its last output: exit 3\n"),
    ({"status": "cancelled", "error": "Cancelled by request."},
     "Build cancelled. Cancelled by request.\n"),
])
def test_failures_end_with_the_error(fake: Any, record: dict[str, Any], message: str) -> None:
    fake([(["some line"], record)])
    got = events(list(binderhub._follow(RECORD, lambda: False)))
    assert got[-2] == {"phase": "waiting", "message": "some line\n"}
    assert got[-1] == {"phase": "failed", "message": message}


def test_an_idle_build_gets_a_keepalive_every_25_seconds(fake: Any) -> None:
    build = fake([([], RUNNING)] * 300 + [([], {"status": "failed", "error": "x"})])
    got = list(binderhub._follow(RECORD, lambda: False))
    keepalives = got.count(":keepalive\n\n")
    elapsed = build.now
    assert keepalives == int(elapsed // 25) or keepalives == int(elapsed // 25) - 1
    assert keepalives >= 2


def test_the_end_line_has_the_status_read_again_at_once_not_after_a_poll(fake: Any) -> None:
    # The worker stores its end line, then ends the build: only the status is to come.
    build = fake([([phase_banner("registering", "w1", 1), end_line("completed", None)], RUNNING),
                  ([], {"status": "completed", "image_name": "reg/o-r:abc", "cached": False})])
    got = events(list(binderhub._follow(RECORD, lambda: False)))
    assert got[-1]["phase"] == "ready"
    assert build.now == pytest.approx(log_store.END_PAUSE)  # not log_follow.POLL_SECONDS


def test_without_the_end_line_the_follower_waits_for_trailing_lines(fake: Any) -> None:
    # Ended from outside (a cancel): the worker's last lines may still come.
    build = fake([(["working"], RUNNING), ([], {"status": "cancelled", "error": "Cancelled."}),
                  (["stopping"], {"status": "cancelled", "error": "Cancelled."})])
    got = events(list(binderhub._follow(RECORD, lambda: False)))
    assert [e["message"] for e in got[1:]] == ["working\n", "stopping\n",
                                               "Build cancelled. Cancelled.\n"]
    assert build.now == pytest.approx(2 * log_follow.POLL_SECONDS)  # one after the status


def test_a_status_that_stays_running_after_the_end_line_is_read_again_only_for_a_moment(
        fake: Any) -> None:
    # A worker that cannot end the build (its store away) must not have every
    # follower read the store fifty times a second until it can.
    build = fake([([end_line("completed", None)], RUNNING)] + [([], RUNNING)] * 80
                 + [([], {"status": "completed", "image_name": "reg/o-r:abc", "cached": False})])
    assert events(list(binderhub._follow(RECORD, lambda: False)))[-1]["phase"] == "ready"
    quick = [wait for wait in build.waits if wait == log_store.END_PAUSE]
    assert len(quick) <= log_store.END_WATCH_SECONDS / log_store.END_PAUSE + 1
    assert build.waits[-10:] == [log_follow.POLL_SECONDS] * 10
