"""The writes a running phase makes many times per build cost one round trip to the
store each: a heartbeat (the guard's, and every ``check``), a phase's end, and the
changes whose writer needs nothing back. Counted against the shared Mongo wire server,
in a database of this module's own."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo.monitoring
import pytest

from common import build_store, db, template_store
from common.config import Config, get_config, set_config
from common.errors import AlreadyBuilding, BuildCancelled, LeaseLost
from common.models import Phase, Status
from tests.integration.conftest import RUN_ID
from tests.support.store_commands import StartedCommands, fresh_client

WORKER, HOST = "rt-a@box:1", "rt-a"


class Commands(StartedCommands):
    """The commands the counting thread sends to the store while ``on``, by name
    (registered once: pymongo cannot take a listener back)."""

    on = False
    thread = 0
    sent: list[str] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        # Events are published on the thread that sends the command: a thread left
        # running by an earlier test, writing through the same settings, is not counted.
        if (Commands.on and threading.get_ident() == Commands.thread and self.asked(event)
                and event.database_name.startswith(f"binder_test_{RUN_ID}_rt_")):
            Commands.sent.append(event.command_name)


pymongo.monitoring.register(Commands())


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, services: None) -> Iterator[Config]:
    """A store of this test's own, on a client made after the listener."""
    set_config(None)
    config = get_config().replace(mongo_db=f"binder_test_{RUN_ID}_rt_{uuid.uuid4().hex[:6]}")
    set_config(config)
    fresh_client(monkeypatch)
    try:
        yield config
    finally:
        Commands.on = False
        db.get_client(config).drop_database(config.mongo_db)
        set_config(None)


def running_build() -> str:
    """A build whose fetch phase ``WORKER`` runs."""
    record = build_store.create_build(f"rt-{uuid.uuid4().hex[:6]}", {})
    build_store.start_phase(record["build_id"], 1, Phase.FETCHING, Phase.QUEUED, WORKER, HOST)
    return record["build_id"]


def counted(write: Any) -> tuple[Any, list[str]]:
    Commands.sent.clear()
    Commands.thread = threading.get_ident()
    Commands.on = True
    try:
        return write(), list(Commands.sent)
    finally:
        Commands.on = False


def test_a_heartbeat_of_a_running_build_is_one_update(config: Config) -> None:
    build_id = running_build()
    cancelled, sent = counted(lambda: build_store.heartbeat(build_id, 1))
    assert (cancelled, sent) == (False, ["update"])
    stored = build_store.find_by_id(build_id)
    assert stored is not None and stored["heartbeat"] is not None


def test_a_heartbeat_still_learns_of_a_cancel_and_of_a_lost_lease(config: Config) -> None:
    build_id = running_build()
    db.builds().update_one({"build_id": build_id}, {"$set": {"cancel_requested": True}})
    assert build_store.heartbeat(build_id, 1) is True
    build_store.finish(build_id, 1, Status.CANCELLED, "Cancelled by request.")
    with pytest.raises(LeaseLost):
        build_store.heartbeat(build_id, 1)


def test_a_phase_ends_in_one_update(config: Config) -> None:
    build_id = running_build()
    _, sent = counted(lambda: build_store.end_phase(build_id, 1, Phase.FETCHING, WORKER,
                                                    {"broker_epoch": "e1"}))
    assert sent == ["update"]
    stored = build_store.find_by_id(build_id)
    assert stored is not None and stored["lease"]["worker"] is None
    assert (stored["broker_epoch"], stored["lease"]["handed_by"]) == ("e1", WORKER)
    # The next phase's claim takes it, as it took one ended the old way.
    claimed = build_store.start_phase(build_id, 1, Phase.DETECTING, Phase.FETCHING,
                                      WORKER, HOST)
    assert claimed["phase"] == Phase.DETECTING.value


def test_a_cancelled_build_s_phase_ends_without_handing_it_on(config: Config) -> None:
    build_id = running_build()
    db.builds().update_one({"build_id": build_id}, {"$set": {"cancel_requested": True}})
    with pytest.raises(BuildCancelled):
        build_store.end_phase(build_id, 1, Phase.FETCHING, WORKER, {"broker_epoch": "e1"})
    stored = build_store.find_by_id(build_id)
    assert stored is not None and stored["lease"]["worker"] == WORKER
    assert "end" not in stored["phases"]["fetching"] and "broker_epoch" not in stored


def test_a_change_nobody_reads_back_is_one_update_and_refused_once_ended(
        config: Config) -> None:
    build_id = running_build()
    _, sent = counted(lambda: build_store.set_running(build_id, 1, {"unverified_image": "i"}))
    assert sent == ["update"]
    stored = build_store.find_by_id(build_id)
    assert stored is not None and stored["unverified_image"] == "i"
    build_store.finish(build_id, 1, Status.FAILED, "It failed.")
    with pytest.raises(LeaseLost):
        build_store.set_running(build_id, 1, {"unverified_image": None})
    with pytest.raises(LeaseLost):
        build_store.end_phase(build_id, 1, Phase.FETCHING, WORKER, {})


def test_a_template_is_saved_without_reading_it_back(config: Config) -> None:
    """One upsert (and the tally's count of a new name): nobody reads what it saved."""
    template: Any = {"name": f"rt-{uuid.uuid4().hex[:6]}", "image_name": "reg/rt:1"}
    _, sent = counted(lambda: template_store.save_template(template))
    assert sent == ["update", "update"]
    _, sent = counted(lambda: template_store.save_template({**template, "port": 9000}))
    assert sent == ["update"]
    saved = template_store.get_template(template["name"])
    assert (saved["image_name"], saved["port"]) == ("reg/rt:1", 9000)


def test_a_build_ends_in_one_update(config: Config) -> None:
    build_id = running_build()
    ended, sent = counted(lambda: build_store.finish(build_id, 1, Status.COMPLETED, None,
                                                     {"image_source": "reg/rt:1"}))
    assert (ended, sent) == (True, ["update"])
    stored = build_store.find_by_id(build_id)
    assert stored is not None
    assert (stored["status"], stored["phase"], stored["image_source"]) == (
        "completed", "finished", "reg/rt:1")
    assert build_store.finish(build_id, 1, Status.FAILED, "Too late.") is False


def test_a_start_of_a_name_without_a_record_is_one_insert_that_a_race_refuses(
        config: Config) -> None:
    """A start that found no record of its name (``check_startable``) stores its own
    without reading again; a record stored meanwhile still wins, never replaced."""
    running_build()  # the store's indexes
    name, fields = f"rt-{uuid.uuid4().hex[:6]}", {"repository": "https://h/o/r", "ref": None}
    record, sent = counted(lambda: build_store.create_build(name, fields, absent=True))
    assert sent == ["insert"]
    with pytest.raises(AlreadyBuilding):
        build_store.create_build(name, fields, absent=True)
    stored = build_store.current_record(name)
    assert stored is not None and stored["build_id"] == record["build_id"]
