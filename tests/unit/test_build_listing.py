"""``common/build_store.list_builds``: a page comes from the newest window of start times
that holds it, so a page of recent builds never reads the whole history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from common import build_store, db
from common.clock import utcnow


class Cursor:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def sort(self, spec: list[tuple[str, int]]) -> Cursor:
        assert spec == build_store.NEWEST_FIRST
        self.records.sort(key=lambda r: (r["start_time"], r["_id"]), reverse=True)
        return self

    def limit(self, count: int) -> list[dict[str, Any]]:
        return self.records[:count]


class Builds:
    """Answers equality and ``$gte`` selectors; remembers how many records each query
    matched (what the embedded store reads before it limits)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.matched: list[int] = []

    def find(self, query: dict[str, Any]) -> Cursor:
        def matches(record: dict[str, Any]) -> bool:
            return all(record[key] >= want["$gte"] if isinstance(want, dict)
                       else record[key] == want for key, want in query.items())
        found = [dict(r) for r in self.records if matches(r)]
        self.matched.append(len(found))
        return Cursor(found)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    now = utcnow()
    # One build a minute for the last 50 minutes, one a day for a year before that.
    ages = [dt.timedelta(minutes=m) for m in range(50)] + \
        [dt.timedelta(days=d) for d in range(1, 366)]
    store = Builds([{"_id": index, "name": f"b{index}", "status": "completed",
                     "start_time": now - age} for index, age in enumerate(ages)])
    monkeypatch.setattr(build_store.db, "builds", lambda: store)
    return store


def names(records: list[Any]) -> list[str]:
    return [record["name"] for record in records]


def test_a_page_of_recent_builds_reads_only_the_last_hour(builds: Builds) -> None:
    assert names(build_store.list_builds(limit=20, offset=10)) == [f"b{i}" for i in range(10, 30)]
    assert builds.matched == [50]  # the hour's builds, not the 415 of the year


def test_a_deeper_page_widens_the_window_until_it_holds_the_page(builds: Builds) -> None:
    page = build_store.list_builds(limit=20, offset=60)
    assert names(page) == [f"b{i}" for i in range(60, 80)]
    assert builds.matched == [50, 50, 52, 71, 220]  # 1 h, 8 h, 64 h, 21 d, then 171 d


def test_past_the_widest_window_every_record_is_asked(builds: Builds) -> None:
    assert names(build_store.list_builds(limit=10, offset=410)) == \
        [f"b{i}" for i in range(410, 415)]
    assert builds.matched[-1] == 415 and len(builds.matched) == len(db.LIST_WINDOWS) + 1
