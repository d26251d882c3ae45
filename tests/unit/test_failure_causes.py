"""Whose fault a failed build was: each failure carries its cause from where it is
raised to the record the phase runner or the reaper ends the build with."""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

import pytest

from common import build_store
from common.clock import utcnow
from common.config import load_config
from common.errors import BuildCancelled, BuildFailure, NoDatabase
from common.models import FailureCause, Phase, Status
from tests.support.log_stores import KeptLogs, use_log_stores
from tests.unit.test_farm_log_lines import running
from workers import phase_runner
from workers.guard import BuildTimedOut, PhaseGuard
from workers.image_build import failure_cause
from workers.outages import OutageWait, ServiceLost, watching
from workers.phase_runner import PhaseFailure
from workers.providers.base import FetchLimits

CONFIG = load_config(environ={}, max_deliveries=2, max_attempts=3)


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """How ``build_store.finish`` was asked to end the build (its log kept in fakes)."""
    use_log_stores(monkeypatch, KeptLogs())
    calls: list[dict[str, Any]] = []

    def finish(build_id: str, attempt: int, status: Status, error: str | None = None,
               changes: dict[str, Any] | None = None, suggestions: list[str] | None = None,
               cause: FailureCause | None = None) -> None:
        calls.append({"status": status, "error": error, "cause": cause})
    monkeypatch.setattr(build_store, "finish", finish)
    return calls


def run_failing(exc: Exception, **fields: Any) -> None:
    def phase(run: phase_runner.PhaseRun) -> None:
        raise exc
    record = running(attempt_start=utcnow(), **fields)
    outcome = phase_runner._run_claimed(CONFIG, record, Phase.BUILDING,  # type: ignore[arg-type]
                                        phase, OutageWait(CONFIG))
    assert outcome is phase_runner.Outcome.DONE


@pytest.mark.parametrize(("exc", "cause"), [
    (BuildFailure("No branch or tag named 'x' in the repository."), FailureCause.REPOSITORY),
    (BuildFailure("The registry refused the image.", cause=FailureCause.FARM),
     FailureCause.FARM),
    (BuildTimedOut("The build timed out after 60 min in phase building."),
     FailureCause.TIMEOUT),
    (PhaseFailure.of(BuildFailure("The image exited.", cause=FailureCause.VERIFICATION),
                     {"rejected_image": "r/o-r:abc"}), FailureCause.VERIFICATION),
    (KeyError("image-id"), FailureCause.FARM),  # what the farm did not expect is its own
])
def test_a_failed_phase_ends_the_build_with_its_failures_cause(
        ended: list[dict[str, Any]], exc: Exception, cause: FailureCause) -> None:
    run_failing(exc)
    assert [(call["status"], call["cause"]) for call in ended] == [(Status.FAILED, cause)]


def test_a_build_that_killed_its_worker_too_often_is_the_farms_failure(
        ended: list[dict[str, Any]]) -> None:
    run_failing(AssertionError("not run again"), deliveries={"1": {"building": 3}})
    assert ended[0]["cause"] is FailureCause.FARM
    assert "took its worker process down" in ended[0]["error"]


def test_a_cancelled_build_has_no_cause(ended: list[dict[str, Any]]) -> None:
    run_failing(AssertionError("not run"), cancel_requested=True)
    assert [(call["status"], call["cause"]) for call in ended] == [(Status.CANCELLED, None)]


def test_a_failure_keeps_its_cause_through_a_pickle() -> None:
    for failure in (BuildFailure("no", ["retry"], FailureCause.RESOURCES),
                    PhaseFailure("no", ["retry"], {"image_name": None}, FailureCause.FARM),
                    BuildTimedOut("late")):
        copy = pickle.loads(pickle.dumps(failure))
        assert (type(copy), copy.cause, copy.message) == \
            (type(failure), failure.cause, failure.message)
    assert pickle.loads(pickle.dumps(BuildFailure("no"))).cause is FailureCause.REPOSITORY


def test_a_build_past_its_deadline_times_out() -> None:
    guard = PhaseGuard("b" * 32, 1, Phase.BUILDING, utcnow() - dt.timedelta(seconds=1), 60, 5)
    with pytest.raises(BuildTimedOut) as caught:
        guard.check()
    assert caught.value.cause is FailureCause.TIMEOUT


def test_a_download_past_its_limit_times_out() -> None:
    limits = FetchLimits.from_config(CONFIG, timeout=0)
    with pytest.raises(BuildFailure, match="took longer than") as caught:
        limits.remaining("The download")
    assert caught.value.cause is FailureCause.TIMEOUT


KILLED_STEP = "executor failed running [/bin/sh -c pip install -r r.txt]: exit code: 137"


@pytest.mark.parametrize(("error", "recent", "cause"), [
    (KILLED_STEP, ["Killed"], FailureCause.RESOURCES),
    ("executor failed running [/bin/sh -c make]: exit code: 2",
     ["cp: error writing 'big': No space left on device"], FailureCause.RESOURCES),
    ("failed to solve: write /var/lib/docker/tmp: no space left on device", [],
     FailureCause.RESOURCES),
    ("executor failed running [/bin/sh -c make]: exit code: 2", ["make: *** Error 1"],
     FailureCause.REPOSITORY),
    ("executor failed running [/bin/sh -c make]: exit code: 2",
     ["/bin/sh: fork: retry: Resource temporarily unavailable"], FailureCause.RESOURCES),
    ("executor failed running [/bin/sh -c make]: exit code: 2",
     ["read: Resource temporarily unavailable"], FailureCause.REPOSITORY),
    ("failed to solve: dockerfile parse error line 3: unknown instruction: RUNN", [],
     FailureCause.REPOSITORY),
])
def test_a_failed_docker_build_is_the_repositorys_unless_it_ran_out_of_resources(
        error: str, recent: list[str], cause: FailureCause) -> None:
    assert failure_cause(error, recent) is cause


def test_a_deadline_reached_while_the_engine_does_not_answer_is_given_back(
        ended: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen engine hangs the build until the build's deadline: that is the farm's
    fault, not the repository's taking too long. The build is given back (the farm
    starts it again as its next attempt, up to BINDER_MAX_ATTEMPTS), and its log says
    why; it does not end failed with a timeout."""
    let_go: list[str] = []
    monkeypatch.setattr(phase_runner.liveness, "let_go", let_go.append)
    logs = KeptLogs()
    use_log_stores(monkeypatch, logs)

    def frozen_engine(config: Any) -> ServiceLost:
        return ServiceLost("the Docker engine", lambda: None)

    def phase(run: phase_runner.PhaseRun) -> None:
        with watching(run.config, run.guard, frozen_engine):
            run.guard.check()  # the deadline passed while the engine did not answer
    record = running(attempt_start=utcnow() - dt.timedelta(hours=2))
    outcome = phase_runner._run_claimed(CONFIG, record, Phase.BUILDING,  # type: ignore[arg-type]
                                        phase, OutageWait(CONFIG))
    assert outcome is phase_runner.Outcome.DROPPED
    assert ended == [] and let_go == ["b1"]
    assert any("the Docker engine did not answer" in line and "starts the build again" in line
               for line in logs.lines()), logs.lines()


def test_a_deadline_reached_while_every_service_answers_is_the_builds_timeout(
        ended: list[dict[str, Any]]) -> None:
    def engine_answers(config: Any) -> None:
        return None

    def phase(run: phase_runner.PhaseRun) -> None:
        with watching(run.config, run.guard, engine_answers):
            run.guard.check()
    record = running(attempt_start=utcnow() - dt.timedelta(hours=2))
    outcome = phase_runner._run_claimed(CONFIG, record, Phase.BUILDING,  # type: ignore[arg-type]
                                        phase, OutageWait(CONFIG))
    assert outcome is phase_runner.Outcome.DONE
    assert [(call["status"], call["cause"]) for call in ended] == \
        [(Status.FAILED, FailureCause.TIMEOUT)]


@pytest.mark.parametrize("lost", [NoDatabase("The build database (MongoDB) cannot be reached."),
                                  ServiceLost("the Docker engine", lambda: None)])
def test_a_cancelled_phase_that_loses_a_service_ends_cancelled_not_run_again(
        lost: Exception) -> None:
    """The cancel stopped the phase, and its cleanup met MongoDB (or the engine) away:
    the phase ends for the cancel, instead of waiting for the service and running
    the phase of a cancelled build again."""
    from types import SimpleNamespace

    runs: list[int] = []
    waited: list[str] = []

    class Wait:
        def until_back(self, service: Any, doing: str) -> None:
            waited.append(doing)

    def function(run: Any) -> None:
        runs.append(1)
        raise lost
    guard = SimpleNamespace(reason=BuildCancelled("b1"))
    run = SimpleNamespace(state=Phase.BUILDING, say=lambda line: None, guard=guard)
    with pytest.raises(BuildCancelled):
        phase_runner._run_function(run, function, Wait())  # type: ignore[arg-type]
    assert (runs, waited) == ([1], [])


@pytest.mark.parametrize("exc", [
    OSError(36, "File name too long", "/work/" + "a" * 100_000),
    RuntimeError("Error connecting to redis://:s3cret@127.0.0.1:6379/0\n\x1b[31mrefused"),
])
def test_an_unexpected_failure_is_told_bounded_without_credentials(
        ended: list[dict[str, Any]], exc: Exception) -> None:
    # The error is the record's, which public reads show: what the farm did not expect
    # carries text of any length, and a service's URL may carry its password.
    run_failing(exc)
    [call] = ended
    assert call["cause"] is FailureCause.FARM
    assert type(exc).__name__ in call["error"] and "retry the build" in call["error"]
    assert len(call["error"]) < 600
    assert "s3cret" not in call["error"] and "\x1b" not in call["error"]


def test_a_failures_sentence_reaches_the_record_as_one_line_of_plain_text(
        ended: list[dict[str, Any]]) -> None:
    # A failed step's last output, an image's last words: the repository's bytes, which
    # a terminal showing the error would obey (OSC 52 writes its clipboard).
    run_failing(BuildFailure("The build step `RUN x` failed with exit code 1. Its last "
                             "output: \x1b]52;c;aGk=\x1b\\\x1b[2J\x9b31mred\nnext\x07"))
    [call] = ended
    assert not any(char in call["error"] for char in "\x1b\x9b\x07\n")
    assert call["error"].startswith("The build step `RUN x` failed with exit code 1.")
    assert "red next" in call["error"]
