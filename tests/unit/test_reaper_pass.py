"""One build the reaper cannot deal with does not hold up every other."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import load_config
from common.errors import BadDatabase, NoDatabase
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
