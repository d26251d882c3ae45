"""``workers/reaper.unsent_builds``: which queued builds the reaper sends again."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import workers.reaper as reaper
from common.clock import utcnow
from common.config import load_config

QUEUED = {"status": "running", "phase": "queued", "lease": None}


def records(now: dt.datetime) -> list[dict[str, Any]]:
    """Queued builds sent at ``now`` unless they say otherwise, and one running."""
    def queued(name: str, **fields: Any) -> dict[str, Any]:
        return {"name": name, **QUEUED, "enqueued": True, "enqueued_at": now,
                "broker_epoch": "e2", "placed_on": "a", **fields}
    return [
        queued("sent"),
        queued("never-sent", enqueued=False, enqueued_at=None, broker_epoch=None,
               placed_on=None),
        queued("old-broker", broker_epoch="e1"),
        queued("no-epoch-recorded", broker_epoch=None),
        queued("long-ago", enqueued_at=now - reaper.REQUEUE_AFTER - dt.timedelta(seconds=1)),
        queued("dead-host", placed_on="gone"),
        queued("shared-queue", placed_on=None),
        {**queued("running"), "phase": "building", "lease": {"host": "a"}, "enqueued": False},
    ]


class Builds:
    def __init__(self) -> None:
        self.records = records(utcnow())  # made when the test runs: "sent" is recent
        self.asked: list[dict[str, Any]] = []

    def find(self, selector: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(selector)
        return [r for r in self.records if all(r.get(k) == v for k, v in selector.items())]


def test_queued_builds_are_sent_again_when_unsent_stale_or_placed_on_a_dead_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    builds = Builds()
    monkeypatch.setattr(reaper.db, "builds", lambda config: builds)
    monkeypatch.setattr(reaper, "broker_epoch", lambda config: "e2")
    config = load_config(environ={})
    names = [r["name"] for r in reaper.unsent_builds(config, {"a"})]
    assert names == ["never-sent", "old-broker", "no-epoch-recorded", "long-ago", "dead-host"]
    # Without the live hosts, a build placed on a dead host is not told apart.
    assert "dead-host" not in [r["name"] for r in reaper.unsent_builds(config)]
    # Only the status reaches the store (more made it scan every build, every pass).
    assert builds.asked == [{"status": "running"}] * 2
