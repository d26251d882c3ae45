"""An orderly stop (SIGTERM) of a worker process hands its phase back; it is no death."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest

from common.build_store import phase_deaths, phase_hand_backs
from common.errors import BuildFailure
from common.models import BuildRecord, Phase
from workers import phase_runner, stopping
from workers.phase_runner import PhaseResult

#: A pool process as Celery and billiard make one: started (``worker_process_init``),
#: then given a SIGTERM handler of billiard's that exits.
POOL_PROCESS = """
import os, signal, sys, time
from workers import stopping
stopping._pool_process_started()
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
{body}
"""


def run_pool_process(body: str) -> subprocess.CompletedProcess[str]:
    code = POOL_PROCESS.format(body=textwrap.dedent(body))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)


def test_sigterm_while_a_phase_runs_is_a_request_then_the_process_exits_cleanly() -> None:
    done = run_pool_process("""
        with stopping.phase_running():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            print("still running, asked to stop:", stopping.requested(), flush=True)
        time.sleep(30)  # it exits on its own soon after the phase was handed back
        print("never", flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "still running, asked to stop: True\n"


def test_sigterm_with_no_phase_running_stops_the_process_as_before() -> None:
    done = run_pool_process("""
        with stopping.phase_running():
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("never", flush=True)
    """)
    assert (done.returncode, done.stdout) == (7, "")


def test_a_main_process_keeps_its_own_sigterm_handler() -> None:
    done = run_pool_process("""
        stopping._in_pool = False  # a main process (a solo pool runs tasks there)
        with stopping.phase_running():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        print("never", flush=True)
    """)
    assert (done.returncode, done.stdout) == (7, "")


def record(deliveries: int, handed_back: int = 0, attempt: int = 2) -> BuildRecord:
    counts: dict[str, Any] = {"deliveries": {str(attempt): {"building": deliveries},
                                             "1": {"building": 9}}}
    if handed_back:
        counts["handed_back"] = {str(attempt): {"building": handed_back}}
    return {"attempt": attempt, **counts}  # type: ignore[typeddict-item]


@pytest.mark.parametrize(("deliveries", "handed_back", "deaths"), [
    (1, 0, 0),  # the first run
    (2, 0, 1),  # its process died once
    (2, 1, 0),  # handed back once on a stop: not a death
    (4, 2, 1),  # two stops and one death
])
def test_deaths_are_deliveries_neither_first_nor_after_a_hand_back(
        deliveries: int, handed_back: int, deaths: int) -> None:
    assert phase_deaths(record(deliveries, handed_back), Phase.BUILDING) == deaths
    assert phase_hand_backs(record(deliveries, handed_back), Phase.BUILDING) == handed_back
    assert phase_deaths(record(deliveries, handed_back), Phase.PUSHING) == 0


class Guard:
    def check(self) -> None:
        pass


def failing_build(run: Any) -> PhaseResult:
    raise BuildFailure("The build step `RUN sleep 300` failed with exit code 143.")


def test_a_phase_that_fails_while_its_worker_stops_is_handed_back_not_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    run: Any = SimpleNamespace(state=Phase.BUILDING, guard=Guard())
    wait: Any = None
    with pytest.raises(BuildFailure):
        phase_runner._run_stoppable(run, failing_build, wait)
    monkeypatch.setattr(stopping, "_requested", True)
    with pytest.raises(stopping.WorkerStopping) as stopped:
        phase_runner._run_stoppable(run, failing_build, wait)
    assert isinstance(stopped.value.__cause__, BuildFailure)


class Claims:
    """A running build held in its building phase by ``holder``, as ``start_phase``'s
    atomic claims see it (only the counters are kept)."""

    def __init__(self, holder: str) -> None:
        self.record: dict[str, Any] = {
            "build_id": "b1", "attempt": 1, "status": "running", "phase": "building",
            "lease": {"worker": holder, "host": "a", "attempt": 1},
            "deliveries": {"1": {"building": 1}}}

    def update_and_read(self, collection: object, selector: dict[str, Any],
                        update: dict[str, Any], key: object) -> dict[str, Any] | None:
        lease = self.record["lease"]
        wanted = selector.get("lease.worker", "unset")
        if wanted == "unset" or wanted != lease["worker"] or "lease.released" in selector \
                or selector.get("phase") != self.record["phase"]:
            return None
        for path, count in update.get("$inc", {}).items():
            _, attempt, phase = path.split(".")
            counts = self.record["deliveries"].setdefault(attempt, {})
            counts[phase] = counts.get(phase, 0) + count
        self.record["lease"] = update["$set"]["lease"]
        return self.record


@pytest.mark.parametrize(("holder", "replacing", "deaths"), [
    # Its own process claims it again (a task retried while the database did not
    # answer, whose first claim had landed): nothing died.
    ("a@box:7", None, 0),
    # Another process of the worker takes it over from the one that died running it.
    ("a@box:6", "a@box:6", 1),
])
def test_only_a_claim_taken_from_a_dead_process_counts_a_death(
        monkeypatch: pytest.MonkeyPatch, holder: str, replacing: str | None,
        deaths: int) -> None:
    from common import build_store
    claims = Claims(holder)
    monkeypatch.setattr(build_store.db, "update_and_read", claims.update_and_read)
    monkeypatch.setattr(build_store.db, "builds", lambda config=None: None)
    for _ in range(3 if replacing is None else 1):
        record = build_store.start_phase("b1", 1, Phase.BUILDING, Phase.DETECTING, "a@box:7",
                                         "a", replacing=replacing)
        assert record["lease"]["worker"] == "a@box:7"
    assert phase_deaths(record, Phase.BUILDING) == deaths


def test_only_a_pool_process_exits_by_itself_after_a_hand_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop flag set anywhere else (a test, a main process) never ends the process: an
    exit there would end a whole test run as if it had passed."""
    armed: list[object] = []
    monkeypatch.setattr(stopping.threading, "Timer",
                        lambda *args: SimpleNamespace(daemon=False,
                                                      start=lambda: armed.append(args)))
    monkeypatch.setattr(stopping, "_take_sigterm", lambda: None)  # this process keeps its own
    monkeypatch.setattr(stopping, "_requested", True)
    monkeypatch.setattr(stopping, "_in_pool", False)
    with stopping.phase_running():
        pass
    assert armed == []
    monkeypatch.setattr(stopping, "_in_pool", True)
    with stopping.phase_running():
        pass
    assert len(armed) == 1
