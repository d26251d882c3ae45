"""``workers/retention.prune_logs``: which builds lose their log, and what the store is asked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pymongo import DeleteMany, UpdateMany

import workers.retention as retention
from common.clock import CLOCK_SLACK, utcnow
from common.config import load_config


class Records:
    """A builds or attempts collection answering equality and ``$lt`` selectors."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.asked: list[dict[str, Any]] = []
        self.marked: list[str] = []

    def _matches(self, record: dict[str, Any], selector: dict[str, Any]) -> bool:
        for key, want in selector.items():
            value = record.get(key)
            if isinstance(want, dict):
                if value is None or not value < want["$lt"] or \
                        ("$gte" in want and not value >= want["$gte"]):
                    return False
            elif value != want:
                return False
        return True

    def find(self, selector: dict[str, Any], fields: dict[str, int]) -> list[dict[str, Any]]:
        self.asked.append(selector)
        return [{key: r[key] for key in (*fields, "_id") if key in r}
                for r in self.records if self._matches(r, selector)]

    def bulk_write(self, requests: list[UpdateMany]) -> None:
        # pymongo's write models keep their selector and change private.
        for request in requests:
            for record in self.records:
                if self._matches(record, request._filter):
                    self.marked.append(record["build_id"])
                    record.update(request._doc["$set"])


class Logs:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def bulk_write(self, requests: list[DeleteMany]) -> None:
        self.deleted += [request._filter["build_id"] for request in requests]


class Marks:
    """The ``retention`` collection: one document per kind of pass."""

    def __init__(self) -> None:
        self.marks: dict[str, dict[str, Any]] = {}

    def find_one(self, selector: dict[str, Any]) -> dict[str, Any] | None:
        return self.marks.get(selector["_id"])

    def update_one(self, selector: dict[str, Any], change: dict[str, Any],
                   upsert: bool = False) -> None:
        self.marks.setdefault(selector["_id"], {}).update(change["$set"])


class Store:
    def __init__(self) -> None:
        self.logs, self.marks = Logs(), Marks()

    def __getitem__(self, collection: str) -> Marks:
        assert collection == retention.MARKS
        return self.marks


def test_ended_builds_past_retention_lose_their_log_asked_by_status_and_end_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow()
    long_ago, lately = now - dt.timedelta(days=30), now - dt.timedelta(days=1)

    def build(build_id: str, status: str, ended: dt.datetime | None, **fields: Any) \
            -> dict[str, Any]:
        return {"build_id": build_id, "status": status, "end_time": ended, **fields}

    builds = Records([build("old-completed", "completed", long_ago),
                      build("old-cancelled", "cancelled", long_ago),
                      build("recent", "completed", lately),
                      build("running", "running", None)])
    attempts = Records([build("old-failed", "failed", long_ago),
                        build("already-pruned", "completed", long_ago, log_pruned=long_ago)])
    store = Store()
    monkeypatch.setattr(retention.db, "builds", lambda config: builds)
    monkeypatch.setattr(retention.db, "attempts", lambda config: attempts)
    monkeypatch.setattr(retention, "get_db", lambda config: store)
    config = load_config(environ={"BINDER_LOG_RETENTION_DAYS": "7"})

    assert retention.prune_logs(config) == 3
    assert sorted(store.logs.deleted) == ["old-cancelled", "old-completed", "old-failed"]
    assert sorted(builds.marked + attempts.marked) == [
        "old-cancelled", "old-completed", "old-failed"]
    # Only a status and an end time reach the store: what its (status, end_time) index serves.
    for asked in builds.asked + attempts.asked:
        assert set(asked) == {"status", "end_time"} and isinstance(asked["status"], str)
        assert set(asked["end_time"]) == {"$lt"}
    through = store.marks.marks["logs"]["through"]
    assert now - dt.timedelta(days=7) <= through < now - dt.timedelta(days=7, seconds=-5)

    # The next pass asks only for builds that ended since the last cutoff: one that ended
    # just after it (its log is now past retention) loses its log, the old ones are not
    # read again.
    builds.records.append(build("ended-at-the-edge", "completed",
                                through + dt.timedelta(minutes=1)))
    builds.asked, attempts.asked, builds.marked, attempts.marked = [], [], [], []
    store.logs.deleted = []
    monkeypatch.setattr(retention, "utcnow", lambda: now + dt.timedelta(hours=1))
    assert retention.prune_logs(config) == 1
    assert store.logs.deleted == ["ended-at-the-edge"] == builds.marked
    for asked in builds.asked + attempts.asked:
        assert asked["end_time"]["$gte"] == through - CLOCK_SLACK
    assert store.marks.marks["logs"]["through"] == now + dt.timedelta(hours=1, days=-7)
