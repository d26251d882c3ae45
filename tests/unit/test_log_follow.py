"""Following a log as Server-Sent Events: when the follower ends (store reads faked)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from api import log_follow, logs
from common import log_store
from common.errors import TooManyFollowers
from common.log_store import end_line, phase_banner
from tests.support.fake_build import installer

RUNNING = {"status": "running"}


def STAYS() -> bool:  # noqa: N802 -- a client that never leaves
    return False


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    return installer(monkeypatch, log_follow)


def lines_and_end(chunks: list[str]) -> tuple[list[str], str]:
    text = "".join(chunks)
    data = [line.removeprefix("data: ") for line in text.splitlines()
            if line.startswith("data: ")]
    return data[:-1], data[-1]


def test_the_end_comes_as_soon_as_the_build_ends_after_its_end_line(fake: Any) -> None:
    build = fake([([phase_banner("registering", "w1", 1), end_line("completed", None)], RUNNING),
                  ([], {"status": "completed"})])
    lines, end = lines_and_end(list(logs._follow("o-r", "b1", 0, STAYS)))
    assert lines == ["== registering on w1 (attempt 1)", "== build completed"]
    assert end == "completed"
    assert build.waits == [log_store.END_PAUSE]  # not a whole poll for lines that won't come


def test_a_build_ended_with_its_end_line_read_ends_without_another_read(fake: Any) -> None:
    build = fake([(["step", end_line("failed", "The step failed.")], {"status": "failed"})])
    lines, end = lines_and_end(list(logs._follow("o-r", "b1", 0, STAYS)))
    assert lines == ["step", "== build failed: The step failed."]
    assert end == "failed"
    assert build.waits == []


def test_without_the_end_line_the_lines_trailing_the_status_still_come(fake: Any) -> None:
    # Cancelled from outside: the status ends first, the worker's last lines follow.
    build = fake([(["working"], RUNNING), ([], {"status": "cancelled"}),
                  (["stopping"], {"status": "cancelled"})])
    lines, end = lines_and_end(list(logs._follow("o-r", "b1", 0, STAYS)))
    assert lines == ["working", "stopping"]
    assert end == "cancelled"
    assert build.waits == [log_follow.POLL_SECONDS, log_follow.POLL_SECONDS]


def test_a_line_that_only_looks_like_the_end_in_a_step_does_not_end_anything(fake: Any) -> None:
    assert not log_store.ends_log([(1, "#7 0.1 == build completed")])
    assert not log_store.ends_log([(1, "== build completedly")])
    assert log_store.ends_log([(1, "== build cancelled: Cancelled by request.")])


def test_a_failures_suggestions_share_its_end_line_which_stays_the_end() -> None:
    line = end_line("failed", "The server did not answer.",
                    ["Set the right port.", "Fix the command."])
    assert line == ("== build failed: The server did not answer. "
                    "Suggestions: Set the right port. Fix the command.")
    assert log_store.ends_log([(1, line)])
    assert end_line("failed", "Oops.", []) == "== build failed: Oops."
    assert end_line("completed", None, ["never shown without an error"]) == "== build completed"


def test_a_quiet_build_has_its_store_read_about_once_a_second_not_after_every_wait(
        fake: Any) -> None:
    build = fake([(["started"], RUNNING)] + [([], RUNNING)] * 10 + [([], {"status": "failed"})])
    build.stream_says = False  # the live stream has nothing new after each wait
    lines, end = lines_and_end(list(logs._follow("o-r", "b1", 0, STAYS)))
    assert (lines, end) == (["started"], "failed")
    assert build.reads == 13  # the 12 states, then one more for lines trailing the status
    # Read once per second of quiet, not after each wait of a quarter of a second.
    assert build.now >= 11 * log_follow.IDLE_READ_SECONDS
    assert len(build.waits) >= 11 * log_follow.IDLE_READ_SECONDS / log_follow.POLL_SECONDS


def test_a_line_in_the_stream_has_the_store_read_at_once(fake: Any) -> None:
    build = fake([([], RUNNING), (["a line"], RUNNING), ([end_line("completed", None)], RUNNING),
                  ([], {"status": "completed"})])
    build.stream_says = True
    lines, end = lines_and_end(list(logs._follow("o-r", "b1", 0, STAYS)))
    assert (lines, end) == (["a line", "== build completed"], "completed")
    assert build.reads == 4 and build.now < 1


def test_a_process_follows_at_most_all_its_threads_but_two(monkeypatch: Any) -> None:
    monkeypatch.setattr(log_follow, "_following", 0)
    held = [log_follow.take_follower_slot(6) for _ in range(4)]
    with pytest.raises(TooManyFollowers) as refused:
        log_follow.take_follower_slot(6)
    assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "5"}
    assert "BINDER_API_THREADS" in " ".join(refused.value.suggestions)
    held[0]()
    held[0]()  # a response closed twice gives its slot back once
    held.append(log_follow.take_follower_slot(6))
    with pytest.raises(TooManyFollowers):
        log_follow.take_follower_slot(6)
    for give_back in held:
        give_back()
    assert log_follow._following == 0


def test_a_process_of_one_or_two_threads_still_follows_one_log(monkeypatch: Any) -> None:
    monkeypatch.setattr(log_follow, "_following", 0)
    give_back = log_follow.take_follower_slot(1)
    with pytest.raises(TooManyFollowers):
        log_follow.take_follower_slot(2)
    give_back()


def test_a_follower_whose_client_left_stops_at_once(fake: Any) -> None:
    build = fake([(["started"], RUNNING)] + [([], RUNNING)] * 100)
    build.stream_says = False
    polls = 0

    def left() -> bool:
        nonlocal polls
        polls += 1
        return polls > 3  # the client closes its connection during the third wait

    chunks = list(logs._follow("o-r", "b1", 0, left))
    assert "data: started" in "".join(chunks)
    assert "event: end" not in "".join(chunks)  # nobody is there to read an end
    assert len(build.waits) == 3


def test_a_connection_reads_as_left_once_its_client_closed_it() -> None:
    server, client = socket.socketpair()
    try:
        left = log_follow.client_left({"gunicorn.socket": server})
        assert not left()
        client.sendall(b"GET /next HTTP/1.1\r\n")  # a request waiting is no leaving
        assert not left()
        assert server.recv(100)  # the peek left it there to read
        client.close()
        assert left()
    finally:
        server.close()
        client.close()


def test_a_connection_whose_writes_are_bounded_is_peeked_at_without_waiting(
        monkeypatch: Any) -> None:
    monkeypatch.setattr(log_follow, "WRITE_SECONDS", 5.0)
    server, client = socket.socketpair()
    try:
        environ = {"gunicorn.socket": server, "SERVER_PROTOCOL": "HTTP/1.1"}
        unbound = log_follow.bound_writes(environ)
        assert server.gettimeout() == 5.0
        left = log_follow.client_left(environ)
        started = time.monotonic()
        assert not left()
        assert time.monotonic() - started < 1
        client.close()
        assert left()
        unbound()
        assert server.gettimeout() is None
    finally:
        server.close()
        client.close()


def test_writes_are_bounded_only_on_an_http1_socket() -> None:
    server, client = socket.socketpair()
    try:
        log_follow.bound_writes({"gunicorn.socket": server, "SERVER_PROTOCOL": "HTTP/2"})()
        assert server.gettimeout() is None
        log_follow.bound_writes({})()  # no socket: nothing to bound
    finally:
        server.close()
        client.close()


def test_without_a_socket_to_peek_at_a_client_never_reads_as_left() -> None:
    assert not log_follow.client_left({})()
