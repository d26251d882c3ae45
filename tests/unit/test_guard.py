"""The phase guard: its thread asks the store; tight loops only ask the guard."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from types import SimpleNamespace
from typing import Any

import pytest

from common.clock import utcnow
from common.config import load_config
from common.errors import BuildCancelled
from common.models import Phase
from workers import guard as guard_module
from workers import stopping
from workers.guard import STOP_TICK, PhaseGuard
from workers.phases import push

CONFIG = load_config(environ={}).replace(verify=False)


class Store:
    """The heartbeats a guard sends; ``cancel`` is what the record answers."""

    def __init__(self) -> None:
        self.beats: list[tuple[str, int]] = []
        self.cancel = False

    def heartbeat(self, build_id: str, attempt: int) -> bool:
        self.beats.append((build_id, attempt))
        return self.cancel


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store()
    monkeypatch.setattr(guard_module.build_store, "heartbeat", store.heartbeat)
    return store


def make_guard(interval: float = 5) -> PhaseGuard:
    return PhaseGuard("b" * 32, 1, Phase.PUSHING, utcnow() + dt.timedelta(hours=1), 60, interval)


def test_raise_if_stopped_never_asks_the_store(store: Store) -> None:
    guard = make_guard()
    for _ in range(1000):
        guard.raise_if_stopped()
    assert store.beats == []


def test_check_asks_the_store_at_once(store: Store) -> None:
    make_guard().check()
    assert store.beats == [("b" * 32, 1)]


def test_a_cancel_found_by_the_guard_thread_stops_a_tight_loop(
        store: Store) -> None:
    store.cancel = True
    stopped: list[bool] = []
    guard = make_guard(interval=0.05)
    guard.on_abort(lambda: stopped.append(True))
    with guard, pytest.raises(BuildCancelled):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            guard.raise_if_stopped()
            time.sleep(0.01)
    assert stopped == [True]
    assert store.beats


class _Client:
    def close(self) -> None:
        pass


def test_the_push_checks_each_event_without_a_store_round_trip(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    events = 5000  # a large image's push reports thousands of progress events

    def push_image(client: Any, config: Any, image: str, on_status: Any, check: Any) -> int:
        for _ in range(events):
            check()
        return 1024

    monkeypatch.setattr(push, "push_image", push_image)
    monkeypatch.setattr(push, "docker_client", lambda *args, **kwargs: _Client())
    monkeypatch.setattr(push, "watching", lambda *args: contextlib.nullcontext())
    said: list[str] = []
    phase = SimpleNamespace(image="127.0.0.1:5000/binder-o-r:tag", record={}, config=CONFIG,
                            guard=make_guard(), say=said.append)
    result = push.run(phase)  # type: ignore[arg-type]
    assert result.changes["pushed_bytes"] == 1024
    assert store.beats == []


def test_a_stop_of_the_worker_stops_the_phase_within_a_tick_without_the_store(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[bool] = []
    guard = make_guard(interval=60)  # the store is not asked again for a minute
    guard.on_abort(lambda: stopped.append(True))
    with guard:
        monkeypatch.setattr(stopping, "_requested", True)
        started = time.monotonic()
        while not stopped and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert time.monotonic() - started < 2 * STOP_TICK + 0.5
        with pytest.raises(stopping.WorkerStopping):
            guard.raise_if_stopped()
    assert stopped == [True]
    assert store.beats == []
