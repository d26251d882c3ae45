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
