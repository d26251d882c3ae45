"""A phase that hands its build on asks the store once as it ends: the end itself
refuses a cancelled build, so no heartbeat goes before it. The last phase, which ends
the build completed, still asks whether a cancel came first."""

from __future__ import annotations

from typing import Any

import pytest

from common import build_store
from common.errors import BuildCancelled
from common.models import Phase, Status
from tests.support.log_stores import KeptLogs, logs
from tests.unit.test_farm_log_lines import CONFIG, running
from workers import phase_runner
from workers.outages import OutageWait
from workers.phase_runner import Outcome, PhaseResult

__all__ = ["logs"]  # the fixture, used by name


class Store:
    """What the phase runner asks of the store; ``cancelled``: a cancel was requested."""

    def __init__(self, cancelled: bool = False) -> None:
        self.cancelled = cancelled
        self.asked: list[str] = []
        self.finished: list[Status] = []

    def heartbeat(self, build_id: str, attempt: int) -> bool:
        self.asked.append("heartbeat")
        return self.cancelled

    def end_phase(self, build_id: str, attempt: int, phase: Phase, worker: str,
                  changes: dict[str, Any]) -> None:
        self.asked.append("end_phase")
        if self.cancelled:
            raise BuildCancelled(build_id)

    def finish(self, build_id: str, attempt: int, status: Status, *rest: Any) -> bool:
        self.asked.append("finish")
        self.finished.append(status)
        return True


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store()
    for name in ("heartbeat", "end_phase", "finish"):
        monkeypatch.setattr(build_store, name, getattr(store, name))
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    return store


def run(result: PhaseResult) -> Outcome:
    # A guard interval longer than any test: only the runner's own asks are counted.
    config = CONFIG.replace(heartbeat_interval=600)
    return phase_runner._run_claimed(config, running(), Phase.BUILDING,
                                     lambda phase: result, OutageWait(config))


def test_a_phase_handing_the_build_on_asks_the_store_once(store: Store, logs: KeptLogs) -> None:
    assert run(PhaseResult()) is Outcome.CONTINUE
    assert store.asked == ["end_phase"]


def test_a_cancel_found_as_the_phase_ends_ends_the_build_cancelled(
        store: Store, logs: KeptLogs) -> None:
    store.cancelled = True
    assert run(PhaseResult()) is Outcome.DONE
    assert store.asked == ["end_phase", "finish"]
    assert store.finished == [Status.CANCELLED]
    assert logs.lines()[-1] == "== build cancelled: Cancelled by request."


def test_the_last_phase_asks_whether_a_cancel_came_before_it_completes(
        store: Store, logs: KeptLogs) -> None:
    assert run(PhaseResult(complete=True)) is Outcome.DONE
    assert (store.asked, store.finished) == (["heartbeat", "finish"], [Status.COMPLETED])
    store.asked.clear()
    store.cancelled = True
    assert run(PhaseResult(complete=True)) is Outcome.DONE
    assert store.finished[-1] is Status.CANCELLED
