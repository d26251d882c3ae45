"""``common/host_store.running_builds``: which host each running build counts on."""

from __future__ import annotations

from typing import Any

import pytest

from common import host_store


class Builds:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.asked: list[dict[str, Any]] = []

    def find(self, selector: dict[str, Any], fields: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(selector)
        return [doc for doc in self.docs if doc["status"] == selector["status"]]


RUNNING = [
    {"name": "leased", "build_id": "1", "status": "running", "lease": {"host": "a"}},
    {"name": "between-phases", "build_id": "2", "status": "running",
     "lease": {"host": "b"}, "placed_on": "a"},
    {"name": "placed", "build_id": "3", "status": "running", "lease": None, "placed_on": "b"},
    {"name": "shared-queue", "build_id": "4", "status": "running", "lease": None,
     "placed_on": None},
    {"name": "ended", "build_id": "5", "status": "completed", "lease": None, "placed_on": "a"},
]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    collection = Builds(RUNNING)
    monkeypatch.setattr(host_store, "get_db", lambda: type("Db", (), {"builds": collection})())
    return collection


def test_a_build_counts_where_its_lease_is_else_where_it_was_sent(builds: Builds) -> None:
    assert host_store.running_builds() == {"a": ["leased"], "b": ["between-phases", "placed"]}
    assert host_store.running_builds("b") == {"b": ["between-phases", "placed"]}
    assert host_store.running_builds("b", exclude_build="3") == {"b": ["between-phases"]}
    assert host_store.running_counts() == {"a": 1, "b": 2}
    assert host_store.running_builds("b", claimed_only=True) == {"b": ["between-phases"]}


def test_the_store_is_asked_only_for_the_status_its_index_finds(builds: Builds) -> None:
    # Any condition beside the status (the lease, the placement) made the store scan
    # every build the farm ever made, at every heartbeat of every host.
    host_store.running_builds("a", exclude_build="1")
    assert builds.asked == [{"status": "running"}]
