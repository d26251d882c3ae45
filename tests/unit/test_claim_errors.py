"""A build is not left to the reaper's backstop (half an hour queued, an hour between
phases, shown running all along) because MongoDB answered a write of its phase with
an error (``BadDatabase``: an answer, not an outage).

The write is tried again a few times, a second apart (a write conflict lasts a
moment); a claim still refused starts the build again as its next attempt, failed as
the farm's fault past ``BINDER_MAX_ATTEMPTS``; a phase end still refused fails the
build as the farm's fault; a refused hand-back still hands the message back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from common import build_store
from common.clock import utcnow
from common.errors import BadDatabase
from common.leases import restart_label
from common.models import STEPS, Phase, Status, Step
from tests.support.log_stores import logs
from tests.unit.test_farm_log_lines import CONFIG, running
from workers import phase_runner, store_errors
from workers.phase_runner import Outcome

__all__ = ["logs"]  # the fixture, used by name

DETECT = STEPS[1]


def refused(*args: object, **kwargs: object) -> Any:
    raise BadDatabase("The build database (MongoDB) answered with an error.")


class RefusingStore:
    """``start_phase`` that MongoDB answers with an error ``refusals`` times."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.tries = 0

    def start_phase(self, build_id: str, *args: object, **kwargs: object) -> dict[str, Any]:
        self.tries += 1
        if self.tries <= self.refusals:
            refused()
        return running(phase=DETECT.state.value)


def waiting_for_detect(**lease: Any) -> dict[str, Any]:
    """A build fetch handed on to this host, its detect phase not claimed yet."""
    return running(phase=Phase.FETCHING.value, lease={
        "worker": None, "host": CONFIG.worker_host, "attempt": 1, "since": utcnow(),
        "handed_at": utcnow(), **lease})


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(store_errors.time, "sleep", slept.append)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: "e1")
    # Not the real one: past a hand-back it ends this process.
    monkeypatch.setattr(phase_runner.stopping, "phase_running", contextlib.nullcontext)
    return slept


def test_a_claim_refused_for_a_moment_is_taken_on_a_later_try(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    store = RefusingStore(refusals=store_errors.ERROR_TRIES - 1)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    record = phase_runner.claim("b1", 1, DETECT.state, CONFIG)
    assert record["phase"] == DETECT.state.value
    assert store.tries == store_errors.ERROR_TRIES
    assert pauses == [store_errors.ERROR_PAUSE_SECONDS] * (store_errors.ERROR_TRIES - 1)


class Restarts:
    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.reasons: list[str] = []
        self.sent: list[dict[str, Any]] = []

    def restart(self, record: dict[str, Any], reason: str, config: object) -> Any:
        self.reasons.append(reason)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run_detect(monkeypatch: pytest.MonkeyPatch, current: dict[str, Any],
               restarts: Restarts, step: Step = DETECT) -> tuple[Outcome, RefusingStore]:
    store = RefusingStore(refusals=10**6)
    monkeypatch.setattr(build_store, "start_phase", store.start_phase)
    monkeypatch.setattr(build_store, "find_by_id", lambda build_id: current)
    monkeypatch.setattr(phase_runner.leases, "restart", restarts.restart)

    def never(run: object) -> None:
        raise AssertionError("an unclaimed phase does not run")
    outcome = phase_runner.run_phase(CONFIG, step, "b1", 1, never,  # type: ignore[arg-type]
                                     restart=restarts.sent.append)
    return outcome, store


@pytest.mark.parametrize(("step", "current"), [
    (DETECT, waiting_for_detect()),
    (DETECT, {**waiting_for_detect(released=DETECT.state.value),  # handed back on a stop
              "phase": DETECT.state.value}),
    (STEPS[0], running(phase=Phase.QUEUED.value, lease=None, heartbeat=None)),
])
def test_a_claim_always_refused_starts_the_build_again(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], step: Step,
        current: dict[str, Any]) -> None:
    restarted = running(attempt=2, phase=Phase.QUEUED.value, lease=None)
    restarts = Restarts(restarted)
    outcome, store = run_detect(monkeypatch, current, restarts, step)
    assert outcome is Outcome.DROPPED
    assert store.tries == store_errors.ERROR_TRIES  # bounded: no loop on a lasting refusal
    assert restarts.sent == [restarted]
    [reason] = restarts.reasons
    assert step.state.value in reason and restart_label(reason) == "store_refused"


@pytest.mark.parametrize("current", [
    running(phase=Phase.DETECTING.value),  # another worker holds it
    running(phase=Phase.BUILDING.value, lease={"worker": None, "host": CONFIG.worker_host,
                                               "attempt": 1, "since": utcnow()}),  # moved on
    running(phase=Phase.FETCHING.value, lease={"worker": None, "host": "elsewhere",
                                               "attempt": 1, "since": utcnow()}),
    running(phase=Phase.FETCHING.value, attempt=2, lease=None),  # a later attempt
    {**waiting_for_detect(), "status": Status.COMPLETED.value},
])
def test_a_refused_claim_restarts_only_a_build_that_waits_for_its_phase(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float], current: dict[str, Any]) -> None:
    restarts = Restarts()
    outcome, _ = run_detect(monkeypatch, current, restarts)
    assert outcome is Outcome.DROPPED
    assert restarts.reasons == [] and restarts.sent == []


def test_a_store_that_refuses_the_restart_too_leaves_the_build_to_the_reaper(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    restarts = Restarts(BadDatabase("The build database (MongoDB) answered with an error."))
    outcome, _ = run_detect(monkeypatch, waiting_for_detect(), restarts)
    assert outcome is Outcome.DROPPED
    assert len(restarts.reasons) == 1 and restarts.sent == []
