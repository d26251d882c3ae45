"""The store's command counter counts what the farm asked, not the driver's retries."""

from __future__ import annotations

import types
import uuid
from typing import Any

from bson.binary import Binary

from tests.support.store_commands import StartedCommands


def event(command: dict[str, Any]) -> Any:
    return types.SimpleNamespace(command_name=next(iter(command)), command=command)


def test_a_retried_write_is_asked_once_and_other_commands_each_time() -> None:
    listener = StartedCommands()
    session = {"id": Binary.from_uuid(uuid.uuid4())}
    write = {"update": "builds", "lsid": session, "txnNumber": 1}
    assert listener.asked(event(write)) is True
    assert listener.asked(event(dict(write))) is False  # the same write, sent again
    assert listener.asked(event({**write, "txnNumber": 2})) is True
    read = {"find": "builds", "lsid": session}
    assert [listener.asked(event(read)) for _ in range(2)] == [True, True]
