"""A worker that holds connections lets idle workers accept first; an idle one does not wait."""

from __future__ import annotations

from typing import Any

import pytest

from api import gunicorn_worker
from api.gunicorn_worker import SpreadingThreadWorker


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> tuple[SpreadingThreadWorker, Recorder]:
    recorder = Recorder()
    monkeypatch.setattr(gunicorn_worker.time, "sleep",
                        lambda seconds: recorder.events.append(f"sleep {seconds}"))
    monkeypatch.setattr(gunicorn_worker.ThreadWorker, "accept",
                        lambda self, listener: recorder.events.append(f"accept {listener}"))
    made: Any = SpreadingThreadWorker.__new__(SpreadingThreadWorker)  # no arbiter needed
    return made, recorder


def test_an_idle_worker_accepts_at_once(worker: tuple[SpreadingThreadWorker, Recorder]) -> None:
    made, recorder = worker
    made.nr_conns = 0
    made.accept("listener")
    assert recorder.events == ["accept listener"]


def test_a_worker_with_connections_defers_before_accepting(
        worker: tuple[SpreadingThreadWorker, Recorder]) -> None:
    made, recorder = worker
    made.nr_conns = 2
    made.accept("listener")
    assert recorder.events == [f"sleep {gunicorn_worker.ACCEPT_DEFER}", "accept listener"]
    assert 0 < gunicorn_worker.ACCEPT_DEFER < 0.05  # short against a request
