"""A forced rebuild archives the build it replaces as that build is when replaced.

The build it replaces may end (its worker completes it) or start again (the
reaper) between the read and the replace: the history then keeps that end,
not a cancel by the rebuild.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from common import build_store
from common.errors import AlreadyBuilding


class Result:
    def __init__(self, count: int) -> None:
        self.matched_count = self.deleted_count = count


def matches(doc: dict[str, Any], selector: dict[str, Any]) -> bool:
    return all(doc.get(key) == value for key, value in selector.items())


def found(collection: Collection, selector: dict[str, Any]) -> dict[str, Any]:
    doc = collection.find_one(selector)
    assert doc is not None
    return doc


class Collection:
    """The few calls ``create_build`` makes, on documents kept in a list."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def find_one(self, selector: dict[str, Any]) -> dict[str, Any] | None:
        found = next((doc for doc in self.docs if matches(doc, selector)), None)
        return copy.deepcopy(found)

    def insert_one(self, doc: dict[str, Any]) -> None:
        if any(d["_id"] == doc["_id"] for d in self.docs):
            raise DuplicateKeyError("duplicate _id")
        self.docs.append(copy.deepcopy(doc))

    def replace_one(self, selector: dict[str, Any], doc: dict[str, Any],
                    upsert: bool = False) -> Result:
        for index, old in enumerate(self.docs):
            if matches(old, selector):
                kept = {"_id": old["_id"]} if "_id" in old else {}
                self.docs[index] = {**kept, **copy.deepcopy(doc)}
                return Result(1)
        if upsert:
            self.docs.append(copy.deepcopy(doc))
        return Result(0)

    def delete_one(self, selector: dict[str, Any]) -> Result:
        for index, old in enumerate(self.docs):
            if matches(old, selector):
                del self.docs[index]
                return Result(1)
        return Result(0)


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> tuple[Collection, Collection]:
    builds, attempts = Collection(), Collection()
    monkeypatch.setattr(build_store.db, "builds", lambda config=None: builds)
    monkeypatch.setattr(build_store.db, "attempts", lambda config=None: attempts)
    monkeypatch.setattr(build_store, "ensure_indexes", lambda: None)
    return builds, attempts


FIELDS = {"repository": "https://example.org/r", "ref": "HEAD", "force": True}


def running_build(builds: Collection) -> dict[str, Any]:
    old: dict[str, Any] = {**build_store.new_record("n", dict(FIELDS), build_id="old"),
                           "phase": "registering", "image_name": "reg/n:abc", "commit": "abc"}
    builds.insert_one(old)
    return old


def ended_while_archiving(monkeypatch: pytest.MonkeyPatch, builds: Collection,
                          change: dict[str, Any]) -> None:
    """The old build's record changes (``change``) just after the rebuild archived it."""
    archive = build_store.archive
    calls: list[str] = []

    def archive_then_change(record: Any, cancelled: bool = False) -> None:
        archive(record, cancelled)
        if not calls:
            builds.docs[0].update(change)
        calls.append(record["status"])
    monkeypatch.setattr(build_store, "archive", archive_then_change)


def test_a_build_that_completes_while_replaced_is_archived_completed(
        monkeypatch: pytest.MonkeyPatch, stores: tuple[Collection, Collection]) -> None:
    builds, attempts = stores
    running_build(builds)
    ended_while_archiving(monkeypatch, builds, {"status": "completed", "phase": "finished"})
    new = build_store.create_build("n", dict(FIELDS), force=True)
    assert found(builds, {"_id": "n"})["build_id"] == new["build_id"] != "old"
    archived = found(attempts, {"build_id": "old"})
    assert archived["status"] == "completed"
    assert archived["image_name"] == "reg/n:abc"
    assert archived["error"] is None


def test_a_build_restarted_while_replaced_is_archived_as_restarted(
        monkeypatch: pytest.MonkeyPatch, stores: tuple[Collection, Collection]) -> None:
    builds, attempts = stores
    running_build(builds)
    ended_while_archiving(monkeypatch, builds, {"attempt": 2, "phase": "queued"})
    build_store.create_build("n", dict(FIELDS), force=True)
    archived = found(attempts, {"build_id": "old"})
    assert (archived["status"], archived["attempt"]) == ("cancelled", 2)
    # Cancelled before its push in the attempt it was in: it names no image.
    assert archived["image_name"] is None


def test_a_running_build_replaced_at_once_is_archived_cancelled(
        stores: tuple[Collection, Collection]) -> None:
    builds, attempts = stores
    running_build(builds)
    build_store.create_build("n", dict(FIELDS), force=True)
    archived = found(attempts, {"build_id": "old"})
    assert archived["status"] == "cancelled"
    assert archived["error"] == "Replaced by a forced rebuild."


def test_a_rebuild_another_request_replaced_first_is_already_building(
        monkeypatch: pytest.MonkeyPatch, stores: tuple[Collection, Collection]) -> None:
    builds, _ = stores
    running_build(builds)
    ended_while_archiving(monkeypatch, builds, {"build_id": "other"})
    with pytest.raises(AlreadyBuilding):
        build_store.create_build("n", dict(FIELDS), force=True)
    assert found(builds, {"_id": "n"})["build_id"] == "other"
