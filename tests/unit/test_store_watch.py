"""The reaper's watch of the store outlives a restart of the beat."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from common.clock import utcnow
from common.config import load_config
from common.errors import BadDatabase
from common.models import BuildRecord
from workers import reaper
from workers.store_watch import StoreWatch

CONFIG = load_config(environ={}, heartbeat_interval=1, heartbeat_stale=10, build_timeout=600)
W = "a@box:10"


class Kept:
    """The ``reaper`` collection, as far as the watch uses it."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None

    def find_one(self, selector: Mapping[str, Any], /) -> Mapping[str, Any] | None:
        return self.document

    def replace_one(self, selector: Mapping[str, Any], document: dict[str, Any], /,
                    upsert: bool = False) -> object:
        self.document = dict(document)
        return None


@pytest.fixture
def restarted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A farm whose one running build is held by a live worker but has not beaten for
    two hours (its phase is stuck); returns the names of the builds the reaper restarts."""
    now = utcnow()
    found = {W: {"worker": W, "node": "a@box", "host": "a", "hostname": "box", "pid": 10,
                 "state": "up", "started": now, "last_seen": now, "builds": ["b1"]}}
    stuck = {"build_id": "b1", "name": "n", "attempt": 1, "status": "running",
             "phase": "building", "phases": {"building": {"start": now}},
             "lease": {"worker": W, "host": "a", "attempt": 1,
                       "since": now - dt.timedelta(hours=2)},
             "heartbeat": now - dt.timedelta(hours=2)}
    names: list[str] = []

    def restart(build: BuildRecord, reason: str, config: object) -> None:
        names.append(build["name"])
    monkeypatch.setattr(reaper.worker_store, "all_workers", lambda: found)
    monkeypatch.setattr(reaper.worker_store, "prune", lambda after: 0)
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: [stuck])
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: "e1")
    monkeypatch.setattr(reaper, "unsent_builds", lambda config, hosts: [])
    monkeypatch.setattr(reaper, "withdraw_left", lambda config, now: 0)
    monkeypatch.setattr(reaper.leases, "restart", restart)
    return names


def first_run(kept: Kept) -> None:
    """A beat that watched the store for long, and saw it answer all along."""
    watch = StoreWatch(CONFIG, kept)
    watch.back_since = utcnow() - dt.timedelta(days=1)
    reaper.reap(None, CONFIG, watch)  # type: ignore[arg-type]


def test_a_restarted_beat_ends_a_stuck_phase_without_waiting_for_it_again(
        restarted: list[str]) -> None:
    """The stuck-phase backstop (``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT``)
    counts from the store's return the previous run of the beat saw, not from the
    new run's start: a beat restarted more often than that would never end the build."""
    kept = Kept()
    first_run(kept)
    assert restarted == ["n"]
    reaper.reap(None, CONFIG, StoreWatch(CONFIG, kept))  # type: ignore[arg-type]
    assert restarted == ["n", "n"]


def test_a_beat_away_for_long_assumes_the_store_may_have_been_away(
        restarted: list[str]) -> None:
    """Nobody watched the store meanwhile: the heartbeat may be old for its outage."""
    kept = Kept()
    first_run(kept)
    assert kept.document is not None
    kept.document["checked"] -= dt.timedelta(minutes=10)
    reaper.reap(None, CONFIG, StoreWatch(CONFIG, kept))  # type: ignore[arg-type]
    assert restarted == ["n"]


def test_a_beat_with_nothing_kept_starts_from_its_own_start(restarted: list[str]) -> None:
    reaper.reap(None, CONFIG, StoreWatch(CONFIG, Kept()))  # type: ignore[arg-type]
    assert restarted == []


class Refusing(Kept):
    """A store that answers the farm's other questions but refuses the watch's."""

    def find_one(self, selector: Mapping[str, Any], /) -> Mapping[str, Any] | None:
        raise BadDatabase("The build database (MongoDB) answered with an error.")

    def replace_one(self, selector: Mapping[str, Any], document: dict[str, Any], /,
                    upsert: bool = False) -> object:
        raise BadDatabase("The build database (MongoDB) answered with an error.")


def test_a_watch_the_store_will_not_keep_does_not_stop_the_reaper(
        restarted: list[str]) -> None:
    """Kept only to spare a restarted beat a wait: the passes go on without it."""
    watch = StoreWatch(CONFIG, Refusing())
    watch.back_since = utcnow() - dt.timedelta(days=1)
    reaper.reap(None, CONFIG, watch)  # type: ignore[arg-type]
    assert restarted == ["n"]


def test_a_restarted_beat_times_a_workers_silence_from_before_its_restart() -> None:
    """A worker silent since before the restart is not heard anew as the new run first
    reads its record: its build does not wait ``BINDER_HEARTBEAT_STALE`` once more per
    restart of the beat."""
    kept = Kept()
    first = StoreWatch(CONFIG, kept)
    start = utcnow()
    silent = {W: {"worker": W, "node": "a@box", "host": "a", "hostname": "box", "pid": 10,
                  "state": "up", "started": start, "last_seen": start, "builds": ["b1"]}}
    first.resume(start)
    first.succeeded(start)
    first.heard(silent, start)  # type: ignore[arg-type]
    first.keep(start)
    later = start + dt.timedelta(seconds=20)
    second = StoreWatch(CONFIG, kept)
    second.resume(later)
    assert second.heard(silent, later) == {W: start}  # type: ignore[arg-type]
    # A record read for the first time counts as written as it is read.
    assert StoreWatch(CONFIG, Kept()).heard(silent, later) == {W: later}  # type: ignore[arg-type]
