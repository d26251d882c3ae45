"""A build is not failed, nor left held, because MongoDB answered a write of its
phase's life other than the claim with an error (``BadDatabase``): the phase's end
and the build's end are tried again a few times, a second apart; a phase end still
refused fails the build as the farm's fault, a build end still refused gives the
build back; a refused hand-back still hands the message back, and a refused note of
the broker's epoch does not fail a hand-on the broker took, nor a refused read a
stale phase's drop. A write inside the phase that is refused runs the phase again.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from common import build_store
from common.errors import BadDatabase, LeaseLost
from common.models import STEPS, FailureCause, Phase, Status
from tests.support.log_stores import KeptLogs, logs, use_log_stores
from tests.unit.test_claim_errors import pauses, refused
from tests.unit.test_farm_log_lines import CONFIG, running
from tests.unit.test_phase_end import Store
from workers import phase_runner, store_errors
from workers.outages import OutageWait
from workers.phase_runner import PHASE_RUNS, Outcome, PhaseResult, _run_function
from workers.stopping import WorkerStopping

__all__ = ["logs", "pauses"]  # the fixtures, used by name


class RefusedEnd(Store):
    """A store that refuses ``end_phase`` ``refusals`` times, and ``finish`` if told."""

    def __init__(self, refusals: int, refuse_finish: bool = False) -> None:
        super().__init__()
        self.refusals = refusals
        self.refuse_finish = refuse_finish

    def end_phase(self, *args: Any) -> None:
        self.asked.append("end_phase")
        if self.asked.count("end_phase") <= self.refusals:
            refused()

    def finish(self, build_id: str, attempt: int, status: Status, *rest: Any) -> bool:
        if self.refuse_finish:
            self.asked.append("finish")
            refused()
        self.causes = rest
        return super().finish(build_id, attempt, status, *rest)


def run_building(monkeypatch: pytest.MonkeyPatch, store: RefusedEnd) -> Outcome:
    for name in ("heartbeat", "end_phase", "finish"):
        monkeypatch.setattr(build_store, name, getattr(store, name))
    config = CONFIG.replace(heartbeat_interval=600)
    return phase_runner._run_claimed(config, running(), Phase.BUILDING,
                                     lambda phase: PhaseResult(), OutageWait(config))


def test_a_phase_end_refused_for_a_moment_hands_the_build_on(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], logs: KeptLogs) -> None:
    store = RefusedEnd(refusals=1)
    assert run_building(monkeypatch, store) is Outcome.CONTINUE
    assert store.asked == ["end_phase", "end_phase"] and store.finished == []


def test_a_phase_end_always_refused_fails_the_build_as_the_farms_fault(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], logs: KeptLogs) -> None:
    store = RefusedEnd(refusals=10**6)
    assert run_building(monkeypatch, store) is Outcome.DONE
    assert store.asked.count("end_phase") == store_errors.ERROR_TRIES
    assert store.finished == [Status.FAILED]
    assert FailureCause.FARM in store.causes


def test_a_build_end_always_refused_gives_the_build_back(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], logs: KeptLogs) -> None:
    """Given back, the reaper starts it again at its next pass (its worker let it go),
    rather than the error leaving the task with the build still shown held."""
    store = RefusedEnd(refusals=10**6, refuse_finish=True)
    assert run_building(monkeypatch, store) is Outcome.DROPPED
    assert store.asked.count("finish") == store_errors.ERROR_TRIES


def test_a_refused_hand_back_still_hands_the_message_back(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], logs: KeptLogs) -> None:
    """As when MongoDB is away: the next delivery counts as a death, the phase is not lost."""
    monkeypatch.setattr(build_store, "release_phase", refused)
    outcome = phase_runner._hand_back(CONFIG, running(), WorkerStopping(), None)
    assert outcome is Outcome.HANDED_BACK


def test_a_refused_broker_epoch_note_does_not_fail_a_sent_hand_on(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    """The next phase was sent: the note is best effort (the next claim moves the build on)."""
    monkeypatch.setattr(build_store, "set_running", refused)
    sent: list[object] = []
    record = running(broker_epoch="e0")
    outcome = phase_runner._hand_on(CONFIG, record, sent.append, None, OutageWait(CONFIG))
    assert outcome is Outcome.CONTINUE and sent == [record]


def test_a_stale_phase_whose_build_cannot_be_read_is_dropped_quietly(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], tmp_path: Path) -> None:
    """Not its build to run: the refused read only keeps what the attempt left here."""
    config = CONFIG.replace(data_dir=str(tmp_path))
    phase_runner.work_dir(config, "b1", 1).mkdir(parents=True)

    def lost(*args: object, **kwargs: object) -> None:
        raise LeaseLost("b1")
    monkeypatch.setattr(build_store, "start_phase", lost)
    reads = iter([running(attempt=2)])  # the claim's read answers, the next is refused
    monkeypatch.setattr(build_store, "find_by_id",
                        lambda build_id: next(reads, None) or refused())
    outcome = phase_runner.run_phase(config, STEPS[1], "b1", 1,
                                     lambda run: None)  # type: ignore[arg-type,return-value]
    assert outcome is Outcome.DROPPED
    assert phase_runner.work_dir(config, "b1", 1).exists()


class RefusingLogs(KeptLogs):
    """A ``logs`` collection MongoDB refuses to add to (an error answer)."""

    def insert_one(self, doc: dict[str, Any]) -> None:
        raise OperationFailure("not authorized on binder to execute command insert")


def test_a_refused_log_loses_its_end_line_not_the_builds_end(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    use_log_stores(monkeypatch, RefusingLogs())
    store = RefusedEnd(refusals=0)
    monkeypatch.setattr(build_store, "finish", store.finish)
    outcome = phase_runner._run_claimed(CONFIG, running(cancel_requested=True),
                                        Phase.BUILDING, lambda run: None, OutageWait(CONFIG))
    assert outcome is Outcome.DONE
    assert store.finished == [Status.CANCELLED]


class RefusedAsk(Store):
    """A store that answers the last phase's ask (``heartbeat``) with an error once."""

    def heartbeat(self, build_id: str, attempt: int) -> bool:
        self.asked.append("heartbeat")
        if self.asked.count("heartbeat") == 1:
            refused()
        return False


def test_the_last_phase_asked_about_a_cancel_for_a_moment_in_vain_completes(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], logs: KeptLogs) -> None:
    store = RefusedAsk()
    for name in ("heartbeat", "finish"):
        monkeypatch.setattr(build_store, name, getattr(store, name))
    config = CONFIG.replace(heartbeat_interval=600)
    outcome = phase_runner._run_claimed(config, running(), Phase.BUILDING,
                                        lambda phase: PhaseResult(complete=True),
                                        OutageWait(config))
    assert outcome is Outcome.DONE
    assert store.finished == [Status.COMPLETED]


@pytest.mark.parametrize("refusals", [1, 3])
def test_a_phase_the_database_refused_runs_again_a_bounded_number_of_times(
        monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
    """A refusal that lasts a moment (a write conflict) costs a run of the phase, not the
    build; one that lasts (a lost permission) still fails it, after ``PHASE_RUNS``."""
    monkeypatch.setattr(phase_runner, "ERROR_PAUSE_SECONDS", 0)
    said: list[str] = []
    runs = {"n": 0}

    def function(run: Any) -> PhaseResult:
        runs["n"] += 1
        if runs["n"] <= refusals:
            raise BadDatabase("WriteConflict")
        return PhaseResult({"ran": True})

    run = SimpleNamespace(state=Phase.PUSHING, say=said.append, guard=SimpleNamespace(reason=None))
    if refusals < PHASE_RUNS:
        assert _run_function(run, function, None).changes == {"ran": True}  # type: ignore[arg-type]
    else:
        with pytest.raises(BadDatabase):
            _run_function(run, function, None)  # type: ignore[arg-type]
    assert runs["n"] == min(refusals + 1, PHASE_RUNS)
    assert said == ["the build database refused a write during pushing; running pushing "
                    "again"] * min(refusals, PHASE_RUNS - 1)
