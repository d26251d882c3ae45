"""A worker that can send neither a build's next phase (the broker is away) nor its
restart (MongoDB is away too) does not leave the build looking handed on.

Such a build waited ``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT`` for the
reaper; the worker's record now lists it as one it could not send on, and the
reaper sends its next phase once the services are back.
"""

from __future__ import annotations

from typing import Any

import pytest
from kombu.exceptions import OperationalError

from common import build_store
from common.clock import utcnow
from common.config import get_config, load_config
from common.errors import NoDatabase
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
    clock = [0.0]
    monkeypatch.setattr(phase_runner.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(phase_runner.time, "sleep",
                        lambda seconds: clock.__setitem__(0, clock[0] + seconds))
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
