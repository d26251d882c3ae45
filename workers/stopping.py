"""An orderly stop of a worker hands its running phases back instead of dying.

SIGTERM is how a worker is stopped: honcho and systemd send it to the
whole process group (Celery's main process and its pool processes), an
operator may send it to the main process only. A pool process running a
phase used to die of it (billiard's handler), and the phase came back as if
its worker had crashed (counted against ``BINDER_MAX_DELIVERIES``).

Here a pool process takes SIGTERM over when it starts its first phase
(billiard sets its own handler after every initializer hook). Then a
SIGTERM while it runs a phase only notes the request: the phase's guard
(``workers/guard.py``) stops the phase as a cancel does (the Docker build
is killed), and the phase runner hands the phase back
(``workers/phase_runner.py``): the lease is released for that same phase,
the task's message goes back to its queue, and the process exits soon
after. A pool process that runs no phase stops as it always did (billiard's
handler). The main process, at the start of its warm shutdown, sends
SIGTERM to its busy pool processes, so a SIGTERM to it alone hands back too. A
process killed with SIGKILL (or out of memory) is still a death: the broker
delivers its phase again and the claim counts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from celery.signals import worker_process_init, worker_shutting_down
from celery.worker import state as worker_state

#: After its last phase was handed back, a pool process that was asked to stop
#: exits this long after, time enough to pass the task's result to Celery's
#: main process (a warm shutdown ends it sooner).
EXIT_AFTER_HAND_BACK = 2.0


class WorkerStopping(Exception):  # noqa: N818  (a reason, like BuildCancelled)
    """This worker process was asked to stop: the phase it runs is handed back."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"the worker process got {self.signal_name} (an orderly stop)"


_phases_running = 0
_requested = False
#: True in a pool process (Celery's ``worker_process_init``): only there does a
#: SIGTERM hand back; in a main process it is Celery's warm shutdown.
_in_pool = False
#: The SIGTERM handler this process had before it took SIGTERM over (billiard's).
_previous: Any = signal.SIG_DFL


def requested() -> bool:
    """True once this process was asked to stop while it ran a phase."""
    return _requested


@contextlib.contextmanager
def phase_running() -> Iterator[None]:
    """This process runs a phase inside the block: a SIGTERM hands it back."""
    global _phases_running
    _take_sigterm()
    _phases_running += 1
    try:
        yield
    finally:
        _phases_running -= 1
        # Only a pool process ends itself: its stop flag is set by its own SIGTERM
        # handler. Anywhere else (a main process, a test setting the flag) an exit
        # would end everything the process does, a whole test run as if it passed.
        if _requested and _in_pool and not _phases_running:
            timer = threading.Timer(EXIT_AFTER_HAND_BACK, os._exit, (0,))
            timer.daemon = True
            timer.start()


def _take_sigterm() -> None:
    """Handle SIGTERM in this pool process from now on (only the main thread may)."""
    global _previous
    if not _in_pool or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _requested
    if not _phases_running:
        _stop_as_before(signum, frame)  # nothing to hand back
        return
    # Only a flag: a signal handler runs between two bytecodes of whatever the
    # main thread does. The guard's thread acts on it within a tick.
    _requested = True


def _stop_as_before(signum: int, frame: FrameType | None) -> None:
    if callable(_previous):
        _previous(signum, frame)
    elif _previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@worker_process_init.connect
def _pool_process_started(**_: Any) -> None:
    """A pool process starts with nothing running and no stop asked for."""
    global _phases_running, _requested, _in_pool
    _phases_running, _requested, _in_pool = 0, False, True


@worker_shutting_down.connect
def _stop_busy_pool_processes(how: str = "", **_: Any) -> None:
    """A warm shutdown asked of the main process alone reaches the pool processes
    running a task, which hand their phases back instead of finishing them. Idle
    ones are left to end as a warm shutdown ends them (a SIGTERM would stop them
    with a status the pool reports as an error)."""
    if how != "Warm":
        return
    for pid in {request.worker_pid for request in list(worker_state.active_requests)}:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
