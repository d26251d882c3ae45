"""The write that ends a build (its final status and record) waits for MongoDB past
``BINDER_SERVICE_WAIT``: a build that finished is recorded as finished once the store
is back, not given back and built again from scratch. A worker asked to stop gives
it back, as before (it is killed soon after)."""

from __future__ import annotations

from typing import Any

import pytest

from common import build_store
from common.config import load_config
from common.errors import NoDatabase
from common.models import FailureCause, Status
from tests.support.outage_clock import Clock, outage_clock
from tests.unit.test_farm_log_lines import running
from workers import phase_runner, stopping
from workers.outages import OutageWait
from workers.phase_runner import Outcome

CONFIG = load_config(environ={}, service_wait=5)


class DownFor:
    """``build_store.finish`` while MongoDB is away for ``seconds`` of ``clock``."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.until = clock, clock.now + seconds
        self.landed: list[Status] = []

    def finish(self, build_id: str, attempt: int, status: Status, error: str | None = None,
               changes: dict[str, Any] | None = None, suggestions: list[str] | None = None,
               cause: FailureCause | None = None) -> dict[str, Any]:
        if self.clock.now < self.until:
            raise NoDatabase("The build database (MongoDB) cannot be reached.")
        self.landed.append(status)
        return running(status=status.value)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return outage_clock(monkeypatch)


@pytest.fixture
def let_go(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    given_back: list[str] = []
    monkeypatch.setattr(phase_runner.liveness, "let_go", given_back.append)
    return given_back


@pytest.fixture(autouse=True)
def ended(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The builds this process stopped holding as they ended (no record is written)."""
    builds: list[str] = []
    monkeypatch.setattr(phase_runner.liveness, "ended", builds.append)
    return builds


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_a_build_that_ended_is_recorded_so_once_the_store_is_back(
        clock: Clock, let_go: list[str], ended: list[str], monkeypatch: pytest.MonkeyPatch,
        status: Status) -> None:
    store = DownFor(clock, CONFIG.service_wait * 4)
    monkeypatch.setattr(build_store, "finish", store.finish)
    cause = FailureCause.REPOSITORY if status is Status.FAILED else None
    outcome = phase_runner._end(CONFIG, running(), status, OutageWait(CONFIG), None,
                                cause=cause)
    assert outcome is Outcome.DONE
    assert store.landed == [status] and let_go == []
    assert ended == ["b1"]  # its worker's record drops it with its next write
    assert clock.now >= store.until


def test_a_stopping_worker_gives_back_a_build_it_cannot_end(
        clock: Clock, let_go: list[str], ended: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It waits the bound, as before, but not past it: it is killed soon."""
    store = DownFor(clock, CONFIG.service_wait * 4)
    monkeypatch.setattr(build_store, "finish", store.finish)
    monkeypatch.setattr(stopping, "_requested", True)
    started = clock.now
    outcome = phase_runner._end(CONFIG, running(), Status.COMPLETED, OutageWait(CONFIG), None)
    assert outcome is Outcome.DROPPED
    assert store.landed == [] and let_go == ["b1"] and ended == []
    assert clock.now - started == CONFIG.service_wait


class FullLog:
    """A build's log whose store has been away so long that its queue is full: a
    write raises ``NoDatabase`` (``BuildLogWriter.write``)."""

    build_id = "b1"

    def write(self, line: str) -> None:
        raise NoDatabase("the build's log could not be stored for 5 s and 64 MiB of it waits")

    def flush(self) -> None:
        raise NoDatabase("down")


def test_a_build_whose_log_cannot_take_its_end_line_still_ends(
        clock: Clock, let_go: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The end line is lost with the log's store; the build's end is not."""
    store = DownFor(clock, 0)
    monkeypatch.setattr(build_store, "finish", store.finish)
    outcome = phase_runner._end(CONFIG, running(), Status.CANCELLED, OutageWait(CONFIG),
                                "Cancelled by request.", writer=FullLog())  # type: ignore[arg-type]
    assert outcome is Outcome.DONE
    assert store.landed == [Status.CANCELLED] and let_go == []


def test_a_stopping_worker_whose_log_cannot_take_the_line_still_hands_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[str] = []
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    monkeypatch.setattr(build_store, "release_phase",
                        lambda build_id, *args: released.append(build_id))
    outcome = phase_runner._hand_back(CONFIG, running(), stopping.WorkerStopping(),
                                      FullLog())  # type: ignore[arg-type]
    assert outcome is Outcome.HANDED_BACK and released == ["b1"]
