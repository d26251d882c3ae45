"""The lease guard around a running phase: heartbeat, cancellation, timeout.

While a phase runs, a thread renews the build's heartbeat every
``heartbeat_interval`` seconds and watches for a cancel request, the
build's deadline, loss of the lease and a stop of its worker process
(``workers/stopping.py``, looked at every ``STOP_TICK``). On any of them it records why and
calls the abort hooks the phase registered (killing a Docker build,
removing a container), so even a silent step stops promptly. At each beat it
also looks at the watches the phase registered (a frozen engine under a silent
build, ``workers/silence_watch.py``). Phase code
calls :meth:`check` between steps to turn the reason into an exception.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from common import build_store
from common.clock import utcnow
from common.errors import BuildCancelled, BuildFailure, LeaseLost, NoDatabase
from common.models import FailureCause, Phase
from workers import stopping

log = logging.getLogger(__name__)

#: Seconds between two looks at whether the worker process is stopping: a stop
#: hands the phase back within about this long.
STOP_TICK = 0.5


class BuildTimedOut(BuildFailure):
    """The build ran past its deadline."""

    cause = FailureCause.TIMEOUT


class PhaseGuard:
    """Context manager that keeps a phase's lease alive and stops it when it must end."""

    def __init__(self, build_id: str, attempt: int, phase: Phase, deadline: dt.datetime,
                 timeout_minutes: float, interval: float) -> None:
        self.build_id = build_id
        self.attempt = attempt
        self.phase = phase
        self.deadline = deadline
        self.timeout_minutes = timeout_minutes
        self.interval = interval
        self.reason: BaseException | None = None
        self._hooks: list[Callable[[], None]] = []
        self._watches: list[Callable[[], BaseException | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"guard-{build_id[:8]}")

    def on_abort(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` (once) if the phase must stop; returns a remover."""
        self._hooks.append(hook)
        if self.reason is not None:
            hook()
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def watch(self, look: Callable[[], BaseException | None]) -> Callable[[], None]:
        """Call ``look`` at each heartbeat, from the guard's thread; the phase stops
        for the reason it returns, if it returns one. Returns a remover.

        For what only a probe tells (a service frozen under a silent stream,
        ``workers/silence_watch.py``): ``look`` may block up to its probe's timeout.
        """
        self._watches.append(look)
        return lambda: self._watches.remove(look) if look in self._watches else None

    def check(self, ask_store: bool = True) -> None:
        """Raise the reason this phase must stop, if there is one: its worker stopping,
        its deadline passed and, with ``ask_store``, a cancel or a lost lease (asks the
        store now)."""
        if self.reason is None:
            self._poll(ask_store)
        if self.reason is not None:
            raise self.reason

    def raise_if_stopped(self) -> None:
        """Raise the reason the guard has found, without asking the store.

        For tight loops (every event of a push stream, every chunk of a
        download): the guard's thread asks the store every ``interval``
        seconds, so a round trip per event would only slow the loop down.
        """
        if self.reason is not None:
            raise self.reason

    def _poll(self, ask_store: bool = True) -> None:
        if self.reason is not None or self._stopping():
            return
        if utcnow() > self.deadline:
            self._abort(BuildTimedOut(
                f"The build timed out after {self.timeout_minutes:g} min in phase "
                f"{self.phase.value}.",
                suggestions=["Make the build lighter, or raise the timeout (.binder.yml "
                             "timeout, up to the farm's BINDER_BUILD_TIMEOUT)."]))
            return
        if not ask_store:
            return
        try:
            cancelled = build_store.heartbeat(self.build_id, self.attempt)
        except LeaseLost as exc:
            self._abort(exc)
            return
        except NoDatabase:
            return  # keep working; the next beat may get through
        if cancelled:
            self._abort(BuildCancelled(self.build_id))

    def _look_at_watches(self) -> None:
        for look in list(self._watches):
            if self.reason is not None:
                return
            reason = look()
            if reason is not None:
                self._abort(reason)

    def _stopping(self) -> bool:
        """Abort if the worker process is stopping; True if it is."""
        if stopping.requested():
            self._abort(stopping.WorkerStopping())
        return self.reason is not None

    def _abort(self, reason: BaseException) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        log.info("stopping %s phase of %s: %r", self.phase.value, self.build_id, reason)
        for hook in list(self._hooks):
            with contextlib.suppress(Exception):
                hook()

    def _run(self) -> None:
        next_poll = time.monotonic() + self.interval
        while not self._stop.wait(min(STOP_TICK, self.interval)):
            if self._stopping() or time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + self.interval
            try:
                self._poll()
                self._look_at_watches()
            except Exception:  # the guard must outlive any one failed beat
                log.exception("heartbeat failed for %s", self.build_id)

    def __enter__(self) -> PhaseGuard:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
