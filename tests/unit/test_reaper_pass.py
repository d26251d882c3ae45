"""One build the reaper cannot deal with does not hold up every other."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from common.clock import utcnow
from common.config import load_config
from common.errors import BadDatabase, NoDatabase
from tests.support.outage_clock import outage_clock
from workers import reaper
from workers.store_watch import StoreWatch

CONFIG = load_config(environ={})


def farm(monkeypatch: pytest.MonkeyPatch, fail: BaseException) -> tuple[list[str], list[str]]:
    """Two lost builds, the first of which ``fail``s as the reaper restarts it, and a
    queued one to send; returns the builds restarted and the builds sent."""
    lost = [{"name": name, "build_id": name, "attempt": 1, "lease": {"host": "gone"}}
            for name in ("first", "second")]
    restarted: list[str] = []
    sent: list[str] = []

    def restart(build: dict[str, Any], reason: str, config: object) -> dict[str, Any]:
        if build["name"] == "first":
            raise fail
        restarted.append(build["name"])
        return {**build, "attempt": 2}

    def enqueue(celery: object, config: object, record: dict[str, Any]) -> int:
        sent.append(record["name"])
        return 1
    monkeypatch.setattr(reaper.worker_store, "all_workers", lambda: {})
    monkeypatch.setattr(reaper.worker_store, "prune", lambda after: 0)
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: lost)
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: "e1")
    monkeypatch.setattr(reaper, "verdict", lambda build, *rest: ("restart", "its host is gone"))
    monkeypatch.setattr(reaper.leases, "restart", restart)
    monkeypatch.setattr(reaper, "unsent_builds",
                        lambda config, hosts: [{"name": "queued", "attempt": 1}])
    monkeypatch.setattr(reaper, "withdraw_left", lambda config, now: 0)
    monkeypatch.setattr(reaper, "enqueue_build", enqueue)
    return restarted, sent


@pytest.mark.parametrize("fail", [
    BadDatabase("The build database (MongoDB) answered with an error."),
    KeyError("since"),  # a record no version of the farm writes
])
def test_a_build_the_reaper_fails_on_leaves_the_others_to_it(
        monkeypatch: pytest.MonkeyPatch, fail: BaseException) -> None:
    """Every pass would fail on it again: the builds after it would never be restarted,
    nor queued ones sent, for as long as it stays running."""
    restarted, sent = farm(monkeypatch, fail)
    done = reaper.reap(None, CONFIG, StoreWatch(CONFIG))  # type: ignore[arg-type]
    assert restarted == ["second"]
    assert sent == ["second", "queued"]
    assert (done["restarted"], done["requeued"]) == (1, 1)


def test_a_store_gone_during_a_pass_still_ends_the_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The store away, the next builds would only wait for it too."""
    restarted, sent = farm(monkeypatch, NoDatabase("The build database (MongoDB) "
                                                   "cannot be reached."))
    watch = StoreWatch(CONFIG)
    reaper.reap(None, CONFIG, watch)  # type: ignore[arg-type]
    assert (restarted, sent) == ([], [])
    assert watch._failing


def test_passes_slowed_by_the_registry_still_restart_a_lost_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry answers each withdrawal only at its timeout, and every pass ends with
    40 s of them: the reaper, busy all along, read the store at each pass. A worker killed
    long ago is still judged silent: its builds do not wait for the registry."""
    clock = outage_clock(monkeypatch)
    start = clock.now
    wall = utcnow()
    monkeypatch.setattr(reaper, "utcnow",
                        lambda: wall + dt.timedelta(seconds=clock.now - start))
    dead = "a@box:10"
    found = {dead: {"worker": dead, "node": "a@box", "host": "a", "hostname": "box",
                    "pid": 10, "state": "up", "started": wall - dt.timedelta(hours=2),
                    "last_seen": wall - dt.timedelta(hours=1), "builds": ["b1"]}}
    held = {"build_id": "b1", "name": "n", "attempt": 1, "status": "running",
            "phase": "building", "phases": {"building": {"start": wall}},
            "lease": {"worker": dead, "host": "a", "attempt": 1,
                      "since": wall - dt.timedelta(hours=1)},
            "heartbeat": wall - dt.timedelta(hours=1)}
    restarted: list[str] = []

    def slow_registry(config: object, now: object) -> int:
        clock.sleep(40)
        return 0
    monkeypatch.setattr(reaper.worker_store, "all_workers", lambda: found)
    monkeypatch.setattr(reaper.worker_store, "prune", lambda after: 0)
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: [held])
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: "e1")
    monkeypatch.setattr(reaper, "unsent_builds", lambda config, hosts: [])
    monkeypatch.setattr(reaper, "withdraw_left", slow_registry)
    monkeypatch.setattr(reaper.leases, "restart",
                        lambda build, reason, config: restarted.append(reason))
    watch = StoreWatch(CONFIG)
    watch.back_since = wall - dt.timedelta(days=1)
    for _ in range(4):
        reaper.reap(None, CONFIG, watch)  # type: ignore[arg-type]
        clock.sleep(CONFIG.reaper_interval)
    assert restarted and restarted[0] == f"its worker {dead} went silent"


def test_a_queued_build_the_reaper_fails_to_send_leaves_the_others_to_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    restarted, sent = farm(monkeypatch, KeyError("never raised here"))
    monkeypatch.setattr(reaper, "_running_with_lease", lambda config: [])
    monkeypatch.setattr(reaper, "unsent_builds", lambda config, hosts: [
        {"name": "refused", "attempt": 1}, {"build_id": "nameless"},
        {"name": "queued", "attempt": 1}])

    def enqueue(celery: object, config: object, record: dict[str, Any]) -> int:
        if record.get("name") in ("refused", None):
            raise BadDatabase("The build database (MongoDB) answered with an error.")
        sent.append(record["name"])
        return 1
    monkeypatch.setattr(reaper, "enqueue_build", enqueue)
    done = reaper.reap(None, CONFIG, StoreWatch(CONFIG))  # type: ignore[arg-type]
    assert (sent, done["requeued"]) == (["queued"], 1)
