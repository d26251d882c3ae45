"""A clock for the waits of ``workers/outages.py``: sleeping moves it on at once."""

from __future__ import annotations

import threading
import time

import pytest

import workers.outages

_real_sleep = time.sleep


class Clock:
    """Stands in for time.monotonic and time.sleep: sleeping moves it on.

    Only the test's own thread moves it: ``time`` is one module for the whole
    process, and other threads (a database client's monitors left by an earlier
    test) sleep in loops, which would run the clock on by hundreds of seconds.
    Their sleeps are real ones."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._owner = threading.current_thread()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is self._owner:
            self.now += seconds
        else:
            _real_sleep(seconds)


def outage_clock(monkeypatch: pytest.MonkeyPatch, start: float = 100.0) -> Clock:
    """A ``Clock`` the outage waits (and all of ``time``'s users) read and sleep on,
    for the rest of the test."""
    clock = Clock(start)
    monkeypatch.setattr(workers.outages.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(workers.outages.time, "sleep", clock.sleep)
    return clock
