"""A build log's two stores for unit tests: a ``logs`` collection in memory and a
fakeredis live stream, put where ``common.log_store`` looks for them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Protocol

import fakeredis
import pytest
from pymongo.errors import AutoReconnect

import common.log_store as log_store


class LogCollection(Protocol):
    """What ``common.log_store`` uses of the ``logs`` collection."""

    def find(self, query: dict[str, Any], *args: object) -> Any: ...

    def insert_one(self, doc: dict[str, Any]) -> Any: ...


def use_log_stores(monkeypatch: pytest.MonkeyPatch, collection: LogCollection,
                   stream: fakeredis.FakeRedis | None = None) -> fakeredis.FakeRedis:
    """Make ``common.log_store`` store batches in ``collection`` and stream lines to
    ``stream`` (a new empty one when not given); returns the stream."""
    live = stream if stream is not None else fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(log_store, "get_db", lambda: SimpleNamespace(logs=collection))
    monkeypatch.setattr(log_store, "redis_client", lambda config: live)
    return live


class KeptLogs:
    """A ``logs`` collection holding what build ``b1``'s process stored before it died;
    set ``failing`` to make its writes fail as an unreachable database's do."""

    def __init__(self) -> None:
        self.docs = [log_store.log_document("b1", 1, ["== building on a (attempt 1)",
                                                      "#5 RUN make"])]
        self.failing = False

    def find(self, query: dict[str, Any], *args: object) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["build_id"] == query["build_id"]]

    def insert_one(self, doc: dict[str, Any]) -> None:
        if self.failing:
            raise AutoReconnect("down")
        self.docs.append(doc)

    def lines(self) -> list[str]:
        return [line for doc in sorted(self.docs, key=lambda d: d["seq"])
                for line in doc["lines"]]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> KeptLogs:
    """The log stores a phase writes to, its collection a :class:`KeptLogs`.

    A test module imports this fixture and names it in ``__all__`` to use it."""
    kept = KeptLogs()
    use_log_stores(monkeypatch, kept)
    return kept
