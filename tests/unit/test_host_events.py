"""A word on a host's channel wakes its advert at once; a lost Redis is only a delay."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
import redis

from common import host_events
from common.config import load_config
from workers import host_advert

CONFIG = load_config(environ={"BINDER_HEARTBEAT_INTERVAL": "600"}, worker_id="h1")


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    monkeypatch.setattr(host_events, "redis_client", lambda config: client)
    return client


def wait_for_subscriber(client: fakeredis.FakeRedis, host: str) -> None:
    for _ in range(200):
        if client.pubsub_numsub(host_events.channel(CONFIG, host))[0][1]:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the listener never subscribed")


def test_a_word_for_this_host_wakes_the_listener_and_another_hosts_does_not(
        broker: fakeredis.FakeRedis) -> None:
    wake = threading.Event()
    listener = host_events.Listener(CONFIG, wake).start()
    try:
        wait_for_subscriber(broker, "h1")
        assert wake.wait(2)  # it looks once as it subscribes: a word may have been missed
        wake.clear()
        host_events.announce(CONFIG, "h2")
        assert not wake.wait(0.3)
        host_events.announce(CONFIG)
        assert wake.wait(2)
    finally:
        listener.stop()


def test_announce_without_redis_says_so_and_does_not_raise(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def publish(self, *args: Any) -> None:
            raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(host_events, "redis_client", lambda config: Down())
    with caplog.at_level("INFO"):
        host_events.announce(CONFIG, "h3")
    assert "could not tell host h3's advert" in caplog.text


def test_the_advert_beats_again_when_its_host_is_told(
        broker: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    beats = threading.Semaphore(0)
    monkeypatch.setattr(host_advert.HostAdvert, "beat", lambda self: beats.release())
    monkeypatch.setattr(host_advert.host_store, "mark_stopped", lambda host: None)
    advert = host_advert.HostAdvert(CONFIG, "h1@node").start()
    try:
        assert beats.acquire(timeout=2)  # the first beat, as it starts
        wait_for_subscriber(broker, "h1")
        while beats.acquire(timeout=0.3):  # and the one the subscription brings
            pass
        host_events.announce(CONFIG)
        # The heartbeat interval is 600 s: only the word can bring this beat.
        assert beats.acquire(timeout=2)
    finally:
        advert.stop()


def test_stopping_waits_for_a_beat_in_flight_before_saying_stopped(
        broker: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    # A beat writes "up"; written after "stopped", it had the API place builds on a
    # host that no worker consumes any more.
    writes: list[str] = []
    in_beat, release = threading.Event(), threading.Event()

    def slow_beat(self: host_advert.HostAdvert) -> None:
        in_beat.set()
        release.wait(5)
        writes.append("up")

    monkeypatch.setattr(host_advert.HostAdvert, "beat", slow_beat)
    monkeypatch.setattr(host_advert.host_store, "mark_stopped",
                        lambda host: writes.append("stopped"))
    advert = host_advert.HostAdvert(CONFIG, "h1@node").start()
    assert in_beat.wait(2)
    stopping = threading.Thread(target=advert.stop)
    stopping.start()
    threading.Event().wait(0.2)
    assert writes == []  # still waiting for the beat
    release.set()
    stopping.join(5)
    assert writes == ["up", "stopped"]


class FakeTasks:
    """The consumer's task consumer, as the gate sees it: which queues it consumes."""

    def __init__(self) -> None:
        self.queues = {host_advert.SHARED_QUEUE}

    def consuming_from(self, queue: str) -> bool:
        return queue in self.queues


@pytest.mark.parametrize(("record", "running", "free", "shared"), [
    ({}, [], True, True),
    ({}, ["busy"], False, True),  # full only: no free process takes from it anyway
    ({"draining": True}, [], False, False),
    ({"free_disk_mb": 10}, [], False, False),
])
def test_the_gate_closes_the_shared_queue_only_on_a_host_that_takes_no_builds_at_all(
        monkeypatch: pytest.MonkeyPatch, record: dict[str, Any], running: list[str],
        free: bool, shared: bool) -> None:
    advert = host_advert.HostAdvert(CONFIG, "h1@node")
    mine = {"host": "h1", "state": "up", "last_seen": host_advert.utcnow(), "concurrency": 1,
            "free_disk_mb": 5000, "min_free_disk_mb": 1000, "running": running}
    monkeypatch.setattr(advert, "advertised", lambda: mine)
    monkeypatch.setattr(host_advert.host_store, "advertise", lambda r: {**r, **record})
    advert.engine_version = "27"
    advert.beat()
    assert (advert.accepting, advert.open) == (free, shared)

    tasks = FakeTasks()
    consumer = SimpleNamespace(
        task_consumer=tasks, add_task_queue=tasks.queues.add,
        cancel_task_queue=tasks.queues.discard)
    monkeypatch.setattr(host_advert, "_advert", advert)
    gate = host_advert.HostGate.__new__(host_advert.HostGate)
    gate.sync(consumer)
    assert tasks.consuming_from(host_advert.SHARED_QUEUE) == shared
    advert.open = True  # undrained: the gate opens it again
    gate.sync(consumer)
    assert tasks.consuming_from(host_advert.SHARED_QUEUE)
