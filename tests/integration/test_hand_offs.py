"""A build between two phases is never left waiting for a message nobody sent.

The store is the shared Mongo wire server (a database of this module's own) and
the broker the shared Redis (keys under a prefix of this module's own); no
worker runs: each test plays a worker's writes itself and reads what reaches
the queues.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common import build_store, leases, log_store, worker_store
from common.clock import utcnow
from common.config import Config, get_config, set_config
from common.db import get_client
from common.errors import LeaseLost
from common.models import Phase
from common.redis_client import redis_client
from tests.integration.conftest import RUN_ID
from workers import liveness, phase_runner, reaper, store_watch
from workers.celery_app import create_celery
from workers.dispatch import broker_epoch
from workers.stopping import WorkerStopping

HOST = "handoff-a"
DEAD = f"{HOST}@box:7"
ALIVE = f"{HOST}@box:8"


@pytest.fixture
def config() -> Iterator[Config]:
    """The farm's settings with a store and broker keys of this test's own, and a
    silence window of one second."""
    run = uuid.uuid4().hex[:6]
    set_config(None)
    config = get_config().replace(mongo_db=f"binder_test_{RUN_ID}_handoff_{run}",
                                  broker_prefix=f"test-{RUN_ID}-handoff-{run}:",
                                  heartbeat_stale=1)
    set_config(config)
    try:
        yield config
    finally:
        broker = redis_client(config)
        store = get_client(config)[config.mongo_db]
        for record in store.builds.find({}, {"build_id": 1}):
            broker.delete(log_store.stream_key(record["build_id"]))
        for key in broker.scan_iter(f"{config.broker_prefix}*"):
            broker.delete(key)
        get_client(config).drop_database(config.mongo_db)
        set_config(None)


def worker(name: str, builds: list[str], seen: dt.datetime) -> None:
    node, _, pid = name.rpartition(":")
    worker_store.write(worker_store.WorkerRecord(
        worker=name, node=node, host=HOST, hostname="box", pid=int(pid), state="up",
        started=seen, last_seen=seen, builds=builds))


def sent_tasks(config: Config, queue: str) -> list[tuple[str, list[Any]]]:
    """The tasks waiting in ``queue``: (task name, arguments)."""
    broker = redis_client(config)
    messages = [json.loads(raw) for raw in broker.lrange(f"{config.broker_prefix}{queue}", 0, -1)]
    return [(message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[0])
            for message in messages]


def ended_detect_on_a_worker_killed_then(config: Config) -> dict[str, Any]:
    """A build whose detect phase ``DEAD`` ended, and which it still held (its record
    says so) when it was killed, before it sent the build phase."""
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, DEAD, HOST)
    build_store.end_phase(build_id, 1, Phase.FETCHING, DEAD, {})
    build_store.start_phase(build_id, 1, Phase.DETECTING, Phase.FETCHING, DEAD, HOST)
    build_store.end_phase(build_id, 1, Phase.DETECTING, DEAD, {})
    worker(DEAD, [build_id], utcnow())
    return dict(record)


def test_a_next_phase_its_worker_died_before_sending_is_sent_once_soon(
        config: Config) -> None:
    record = ended_detect_on_a_worker_killed_then(config)
    celery = create_celery(config)
    watch = reaper.StoreWatch(config)
    watch.back_since = utcnow() - dt.timedelta(hours=1)
    worker(ALIVE, [], utcnow())
    assert reaper.reap(celery, config, watch)["resent"] == 0  # just heard from
    time.sleep(1.5)
    worker(ALIVE, [], utcnow())
    assert reaper.reap(celery, config, watch)["resent"] == 1
    time.sleep(1.5)
    worker(ALIVE, [], utcnow())
    assert reaper.reap(celery, config, watch)["resent"] == 0  # it waits in the queue now
    assert sent_tasks(config, f"host.{HOST}") == [("binder.build", [record["build_id"], 1])]
    stored = build_store.find_by_id(record["build_id"])
    assert stored is not None
    # The same attempt goes on: nothing it did is lost, and the build phase is claimed
    # as any hand-off's.
    assert (stored["attempt"], stored["phase"], stored["status"]) == (1, "detecting", "running")
    said = [line for _, line in log_store.read_lines(record["build_id"])]
    assert said == [f"== build sent by the farm: the worker {DEAD} that ended detecting "
                    "died handing it on"]
    claimed = build_store.start_phase(record["build_id"], 1, Phase.BUILDING, Phase.DETECTING,
                                      ALIVE, HOST)
    assert claimed["lease"]["worker"] == ALIVE


def test_a_phase_handed_back_names_the_broker_its_message_goes_back_to(
        config: Config) -> None:
    """A stopping worker hands its phase back and its message goes back to the broker
    of now: one that restarted while the phase ran (the record names the one before)
    holds it, so the build is not started again as if the broker had lost it."""
    me = liveness.worker_name(config)
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, me, HOST)
    claimed = build_store.update_running(build_id, 1, {"broker_epoch": "before-a-restart"})
    outcome = phase_runner._hand_back(config, claimed, WorkerStopping(), None)
    assert outcome is phase_runner.Outcome.HANDED_BACK
    stored = build_store.find_by_id(build_id)
    assert stored is not None and stored["lease"]["released"] == "fetching"
    now = broker_epoch(config)
    assert now is not None and stored["broker_epoch"] == now
    assert reaper.verdict(stored, {}, {HOST}, now, utcnow(), config, utcnow()) is None


def test_a_cancelled_build_given_back_ends_cancelled_not_started_again(
        config: Config) -> None:
    """Its worker could not send its next phase and gives it back: a cancel asked
    meanwhile ends it, rather than start it again only for its fetch to end it."""
    record = ended_detect_on_a_worker_killed_then(config)
    build_id = record["build_id"]
    flagged = build_store.update_running(build_id, 1, {"cancel_requested": True})
    assert leases.restart(flagged, "its next phase could not be sent (down)", config) is None
    stored = build_store.find_by_id(build_id)
    assert stored is not None
    assert (stored["status"], stored["attempt"], stored["error"]) == \
        ("cancelled", 1, "Cancelled by request.")


def test_a_claim_retried_on_another_process_takes_the_phase_its_first_try_claimed(
        config: Config) -> None:
    """The first try's claim landed but its answer was lost (the store stopped
    answering): Celery retries the task, maybe on another process, which takes the
    phase on as the same delivery, not leave it to the reaper to start again as a
    build its first process let go. A second delivery of the same try (its process
    died, or runs it still) is no retry and takes nothing from a live process."""
    first = f"{HOST}@elsewhere:1"
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, first, HOST,
                            task=build_store.TaskTry("t1", 0))
    with pytest.raises(LeaseLost):
        phase_runner.claim(build_id, 1, Phase.FETCHING, config, build_store.TaskTry("t1", 0))
    claimed = phase_runner.claim(build_id, 1, Phase.FETCHING, config,
                                 build_store.TaskTry("t1", 1))
    assert claimed["lease"]["worker"] == liveness.worker_name(config)
    assert (claimed["attempt"], build_store.phase_deaths(claimed, Phase.FETCHING)) == (1, 0)


def test_a_next_phase_its_live_worker_could_not_send_nor_restart_is_sent_at_once(
        config: Config) -> None:
    """The worker that ended detect could reach neither the broker to send the build
    phase nor MongoDB to start the build again: alive, its record lists the build as
    one it could not send on, and the reaper's first pass sends the phase (not one
    after ``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT``)."""
    me = liveness.worker_name(config)
    beat = liveness.Heartbeat(config)  # this process's record, written by the test
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    beat.hold(build_id)
    build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, me, HOST)
    build_store.end_phase(build_id, 1, Phase.FETCHING, me, {})
    build_store.start_phase(build_id, 1, Phase.DETECTING, Phase.FETCHING, me, HOST)
    build_store.end_phase(build_id, 1, Phase.DETECTING, me, {})
    beat.could_not_send(build_id)
    beat.write()  # once MongoDB is back
    worker(ALIVE, [], utcnow())
    watch = reaper.StoreWatch(config)
    watch.back_since = utcnow() - dt.timedelta(hours=1)
    assert reaper.reap(create_celery(config), config, watch)["resent"] == 1
    assert sent_tasks(config, f"host.{HOST}") == [("binder.build", [build_id, 1])]
    said = [line for _, line in log_store.read_lines(build_id)]
    assert said == [f"== build sent by the farm: the worker {me} that ended detecting "
                    "could not send it on"]


def test_a_restarted_beat_goes_on_from_the_watch_kept_in_the_store(config: Config) -> None:
    """What the store keeps of the reaper's watch reads back as the next run needs it
    (a moment the store stores to the millisecond, with its time zone)."""
    kept = store_watch.KeptInStore(config)
    first = reaper.StoreWatch(config, kept)
    first.back_since = utcnow() - dt.timedelta(hours=1)
    first.succeeded(utcnow())
    seen = utcnow().replace(microsecond=0)
    record = {"worker": "a.b@box.lan:7", "state": "up", "last_seen": seen}
    first.heard({record["worker"]: record}, seen)  # type: ignore[dict-item]
    first.keep(utcnow())
    second = reaper.StoreWatch(config, kept)
    second.resume(utcnow())
    assert abs(second.back_since - first.back_since) < dt.timedelta(milliseconds=1)
    # A worker's name holds dots: its read comes back all the same.
    assert second.heard({record["worker"]: record}, utcnow()) == {  # type: ignore[dict-item]
        record["worker"]: seen}


def phase_writing(config: Config, claimed: dict[str, Any], line: str) -> int:
    """Write ``line`` to the log as a phase that claimed ``claimed`` does; its number."""
    writer = log_store.BuildLogWriter(claimed["build_id"], config,
                                      build_store.carried_log_end(claimed))  # type: ignore[arg-type]
    writer.write(line)
    writer.close()
    return writer.last_line


def test_the_next_phase_numbers_its_log_on_from_the_end_the_one_before_left(
        config: Config) -> None:
    """The phase that hands the build on says where the log ends, so the next one asks
    neither store; any claim but a phase's first (taken over from a dead process) and a
    line the farm wrote between phases send it to the stores again."""
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    fetch = build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED, DEAD, HOST)
    assert build_store.carried_log_end(fetch) is None
    assert phase_writing(config, dict(fetch), "fetched") == 1
    build_store.end_phase(build_id, 1, Phase.FETCHING, DEAD, build_store.log_end(1, 1))
    detect = build_store.start_phase(build_id, 1, Phase.DETECTING, Phase.FETCHING, DEAD, HOST)
    assert build_store.carried_log_end(detect) == 1
    assert phase_writing(config, dict(detect), "detected, then died") == 2
    taken = build_store.start_phase(build_id, 1, Phase.DETECTING, Phase.FETCHING, ALIVE, HOST,
                                    replacing=DEAD)
    assert build_store.carried_log_end(taken) is None
    assert phase_writing(config, dict(taken), "detected") == 3
    build_store.end_phase(build_id, 1, Phase.DETECTING, ALIVE, build_store.log_end(1, 3))
    ended = build_store.find_by_id(build_id)
    assert ended is not None and build_store.carried_log_end(ended) == 3
    assert leases.note_sent_again(ended, "build", None, "it died", config) is not None
    build = build_store.start_phase(build_id, 1, Phase.BUILDING, Phase.DETECTING, ALIVE, HOST)
    assert build_store.carried_log_end(build) is None
    assert phase_writing(config, dict(build), "built") == 5
    assert [seq for seq, _ in log_store.read_lines(build_id)] == [1, 2, 3, 4, 5]
