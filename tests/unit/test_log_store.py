"""``common/log_store.py``: a batch written twice by pymongo's own retry is not an error."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from pymongo.errors import DuplicateKeyError

import common.log_store as log_store
from common.config import load_config


class Logs:
    """A ``logs`` collection whose insert reports the duplicate of a retried write."""

    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []

    def find_one(self, *args: object, **kwargs: object) -> None:
        return None

    def insert_one(self, doc: dict[str, Any]) -> None:
        self.inserted.append(doc)
        raise DuplicateKeyError("E11000 duplicate key error: _id_")


def test_a_retried_batch_that_was_written_does_not_fail_the_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logs = Logs()
    monkeypatch.setattr(log_store, "get_db", lambda: type("Db", (), {"logs": logs})())
    monkeypatch.setattr(log_store, "redis_client",
                        lambda config: fakeredis.FakeRedis(decode_responses=True))
    writer = log_store.BuildLogWriter("b1", load_config(environ={}))
    writer.write("one")
    writer.flush()  # no BadDatabase
    assert logs.inserted[0]["lines"] == ["one"]
