"""Which Docker host may take a build: free hosts, the last host first, the least loaded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from typing import Any

import pytest

from common import build_store, host_store
from common.config import load_config
from common.errors import NoDatabase
from common.host_store import HostRecord, choose, refusal
from workers import placement

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def host(name: str, **fields: Any) -> HostRecord:
    record: dict[str, Any] = {"host": name, "state": "up", "last_seen": NOW, "draining": False,
                              "concurrency": 1, "free_disk_mb": 5000, "min_free_disk_mb": 1000}
    record.update(fields)
    return record  # type: ignore[return-value]


def test_a_host_is_free_only_when_up_seen_undrained_below_concurrency_with_disk() -> None:
    assert refusal(host("a"), 0, 10, NOW) is None
    assert refusal(host("a", concurrency=2), 1, 10, NOW) is None
    assert "full" in str(refusal(host("a"), 1, 10, NOW))
    assert "draining" in str(refusal(host("a", draining=True), 0, 10, NOW))
    assert "disk" in str(refusal(host("a", free_disk_mb=500), 0, 10, NOW))
    assert "not up" in str(refusal(host("a", state="stopped"), 0, 10, NOW))
    quiet = host("a", last_seen=NOW - dt.timedelta(seconds=11))
    assert "not up" in str(refusal(quiet, 0, 10, NOW))


def test_a_build_goes_to_its_last_host_when_free_else_the_least_loaded() -> None:
    hosts = [host("a", concurrency=2), host("b", concurrency=2), host("c", concurrency=4)]
    assert choose(hosts, {"a": 1}, 10, preferred="a", now=NOW) == "a"
    assert choose(hosts, {"a": 2, "b": 0}, 10, preferred="a", now=NOW) == "b"
    # c runs 1 of 4, b 1 of 2: c is the least loaded
    assert choose(hosts, {"a": 2, "b": 1, "c": 1}, 10, preferred="a", now=NOW) == "c"
    assert choose(hosts, {"a": 2, "b": 2, "c": 4}, 10, now=NOW) is None
    assert choose(hosts, {}, 10, preferred="a", exclude="a", now=NOW) == "b"
    drained = [host("a", draining=True), host("b")]
    assert choose(drained, {}, 10, preferred="a", now=NOW) == "b"
    assert choose([host("a", draining=True)], {}, 10, preferred="a", now=NOW) is None


class FakeApp:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, tuple[Any, ...], str]] = []
        self.fail = fail

    def send_task(self, name: str, args: tuple[Any, ...], queue: str,
                  shadow: str | None = None) -> None:
        if self.fail:
            raise OSError("broker down")
        self.sent.append((name, args, queue))


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """host_store's reads, from a dict the test fills."""
    state: dict[str, Any] = {"hosts": [], "running": {}}

    def running_builds(host: str | None = None, exclude_build: str | None = None,
                       claimed_only: bool = False) -> dict[str, list[str]]:
        counts = state["claimed"] if claimed_only and "claimed" in state else state["running"]
        return {h: [f"b{i}" for i in range(n)] for h, n in counts.items()
                if host in (None, h)}

    monkeypatch.setattr(host_store, "find", lambda name: next(
        (h for h in state["hosts"] if h["host"] == name), None))
    monkeypatch.setattr(host_store, "all_hosts", lambda: list(state["hosts"]))
    monkeypatch.setattr(host_store, "running_builds", running_builds)
    monkeypatch.setattr(host_store, "running_counts", lambda: Counter(state["running"]))
    monkeypatch.setattr(host_store, "note_placement", lambda *args: None)
    monkeypatch.setattr(host_store, "utcnow", lambda: NOW)
    monkeypatch.setattr(placement, "BOUNCE_PAUSE", 0)
    monkeypatch.setattr(build_store, "find_by_id", lambda build_id: {"name": "o-r"})
    return state


CONFIG = load_config(environ={}, worker_id="a")


def test_a_free_host_runs_what_it_took(store: dict[str, Any]) -> None:
    store["hosts"] = [host("a"), host("b")]
    app = FakeApp()
    assert not placement.reroute(app, CONFIG, "id1", 1)
    assert app.sent == []


def test_a_draining_or_full_host_sends_the_build_on(store: dict[str, Any]) -> None:
    store["hosts"] = [host("a", draining=True), host("b")]
    app = FakeApp()
    assert placement.reroute(app, CONFIG, "id1", 1)
    assert app.sent == [("binder.fetch", ("id1", 1), "host.b")]
    store["hosts"] = [host("a"), host("b")]
    store["running"] = {"a": 1, "b": 1}
    assert placement.reroute(app, CONFIG, "id2", 1)
    assert app.sent[-1] == ("binder.fetch", ("id2", 1), "builds")  # nobody free: shared



def test_a_host_full_only_of_builds_sent_to_it_but_not_started_runs_what_it_took(
        store: dict[str, Any]) -> None:
    # A burst: the API sent one build to this host's queue, and the host took
    # another from the shared queue first. It runs that one; the one it was sent
    # is sent on when its turn comes.
    store["hosts"] = [host("a"), host("b")]
    store["running"], store["claimed"] = {"a": 1, "b": 1}, {"b": 1}
    app = FakeApp()
    assert not placement.reroute(app, CONFIG, "id1", 1, taken_from="builds")
    assert app.sent == []
    store["claimed"] = {"a": 1, "b": 1}  # it started: the next one is sent on
    assert placement.reroute(app, CONFIG, "id2", 1, taken_from="host.a")
    assert app.sent == [("binder.fetch", ("id2", 1), "builds")]


def test_only_a_build_from_the_shared_queue_waits_before_going_back_to_it(
        store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # A host sent a burst's builds to its own queue is full: it sends each on at
    # once, so the next phase of the build it runs does not wait behind them.
    pauses: list[float] = []
    test_thread, real_sleep = threading.current_thread(), time.sleep

    def pause(seconds: float) -> None:
        # ``time`` is one module for the process: other threads' sleeps stay real ones.
        if threading.current_thread() is test_thread:
            pauses.append(seconds)
        else:
            real_sleep(seconds)
    monkeypatch.setattr(placement, "BOUNCE_PAUSE", 0.3)
    monkeypatch.setattr(placement.time, "sleep", pause)
    store["hosts"] = [host("a"), host("b")]
    store["running"] = {"a": 1, "b": 1}
    app = FakeApp()
    assert placement.reroute(app, CONFIG, "id1", 1, taken_from="host.a")
    assert pauses == []
    assert placement.reroute(app, CONFIG, "id2", 1, taken_from="builds")
    assert placement.reroute(app, CONFIG, "id3", 1)  # not known: as if shared
    assert pauses == [0.3, 0.3]
    assert [queue for _, _, queue in app.sent] == ["builds"] * 3


def test_where_a_build_goes_is_noted_before_it_is_sent(
        store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # The host it goes to may send it on at once: its note must come after ours, or
    # ours would count the build on a host that no longer has it (and that host,
    # "full", would take no builds while the build waits for a free one).
    events: list[tuple[str, Any]] = []
    monkeypatch.setattr(host_store, "note_placement",
                        lambda build_id, attempt, target: events.append(("note", target)))

    class RecordingApp(FakeApp):
        def send_task(self, name: str, args: tuple[Any, ...], queue: str,
                      shadow: str | None = None) -> None:
            events.append(("send", queue))
            super().send_task(name, args, queue, shadow)

    store["hosts"] = [host("a", draining=True), host("b")]
    assert placement.reroute(RecordingApp(), CONFIG, "id1", 1)
    assert events == [("note", "b"), ("send", "host.b")]
    events.clear()
    assert not placement.reroute(RecordingApp(fail=True), CONFIG, "id2", 1)
    assert events == [("note", "b"), ("send", "host.b"), ("note", "a")]  # runs here after all

def test_when_it_cannot_send_the_build_on_it_runs_it(store: dict[str, Any]) -> None:
    store["hosts"] = [host("a", draining=True), host("b")]
    assert not placement.reroute(FakeApp(fail=True), CONFIG, "id1", 1)


def test_without_the_store_a_build_goes_to_the_shared_queue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise NoDatabase("down")

    monkeypatch.setattr(host_store, "place", down)
    assert placement.queue_for(CONFIG, "n") == ("builds", None)
    monkeypatch.setattr(host_store, "place", lambda config, name, built_before: "b")
    assert placement.queue_for(CONFIG, "n") == ("host.b", "b")


def test_a_name_never_built_is_placed_without_asking_where_it_was_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(host_store, "all_hosts",
                        lambda: [host("a", concurrency=2), host("b", concurrency=2)])
    monkeypatch.setattr(host_store, "running_counts", lambda: Counter({"a": 1}))
    monkeypatch.setattr(host_store, "utcnow", lambda: NOW)
    monkeypatch.setattr(host_store, "last_build_host", lambda name: asked.append(name) or "a")
    assert host_store.place(CONFIG, "n", built_before=False) == "b"  # the least loaded
    assert asked == []
    assert host_store.place(CONFIG, "n") == "a"  # its layers are there
    assert asked == ["n"]
