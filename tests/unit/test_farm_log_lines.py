"""What a build's log says when its worker process died: a build failed after too many
deaths (or cancelled) as its phase is claimed again ends its log with the end line."""

from __future__ import annotations

import datetime as dt
from typing import Any

import fakeredis
import pytest
from pymongo.errors import AutoReconnect

import common.log_store as log_store
from common import build_store
from common.config import load_config
from common.models import Phase, Status
from workers import phase_runner
from workers.outages import OutageWait

CONFIG = load_config(environ={}, max_deliveries=2, max_attempts=3)
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


class Logs:
    """A ``logs`` collection holding what a phase's process stored before it died."""

    def __init__(self) -> None:
        self.docs = [log_store.log_document("b1", 1, ["== building on a (attempt 1)",
                                                      "#5 RUN make"])]
        self.failing = False

    def find(self, query: dict[str, Any], *args: object) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["build_id"] == query["build_id"]]

    def insert_one(self, doc: dict[str, Any]) -> None:
        if self.failing:
            raise AutoReconnect("down")
        self.docs.append(doc)

    def lines(self) -> list[str]:
        return [line for doc in sorted(self.docs, key=lambda d: d["seq"])
                for line in doc["lines"]]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    kept = Logs()
    monkeypatch.setattr(log_store, "get_db", lambda: type("Db", (), {"logs": kept})())
    stream = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(log_store, "redis_client", lambda config: stream)
    return kept


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
        logs: Logs, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], end: str) -> None:
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
