"""What a build's log and times say when its worker process died or the farm stepped in:
the end line of a build failed after too many deaths, a phase's start kept across its
deliveries, and the line of a restart or an end the reaper decided."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

import common.log_store as log_store
from common import build_store, leases
from common.config import load_config
from common.models import Phase, Status
from tests.support.log_stores import KeptLogs, logs
from workers import phase_runner
from workers.outages import OutageWait

__all__ = ["logs"]  # the fixture, used by name

CONFIG = load_config(environ={}, max_deliveries=2, max_attempts=3)
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def running(**fields: Any) -> dict[str, Any]:
    return {"build_id": "b1", "name": "owner-repo", "attempt": 1, "status": "running",
            "phase": "building", "phases": {"building": {"start": T0}},
            "lease": {"worker": "a@box:7", "host": "a", "attempt": 1, "since": T0},
            "heartbeat": T0, **fields}


@pytest.mark.parametrize(("fields", "end"), [
    ({"deliveries": {"1": {"building": 3}}},
     "== build failed: The build took its worker process down 2 times in phase building "
     "(killed, or out of memory), so it was failed instead of being run again."),
    ({"deliveries": {"1": {"building": 2}}, "cancel_requested": True},
     "== build cancelled: Cancelled by request."),
])
def test_a_phase_that_ends_the_build_as_it_is_claimed_ends_the_log_too(
        logs: KeptLogs, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], end: str) -> None:
    finished: list[tuple[Status, str | None]] = []
    monkeypatch.setattr(build_store, "finish", lambda build_id, attempt, status, error, *_:
                        finished.append((status, error)))

    def never(run: phase_runner.PhaseRun) -> None:
        raise AssertionError("the phase does not run again")
    outcome = phase_runner._run_claimed(CONFIG, running(**fields), Phase.BUILDING, never,
                                        OutageWait(CONFIG))
    assert outcome is phase_runner.Outcome.DONE
    # After what the dead process stored, the one end line a failed build's log has.
    assert logs.lines() == ["== building on a (attempt 1)", "#5 RUN make", end]
    assert log_store.ends_log([(3, end)])
    assert [f"== build {status.value}: {error}" for status, error in finished] == [end]


def _value(doc: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value


class Builds:
    """One build in a ``builds`` collection: equality filters, ``$set``, ``$inc``,
    ``$addToSet``, as ``db.update_and_read`` uses them."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def update_one(self, selector: dict[str, Any], update: dict[str, Any]) -> Any:
        matched = all(_value(self.doc, path) == want for path, want in selector.items())
        if matched:
            for path, value in update.get("$set", {}).items():
                _set(self.doc, path, value)
            for path, by in update.get("$inc", {}).items():
                _set(self.doc, path, (_value(self.doc, path) or 0) + by)
            for path, value in update.get("$addToSet", {}).items():
                values = _value(self.doc, path) or []
                _set(self.doc, path, values if value in values else [*values, value])
        return type("Result", (), {"matched_count": int(matched)})()

    def find_one(self, key: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.doc)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Builds]:
    store = Builds(running())
    monkeypatch.setattr(build_store.db, "builds", lambda config=None: store)
    yield store


def test_a_phase_taken_over_or_back_keeps_its_start(builds: Builds,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    minutes = iter(T0 + dt.timedelta(minutes=minute) for minute in range(100))
    monkeypatch.setattr(build_store, "utcnow", lambda: next(minutes))
    builds.doc = running(phase="queued", lease=None, phases={})

    def fetch(worker: str, replacing: str | None = None, attempt: int = 1) -> dict[str, Any]:
        # As ``phase_runner.claim`` does: each claim of fetch brings its attempt's start.
        return build_store.start_phase("b1", attempt, Phase.FETCHING, Phase.QUEUED, worker,
                                       "a", {"attempt_start": next(minutes)}, replacing)
    first = fetch("a@box:7")
    # Its process died: another process of the worker takes it over.
    fetch("a@box:8", replacing="a@box:7")
    # That one stopped and handed it back; the next claim takes it back.
    build_store.release_phase("b1", 1, Phase.FETCHING, "a@box:8")
    again = fetch("a@box:9")
    assert again["phases"]["fetching"] == {**first["phases"]["fetching"], "worker": "a"}
    assert again["attempt_start"] == first["attempt_start"]
    assert (again["lease"]["worker"], again["deliveries"]) == ("a@box:9", {"1": {"fetching": 3}})
    assert again["heartbeat"] > first["heartbeat"]
    # The next attempt starts its phases afresh.
    builds.doc.update(attempt=2, phase="queued", lease=None)
    restarted = fetch("a@box:9", attempt=2)
    assert restarted["phases"]["fetching"]["start"] > again["heartbeat"]
    assert restarted["attempt_start"] > again["heartbeat"]


def test_a_restart_by_the_reaper_is_in_the_log_with_its_reason(logs: KeptLogs,
                                                                 builds: Builds) -> None:
    restarted = leases.restart(running(), "its worker a@box:7 went silent", CONFIG)
    assert restarted is not None and restarted["attempt"] == 2
    assert logs.lines()[-1] == ("== restarted by the farm: its worker a@box:7 went silent; "
                                "attempt 2 starts from fetch")
    assert not log_store.ends_log([(3, logs.lines()[-1])])  # the build goes on


def test_a_build_lost_too_often_ends_its_log_with_the_failure(logs: KeptLogs,
                                                              builds: Builds) -> None:
    builds.doc["attempt"] = 3
    lost = running(attempt=3)
    assert leases.restart(lost, "no worker of host a is alive", CONFIG) is None
    assert (builds.doc["status"], builds.doc["cause"]) == ("failed", "farm")
    assert logs.lines()[-1] == (
        "== build failed: The build was lost 3 times (no worker of host a is alive; last on "
        "a@box:7). Retry it; operators should check the workers.")
    assert logs.lines()[-1] == log_store.end_line("failed", builds.doc["error"])


def test_a_worker_that_took_the_build_meanwhile_keeps_the_log_as_it_is(
        logs: KeptLogs, builds: Builds) -> None:
    builds.doc["lease"] = {**builds.doc["lease"], "worker": "a@box:8"}
    assert leases.restart(running(), "its worker a@box:7 stopped", CONFIG) is None
    assert leases.end_unheld(running(), Status.CANCELLED, "Cancelled by request.",
                             CONFIG) is None
    assert logs.lines() == ["== building on a (attempt 1)", "#5 RUN make"]


def test_a_store_that_fails_the_line_does_not_undo_the_restart(
        logs: KeptLogs, builds: Builds, caplog: pytest.LogCaptureFixture) -> None:
    logs.failing = True
    restarted = leases.restart(running(), "its worker a@box:7 stopped", CONFIG)
    assert restarted is not None and builds.doc["attempt"] == 2
    assert "could not add to the log of owner-repo: == restarted by the farm" in caplog.text
