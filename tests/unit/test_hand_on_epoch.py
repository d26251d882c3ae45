"""The broker epoch a hand-off leaves in the record is the broker that took the message.

The reaper starts again a build handed on whose recorded epoch is not the
broker's: its next phase went with a restarted broker. A broker that
restarted while the phase ended (unreachable then, so the record kept the
epoch it had) and was back before the hand-off must not make the build
look lost: the message is in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common import build_store
from common.clock import utcnow
from common.config import load_config
from common.models import Phase
from tests.support.log_stores import KeptLogs, logs
from tests.support.outage_clock import outage_clock
from tests.unit.test_farm_log_lines import running
from workers import phase_runner
from workers.outages import OutageWait
from workers.phase_runner import Outcome

__all__ = ["logs"]  # the fixture, used by name

CONFIG = load_config(environ={})


class Store:
    """The record's broker epoch, as the phase's end and the hand-off write it."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = dict(record)
        self.notes: list[dict[str, Any]] = []

    def end_phase(self, build_id: str, attempt: int, phase: Phase, worker: str,
                  changes: dict[str, Any]) -> None:
        self.record.update(changes, lease={**self.record["lease"], "worker": None})

    def set_running(self, build_id: str, attempt: int, changes: dict[str, Any]) -> None:
        self.notes.append(changes)
        self.record.update(changes)

    def heartbeat(self, build_id: str, attempt: int) -> bool:
        return bool(self.record.get("cancel_requested"))


def end_and_hand_on(monkeypatch: pytest.MonkeyPatch, epochs: Iterator[str | None],
                    stored_epoch: str) -> Store:
    """Run a phase to its end and hand the build on, the broker's epoch read in turn
    from ``epochs``; the record held ``stored_epoch`` before."""
    record = running(attempt_start=utcnow(), broker_epoch=stored_epoch)
    store = Store(record)
    monkeypatch.setattr(build_store, "end_phase", store.end_phase)
    monkeypatch.setattr(build_store, "set_running", store.set_running)
    monkeypatch.setattr(build_store, "heartbeat", store.heartbeat)
    last: list[str | None] = [None]

    def epoch(config: object) -> str | None:
        last[0] = next(epochs, last[0])
        return last[0]
    monkeypatch.setattr(phase_runner, "broker_epoch", epoch)
    wait = OutageWait(CONFIG)
    outcome = phase_runner._run_claimed(CONFIG, record, Phase.BUILDING,  # type: ignore[arg-type]
                                        lambda run: None, wait)
    assert outcome is Outcome.CONTINUE
    sent: list[str] = []
    outcome = phase_runner._hand_on(CONFIG, record, lambda r: sent.append(r["build_id"]),  # type: ignore[arg-type]
                                    None, wait)
    assert (outcome, sent) == (Outcome.CONTINUE, ["b1"])
    return store


def test_a_broker_back_before_the_hand_off_is_the_one_recorded(
        monkeypatch: pytest.MonkeyPatch, logs: KeptLogs) -> None:
    # Unreachable as the phase ended (restarting), then back as a new run.
    store = end_and_hand_on(monkeypatch, iter([None, "e2"]), stored_epoch="e1")
    assert store.record["broker_epoch"] == "e2"


def test_a_steady_broker_costs_no_further_write(
        monkeypatch: pytest.MonkeyPatch, logs: KeptLogs) -> None:
    store = end_and_hand_on(monkeypatch, iter(["e1"]), stored_epoch="e1")
    assert store.record["broker_epoch"] == "e1"
    assert store.notes == []


def test_a_broker_that_restarted_during_the_phase_is_recorded_as_the_phase_ends(
        monkeypatch: pytest.MonkeyPatch, logs: KeptLogs) -> None:
    store = end_and_hand_on(monkeypatch, iter(["e2"]), stored_epoch="e1")
    assert store.record["broker_epoch"] == "e2"
    assert store.notes == []


def test_a_worker_stopping_while_the_broker_is_away_gives_its_hand_off_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody else sends a next phase its worker could not send: a worker that stops
    (and is killed soon after, by systemd or compose) while it waits for the broker
    starts the build again at once, rather than leave it waiting for the reaper's
    ``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT``."""
    from kombu.exceptions import OperationalError

    from workers import stopping
    clock = outage_clock(monkeypatch, start=0.0)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: None)
    record = running(lease={"worker": None, "host": "a", "attempt": 1, "since": utcnow(),
                            "handed_by": "a@box:7", "handed_at": utcnow()})
    monkeypatch.setattr(build_store, "find_by_id", lambda build_id: record)
    restarted: list[str] = []

    def restart(current: dict[str, Any], reason: str, config: object) -> dict[str, Any]:
        restarted.append(reason)
        return {**current, "attempt": 2, "phase": "queued", "lease": None}
    monkeypatch.setattr(phase_runner.leases, "restart", restart)
    monkeypatch.setattr(phase_runner.liveness, "let_go", lambda build_id: None)
    tries: list[float] = []

    def send(r: object) -> None:
        tries.append(clock.now)
        if len(tries) == 2:
            monkeypatch.setattr(stopping, "_requested", True)  # SIGTERM meanwhile
        raise OperationalError("the broker is away")
    sent_again: list[int] = []
    outcome = phase_runner._hand_on(CONFIG, record, send,  # type: ignore[arg-type]
                                    lambda r: sent_again.append(r["attempt"]),
                                    OutageWait(CONFIG))
    assert outcome is Outcome.DROPPED
    assert len(tries) == 2
    assert len(restarted) == 1 and restarted[0].startswith("its next phase could not be sent")
    assert sent_again == [2]


def test_a_broker_that_restarts_just_after_the_hand_off_is_not_the_one_recorded(
        monkeypatch: pytest.MonkeyPatch, logs: None) -> None:
    """The next phase went with it: the record keeps the broker that took it, so the
    reaper starts the build again rather than take the new broker for one holding it."""
    broker = {"epoch": "e1"}
    record = running(attempt_start=utcnow(), broker_epoch="e1")
    store = Store(record)
    monkeypatch.setattr(build_store, "end_phase", store.end_phase)
    monkeypatch.setattr(build_store, "set_running", store.set_running)
    monkeypatch.setattr(build_store, "heartbeat", store.heartbeat)
    monkeypatch.setattr(phase_runner, "broker_epoch", lambda config: broker["epoch"])
    wait = OutageWait(CONFIG)
    outcome = phase_runner._run_claimed(CONFIG, record, Phase.BUILDING,  # type: ignore[arg-type]
                                        lambda run: None, wait)
    assert outcome is Outcome.CONTINUE

    def send(sent: object) -> None:
        broker["epoch"] = "e2"  # took the message, then restarted
    assert phase_runner._hand_on(CONFIG, record, send, None, wait) is Outcome.CONTINUE  # type: ignore[arg-type]
    assert store.record["broker_epoch"] == "e1"
