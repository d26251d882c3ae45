"""A build whose worker loses the broker and MongoDB at once, around a hand-off, is
not left to the reaper's backstop (``BINDER_HEARTBEAT_STALE`` +
``BINDER_BUILD_TIMEOUT``).

A worker that can send neither a build's next phase nor its restart lists the build
as one it could not send on, and the reaper sends its next phase once the services
are back; a phase task that cannot claim its build waits for MongoDB while it holds
its message, rather than hand it to a broker that may be away too.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from common import build_store
from common.clock import utcnow
from common.config import get_config, load_config
from common.errors import NoDatabase
from common.models import STEPS, Phase
from tests.support.outage_clock import outage_clock
from tests.unit.test_farm_log_lines import running
from workers import liveness, phase_runner
from workers.outages import OutageWait
from workers.phase_runner import Outcome

CONFIG = load_config(environ={}, service_wait=5)


def down(*args: object) -> Any:
    raise NoDatabase("The build database (MongoDB) cannot be reached.")


def handed_on() -> dict[str, Any]:
    return running(lease={"worker": None, "host": "a", "attempt": 1, "since": utcnow(),
                          "handed_by": liveness.worker_name(), "handed_at": utcnow()})


@pytest.mark.parametrize("store_fails", ["reading the build", "writing its restart"])
def test_a_build_neither_sent_on_nor_restarted_is_listed_as_unsent(
        monkeypatch: pytest.MonkeyPatch, store_fails: str) -> None:
    outage_clock(monkeypatch, start=0.0)  # the waits pass at once
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    beat = liveness.Heartbeat(get_config())  # this process's record, not written here
    monkeypatch.setattr(liveness, "_heartbeat", beat)
    record = handed_on()
    if store_fails == "reading the build":
        monkeypatch.setattr(build_store, "find_by_id", down)
    else:
        monkeypatch.setattr(build_store, "find_by_id", lambda build_id: record)
        monkeypatch.setattr(phase_runner.leases, "restart", down)

    def send(sent: object) -> None:
        raise OperationalError("the broker is away")
    with liveness.holding("b1"):
        outcome = phase_runner._hand_on(CONFIG, record, send,  # type: ignore[arg-type]
                                        lambda restarted: None, OutageWait(CONFIG))
        written = beat.record()
    assert outcome is Outcome.DROPPED
    # Not held (a held build is left alone), yet not handed on: the reaper sends it.
    assert written["builds"] == []
    assert written.get("unsent") == ["b1"]


def test_a_build_taken_again_is_no_longer_listed_as_unsent() -> None:
    beat = liveness.Heartbeat(get_config())
    beat.hold("b1")
    beat.could_not_send("b1")
    assert (beat.record()["builds"], beat.record().get("unsent")) == ([], ["b1"])
    beat.hold("b1")  # its next phase came here after all
    assert (beat.record()["builds"], beat.record().get("unsent")) == (["b1"], [])


class FlakyStore:
    """``start_phase`` that fails ``down`` times (MongoDB away) before the claim lands."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.tries = 0

    def start_phase(self, build_id: str, *args: object, **kwargs: object) -> dict[str, Any]:
        self.tries += 1
        if self.tries <= self.down:
            raise NoDatabase("The build database (MongoDB) cannot be reached.")
        return handed_on()


def test_a_claim_waits_for_mongodb_rather_than_leave_its_message_to_the_broker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A phase task that cannot claim its build was sent again through the broker
    (Celery's retry): a broker away as well (the worker's host cut off for a moment)
    lost the message, and the build waited for the reaper's backstop. The claim waits
    for MongoDB while the task still holds its message, up to ``BINDER_SERVICE_WAIT``."""
    clock = outage_clock(monkeypatch, start=0.0)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: "e1")
    store = FlakyStore(down=3)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    record = phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert record["build_id"] == "b1" and store.tries == 4
    assert 0 < clock.now < CONFIG.service_wait
    # Past the wait, the task's retry takes over, as before.
    store = FlakyStore(down=10**6)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    clock.now = 0.0
    with pytest.raises(NoDatabase):
        phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert CONFIG.service_wait <= clock.now < CONFIG.service_wait + 5


def test_a_stopping_worker_does_not_wait_to_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is killed soon after: its task goes back to the broker at once instead, as
    a retry while the broker answers."""
    from workers import stopping
    monkeypatch.setattr(stopping, "_requested", True)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: "e1")
    store = FlakyStore(down=1)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    monkeypatch.setattr(phase_runner.time, "sleep", lambda seconds: None)
    with pytest.raises(NoDatabase):
        phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert store.tries == 1


def test_a_stopping_worker_hands_its_message_back_while_the_broker_is_away_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry could not be sent (Celery would drop the message it holds): the phase
    is handed back as a stopping worker's is, its message left to go back to its
    queue, and nothing of the build is written or run."""
    from workers import stopping
    monkeypatch.setattr(stopping, "_requested", True)
    # Not the real one: past a hand-back it ends this process (``os._exit``).
    monkeypatch.setattr(stopping, "phase_running", contextlib.nullcontext)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    store = FlakyStore(down=1)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    monkeypatch.setattr(phase_runner.time, "sleep", lambda seconds: None)
    ran: list[object] = []
    outcome = phase_runner.run_phase(CONFIG, STEPS[1], "b1", 1,
                                     lambda phase: ran.append(phase))  # type: ignore[arg-type,return-value]
    assert outcome is Outcome.HANDED_BACK
    assert store.tries == 1 and ran == []


def test_a_claim_tries_every_second_for_the_bound_and_warns_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """How a claim waits for MongoDB, try by try: at once, then every second, the last
    try at ``BINDER_SERVICE_WAIT``, one warning in all; then ``NoDatabase``, which the
    task's retry takes."""
    clock = outage_clock(monkeypatch, start=0.0)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: "e1")
    tried_at: list[float] = []
    store = FlakyStore(down=10**6)

    def start_phase(*args: object, **kwargs: object) -> dict[str, Any]:
        tried_at.append(clock.now)
        return store.start_phase(*args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(build_store, "start_phase", start_phase)
    with caplog.at_level("WARNING"), pytest.raises(NoDatabase):
        phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert tried_at == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    warnings = [record.getMessage() for record in caplog.records
                if record.levelname == "WARNING" and record.name == "workers.outages"]
    assert len(warnings) == 1 and "does not answer" in warnings[0]
    assert "detecting" in warnings[0] and "b1" in warnings[0]


def test_a_claim_keeps_its_message_while_the_broker_is_away_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound, the task's retry would be a new message to the broker; with the
    broker away as well it cannot be sent, and Celery drops the message it holds (a
    retry it cannot send is a reject without requeue): the build waited for the
    reaper's backstop. The claim waits on while the broker is away, holding the
    message, and takes the build once MongoDB is back."""
    clock = outage_clock(monkeypatch, start=0.0)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    store = FlakyStore(down=3 * CONFIG.service_wait)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    record = phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert record["build_id"] == "b1"
    assert clock.now >= 3 * CONFIG.service_wait


def test_a_claim_past_the_bound_gives_the_message_to_the_retry_once_the_broker_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = outage_clock(monkeypatch, start=0.0)
    broker_back_at = 2 * CONFIG.service_wait + 1
    monkeypatch.setattr(phase_runner, "broker_epoch",
                        lambda config: "e1" if clock.now >= broker_back_at else None)
    store = FlakyStore(down=10**6)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    with pytest.raises(NoDatabase):
        phase_runner.claim("b1", 1, Phase.DETECTING, CONFIG)
    assert broker_back_at <= clock.now <= broker_back_at + CONFIG.service_wait
