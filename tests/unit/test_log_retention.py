"""``workers/retention.prune_logs``: which builds lose their log, and what the store is asked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import workers.retention as retention
from common.clock import utcnow
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
            if isinstance(want, dict) and "$lt" in want:
                if value is None or not value < want["$lt"]:
                    return False
            elif isinstance(want, dict) and "$in" in want:
                if value not in want["$in"]:
                    return False
            elif value != want:
                return False
        return True

    def find(self, selector: dict[str, Any], fields: dict[str, int]) -> list[dict[str, Any]]:
        self.asked.append(selector)
        return [{key: r[key] for key in (*fields, "_id") if key in r}
                for r in self.records if self._matches(r, selector)]

    def update_many(self, selector: dict[str, Any], change: dict[str, Any]) -> None:
        self.marked += [r["build_id"] for r in self.records if self._matches(r, selector)]


class Logs:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_many(self, selector: dict[str, Any]) -> None:
        self.deleted += selector["build_id"]["$in"]


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
    logs = Logs()
    monkeypatch.setattr(retention.db, "builds", lambda config: builds)
    monkeypatch.setattr(retention.db, "attempts", lambda config: attempts)
    monkeypatch.setattr(retention, "get_db",
                        lambda config: type("Db", (), {"logs": logs})())
    config = load_config(environ={"BINDER_LOG_RETENTION_DAYS": "7"})

    assert retention.prune_logs(config) == 3
    assert sorted(logs.deleted) == ["old-cancelled", "old-completed", "old-failed"]
    assert sorted(builds.marked + attempts.marked) == [
        "old-cancelled", "old-completed", "old-failed"]
    # Only a status and an end time reach the store: what its (status, end_time) index serves.
    for asked in builds.asked + attempts.asked:
        assert set(asked) == {"status", "end_time"} and isinstance(asked["status"], str)
        assert set(asked["end_time"]) == {"$lt"}
