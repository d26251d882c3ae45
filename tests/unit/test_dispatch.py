"""Sending a build's first step: where it goes is noted before it is sent."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from common.config import load_config
from workers import dispatch

CONFIG = load_config(environ={})
RECORD: dict[str, Any] = {"build_id": "b1", "attempt": 1, "name": "o-r"}


class FakeCelery:
    def __init__(self, events: list[tuple[str, Any]], fail: bool = False) -> None:
        self.events = events
        self.fail = fail

    def connection_for_write(self, **kwargs: Any) -> Connection:
        return Connection("memory://")

    def send_task(self, name: str, args: list[Any], queue: str, **kwargs: Any) -> None:
        if self.fail:
            raise redis.ConnectionError("broker down")
        self.events.append(("send", queue))


class FakeBuilds:
    def __init__(self, events: list[tuple[str, Any]]) -> None:
        self.events = events
        self.written: list[dict[str, Any]] = []

    def update_one(self, selector: dict[str, Any], update: dict[str, Any]) -> None:
        self.events.append(("enqueued", sorted(update["$set"])))
        self.written.append(update["$set"])


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(dispatch, "queue_for", lambda config, name: ("host.a", "a"))
    monkeypatch.setattr(dispatch.host_store, "note_placement",
                        lambda build_id, attempt, host, config=None: seen.append(("note", host)))
    monkeypatch.setattr(dispatch, "get_db", lambda config=None: type(
        "Db", (), {"builds": FakeBuilds(seen)})())
    monkeypatch.setattr(dispatch, "broker_epoch", lambda config: "epoch")
    return seen


def test_the_host_is_noted_before_the_step_is_sent(events: list[tuple[str, Any]]) -> None:
    # The host may send the build on at once; its note must be the last word.
    assert dispatch.enqueue_build(FakeCelery(events), CONFIG, RECORD)  # type: ignore[arg-type]
    assert events == [("note", "a"), ("send", "host.a"),
                      ("enqueued", ["broker_epoch", "enqueued", "enqueued_at"])]


def test_a_step_the_broker_did_not_take_is_on_no_host(events: list[tuple[str, Any]]) -> None:
    assert not dispatch.enqueue_build(FakeCelery(events, fail=True), CONFIG,  # type: ignore[arg-type]
                                      RECORD)
    assert events == [("note", "a"), ("note", None)]  # left for the reaper to send


def test_the_epoch_recorded_is_the_brokers_before_the_send(
        events: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that restarts just after it took the step has lost it: the record names
    the broker read before the send, so the reaper sends the step again, never the one
    read after it (the reaper would take it for the broker holding the step)."""
    broker = {"epoch": "e1"}
    monkeypatch.setattr(dispatch, "broker_epoch", lambda config: broker["epoch"])
    builds = FakeBuilds(events)
    monkeypatch.setattr(dispatch, "get_db", lambda config=None: type(
        "Db", (), {"builds": builds})())

    class RestartingCelery(FakeCelery):
        def send_task(self, name: str, args: list[Any], queue: str, **kwargs: Any) -> None:
            super().send_task(name, args, queue, **kwargs)
            broker["epoch"] = "e2"  # restarted, the step lost with it
    assert dispatch.enqueue_build(RestartingCelery(events), CONFIG, RECORD)  # type: ignore[arg-type]
    assert [fields["broker_epoch"] for fields in builds.written] == ["e1"]


class CountingCelery(Celery):
    """An app on an in-memory broker that keeps the connection of each send, and fails
    the sends it is told to."""

    def __init__(self) -> None:
        super().__init__(broker="memory://")
        self.used: list[Connection] = []
        self.failing = False

    def send_task(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.used.append(kwargs["connection"])
        if self.failing:
            raise redis.ConnectionError("broker down")
        return super().send_task(*args, **kwargs)


def test_sends_reuse_the_process_s_connection() -> None:
    """A start does not pay for a new broker connection (its handshake is several round
    trips): the second send goes on the connection of the first."""
    app = CountingCelery()
    for _ in range(3):
        dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert app.used[0] is app.used[1] is app.used[2]


def test_a_connection_whose_send_failed_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CountingCelery()
    dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert app.used[0].connected
    app.failing = True
    with pytest.raises(redis.ConnectionError):
        dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert not app.used[1].connected  # the next send on it connects again
    app.failing = False
    dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert app.used[2].connected


def test_a_forked_process_sends_on_connections_of_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = CountingCelery()
    dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    monkeypatch.setattr(dispatch.os, "getpid", lambda: -1)
    dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert app.used[0] is not app.used[1]


def test_past_the_pool_a_send_opens_a_connection_of_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "SEND_CONNECTIONS", 1)
    app = CountingCelery()
    held = dispatch._send_connection(app)  # another thread's send, in flight
    dispatch._send(app, dispatch.STEPS[0], RECORD, "builds")
    assert app.used[0] is not held
    held.release()


def test_a_placement_stored_with_the_record_is_not_noted_again(
        events: list[tuple[str, Any]]) -> None:
    """A start stores its record with the host it places it on (``placed_on``): the send
    goes to that host's queue, and the store is written once, after it."""
    assert dispatch.enqueue_build(FakeCelery(events), CONFIG, RECORD,  # type: ignore[arg-type]
                                  ("host.b", "b"))
    assert events == [("send", "host.b"),
                      ("enqueued", ["broker_epoch", "enqueued", "enqueued_at"])]


def test_a_placed_step_the_broker_did_not_take_is_on_no_host(
        events: list[tuple[str, Any]]) -> None:
    assert not dispatch.enqueue_build(FakeCelery(events, fail=True), CONFIG,  # type: ignore[arg-type]
                                      RECORD, ("host.b", "b"))
    assert events == [("note", None)]  # left for the reaper to send
