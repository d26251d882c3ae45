"""Counting what tests send to the store: a client of their own, and a listener of the
commands it sends."""

from __future__ import annotations

from typing import Any

import pymongo.monitoring
import pytest

from common import db

#: Commands a client sends of itself (handshakes, monitoring), not asked by the farm.
HOUSEKEEPING = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions"})


class StartedCommands(pymongo.monitoring.CommandListener):
    """A listener of the commands started; what they did after is not looked at."""

    def __init__(self) -> None:
        self._writes: set[tuple[bytes, int]] = set()

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        raise NotImplementedError

    def asked(self, event: pymongo.monitoring.CommandStartedEvent) -> bool:
        """Whether the farm asked for this command, rather than the driver sending a
        write again after its first try failed on the way (a retryable write: same
        session and transaction number), which the farm's code never sees."""
        txn = event.command.get("txnNumber")
        lsid = event.command.get("lsid")
        if txn is None or lsid is None:
            return True
        key = (bytes(lsid["id"]), int(txn))
        if key in self._writes:
            return False
        self._writes.add(key)
        return True

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


def fresh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the process's store client again at its next use (after a listener is
    registered, which pymongo gives only to clients made later), and give back the
    one before when the test ends: the client and the key it was made for together,
    or a later test would be handed this test's client for another store."""
    monkeypatch.setattr(db, "_client", None)
    monkeypatch.setattr(db, "_client_key", None)
