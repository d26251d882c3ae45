"""What a worker does when MongoDB freezes as it claims a phase or ends a build.

The store is a Mongo wire server of this module's own (frozen with SIGSTOP, as
a hung server is: it accepts connections and answers nothing), never the
shared one; a broker away is a loopback port nothing listens on. No worker
runs: the test plays the worker's writes itself.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import build_store
from common.config import Config, get_config, set_config
from common.errors import NoDatabase
from common.models import Phase, Status
from tests.support.farm import free_port
from tests.support.services import MongoInstance
from workers import liveness, phase_runner
from workers.dispatch import broker_epoch
from workers.outages import OutageWait

HOST = "outage-a"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[MongoInstance, Config]]:
    """A store of this test's own, with a short wait for it (one second) and a short
    bound on each of its operations."""
    mongo = MongoInstance(tmp_path / "mongo").start()
    set_config(None)
    config = get_config().replace(mongo_url=mongo.url, mongo_db="outages", service_wait=1,
                                  mongo_timeout_ms=500)
    set_config(config)
    try:
        yield mongo, config
    finally:
        mongo.stop()
        set_config(None)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.CANCELLED])
def test_a_build_whose_end_meets_the_store_frozen_past_the_wait_ends_as_it_ended(
        store: tuple[MongoInstance, Config], status: Status) -> None:
    """The store freezes for several times ``BINDER_SERVICE_WAIT`` as the worker writes
    that the build completed (or, cancelled, stopped): once it answers again the build
    is recorded so, in its first attempt; it is not given back to be built again from
    its start."""
    mongo, config = store
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    build_id = record["build_id"]
    claimed = build_store.start_phase(build_id, 1, Phase.FETCHING, Phase.QUEUED,
                                      liveness.worker_name(config), HOST)
    mongo.freeze()
    thaw = threading.Timer(4 * config.service_wait, mongo.thaw)
    thaw.start()
    try:
        outcome = phase_runner._end(config, claimed, status, OutageWait(config), None)
    finally:
        thaw.join()
        mongo.thaw()
    assert outcome is phase_runner.Outcome.DONE
    stored = build_store.find_by_id(build_id)
    assert stored is not None
    assert (stored["status"], stored["attempt"], stored["lease"]) == (status.value, 1, None)


def frozen_claim(mongo: MongoInstance, config: Config, thaw_after: float) -> None:
    """Claim the fetch of a new build with the store frozen for ``thaw_after`` seconds
    (it raises what the claim raises)."""
    record = build_store.create_build(f"o-r-{uuid.uuid4().hex[:6]}", {})
    mongo.freeze()
    thaw = threading.Timer(thaw_after, mongo.thaw)
    thaw.start()
    try:
        claimed = phase_runner.claim(record["build_id"], 1, Phase.FETCHING, config)
    finally:
        thaw.join()
        mongo.thaw()
    assert claimed["lease"]["worker"] == liveness.worker_name(config)
    # The tries the frozen store took at once when it thawed count one delivery: no
    # death of a worker process is made up by the outage.
    stored = build_store.find_by_id(record["build_id"])
    assert stored is not None and build_store.phase_deaths(stored, Phase.FETCHING) == 0


def test_a_claim_holds_its_message_while_the_store_and_the_broker_are_both_away(
        store: tuple[MongoInstance, Config]) -> None:
    """The task's retry could not be sent to a broker that is away: the claim waits
    on past ``BINDER_SERVICE_WAIT`` and takes the build once the store is back."""
    mongo, config = store
    no_broker = config.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert broker_epoch(no_broker) is None
    frozen_claim(mongo, no_broker, 4 * config.service_wait)


def test_a_claim_leaves_its_message_to_the_tasks_retry_while_the_broker_answers(
        store: tuple[MongoInstance, Config]) -> None:
    mongo, config = store
    assert broker_epoch(config) is not None
    with pytest.raises(NoDatabase):
        frozen_claim(mongo, config, 4 * config.service_wait)
