"""A clock for the waits of ``workers/outages.py``: sleeping moves it on at once."""

from __future__ import annotations

import pytest

import workers.outages


class Clock:
    """Stands in for time.monotonic and time.sleep: sleeping moves it on."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def outage_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A ``Clock`` the outage waits read and sleep on, for the rest of the test."""
    clock = Clock()
    monkeypatch.setattr(workers.outages.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(workers.outages.time, "sleep", clock.sleep)
    return clock
