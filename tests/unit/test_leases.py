"""Who holds a running build, and what the reaper does with one nobody holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from common.config import load_config
from common.leases import RESTART_LABELS, restart_label
from common.worker_store import Holder, WorkerRecord, holder, live_hosts, quiet_window
from workers.reaper import StoreWatch, verdict

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = load_config(environ={}, heartbeat_interval=1, heartbeat_stale=10, build_timeout=600)
W = "a@box:10"


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def worker(name: str = W, seen: float = 0.5, builds: tuple[str, ...] = ("b1",),
           state: str = "up", host: str = "a", unsent: tuple[str, ...] = ()) -> WorkerRecord:
    return WorkerRecord(worker=name, node=name.split(":")[0], host=host, hostname="box",
                        pid=int(name.rsplit(":", 1)[1]), state=state, started=ago(3600),
                        last_seen=ago(seen), builds=list(builds), unsent=list(unsent))


def build(lease_worker: str | None = W, since: float = 30, handed: float | None = None,
          handed_by: str | None = None, **fields: Any) -> dict[str, Any]:
    lease: dict[str, Any] = {"worker": lease_worker, "host": "a", "attempt": 1,
                             "since": ago(since)}
    if handed is not None:
        lease.update(handed_at=ago(handed), handed_by=handed_by)
    return {"build_id": "b1", "name": "n", "attempt": 1, "status": "running",
            "phase": "building", "phases": {"building": {"start": ago(since)}},
            "lease": lease, "heartbeat": ago(1), **fields}


def workers(*records: WorkerRecord) -> dict[str, WorkerRecord]:
    return {record["worker"]: record for record in records}


@pytest.mark.parametrize(("record", "found", "expected"), [
    (build(), workers(worker()), Holder.HELD),
    # Alive, wrote after taking the lease, no longer lists the build: let go.
    (build(), workers(worker(builds=())), Holder.LET_GO),
    # Its last record predates the lease: it may not list the build yet.
    (build(since=0.1), workers(worker(seen=0.5, builds=())), Holder.HELD),
    (build(), workers(worker(seen=11)), Holder.SILENT),
    (build(), workers(worker(state="stopped")), Holder.STOPPED),
    (build(), workers(worker(state="draining")), Holder.HELD),
    # No record at all: silent once the lease is older than the window.
    (build(since=30), {}, Holder.SILENT),
    (build(since=2), {}, Holder.HELD),
    (build(lease_worker=None, handed=5), workers(worker(builds=())), Holder.HANDED_ON),
    # The worker that ended the last phase still sends the next one.
    (build(lease_worker=None, handed=5, handed_by=W), workers(worker()), Holder.HELD),
    # It went silent with the build still listed: it died before sending the next phase.
    (build(lease_worker=None, handed=5, handed_by=W), workers(worker(seen=11)),
     Holder.UNSENT),
    (build(lease_worker=None, handed=5, handed_by=W), workers(worker(state="stopped")),
     Holder.UNSENT),
    # It sent the next phase and let the build go before it went silent.
    (build(lease_worker=None, handed=5, handed_by=W), workers(worker(seen=11, builds=())),
     Holder.HANDED_ON),
    # Alive, it could send neither the next phase nor the build's restart.
    (build(lease_worker=None, handed=5, handed_by=W),
     workers(worker(builds=(), unsent=("b1",))), Holder.SEND_FAILED),
    ({**build(), "lease": None}, {}, Holder.NOBODY),
])
def test_holder(record: dict[str, Any], found: dict[str, WorkerRecord], expected: Holder) -> None:
    assert holder(record, found, 10, NOW) is expected


def test_after_a_store_outage_records_are_not_judged_older_than_its_end() -> None:
    quiet = workers(worker(seen=25))
    assert holder(build(), quiet, 10, NOW) is Holder.SILENT
    assert holder(build(), quiet, 10, NOW, seen_since=ago(3)) is Holder.HELD


def test_live_hosts_are_hosts_with_a_worker_up_and_seen() -> None:
    found = workers(worker("a@box:1", host="a"), worker("b@box:2", host="b", seen=30),
                    worker("c@box:3", host="c", state="stopped"),
                    worker("d@box:4", host="d", state="draining"))
    assert live_hosts(found, 10, NOW) == {"a"}


def test_quiet_window_is_a_few_heartbeats() -> None:
    assert quiet_window(CONFIG) == 3.0
    assert quiet_window(CONFIG.replace(heartbeat_interval=5)) == 11.0


LONG_AGO = ago(3600)


def judge(record: dict[str, Any], found: dict[str, WorkerRecord], hosts: set[str] | None = None,
          epoch: str | None = "e1", seen_since: dt.datetime = LONG_AGO) -> str | None:
    decision = verdict(record, found, {"a"} if hosts is None else hosts, epoch, NOW, CONFIG,
                       seen_since)
    return None if decision is None else decision[0]


def test_a_held_build_is_left_alone() -> None:
    assert judge(build(), workers(worker())) is None


@pytest.mark.parametrize("found", [
    workers(worker(builds=())),  # let go (it gave the build back)
    workers(worker(seen=11)),  # silent: killed, or its host is gone
    workers(worker(state="stopped")),  # stopped (warm shutdown)
])
def test_a_build_its_worker_does_not_hold_is_restarted(found: dict[str, WorkerRecord]) -> None:
    assert judge(build(), found) == "restart"


def test_a_worker_silent_during_a_store_outage_is_not_judged_lost() -> None:
    assert judge(build(), workers(worker(seen=25)), seen_since=ago(2)) is None


def test_a_build_that_holds_but_never_beats_is_restarted_after_the_build_timeout() -> None:
    assert judge(build(heartbeat=ago(700)), workers(worker())) == "restart"


def test_between_phases_a_build_waits_for_a_live_host() -> None:
    waiting = build(lease_worker=None, handed=20, broker_epoch="e1")
    idle = workers(worker(builds=()))
    assert judge(waiting, idle) is None
    assert judge(waiting, idle, hosts=set()) == "restart"  # its host is gone
    assert judge(waiting, idle, epoch="e2") == "restart"  # the broker restarted
    assert judge(waiting, idle, epoch=None) is None  # the broker is unreachable
    assert judge(build(lease_worker=None, handed=700), idle) == "restart"


def unsent(**fields: Any) -> dict[str, Any]:
    """A build whose detect phase ended on ``W``, which then went silent still holding it
    (SIGKILLed before it sent the next phase)."""
    record = build(lease_worker=None, handed=15, handed_by=W, broker_epoch="e1", **fields)
    record.update(phase="detecting", phases={"detecting": {"start": ago(30), "end": ago(15)}})
    return record


def test_a_next_phase_its_worker_died_before_sending_is_sent_again() -> None:
    """Not left until ``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT``: once the
    worker that ended a phase is silent, its next phase is sent (a duplicate of one it
    did send is harmless: the phase is claimed once)."""
    dead = workers(worker(seen=11), worker("a@box:11", builds=()))
    assert judge(unsent(), dead) == "send"
    assert judge(unsent(), workers(worker(seen=5))) is None  # maybe still sending it
    # The broker restarted meanwhile: the phase was not in it either, so it is sent.
    assert judge(unsent(), dead, epoch="e2") == "send"
    assert judge(unsent(), dead, hosts=set()) == "restart"  # nowhere to send it
    # Sent again already: it waits in its host's queue like any handed on build.
    sent = unsent()
    sent["lease"]["resent_at"] = ago(5)
    assert judge(sent, dead) is None
    # A phase handed back on a stop is back in its queue: never sent again.
    released = unsent()
    released["lease"]["released"] = "detecting"
    assert judge(released, dead) is None


def test_a_next_phase_its_live_worker_could_not_send_is_sent_at_once() -> None:
    """Its worker could not reach the broker to send it, nor MongoDB to start the build
    again: not left looking handed on until ``BINDER_HEARTBEAT_STALE`` +
    ``BINDER_BUILD_TIMEOUT``, its next phase is sent as soon as the reaper can."""
    alive = workers(worker(builds=(), unsent=("b1",)))
    assert judge(unsent(), alive) == "send"
    decision = verdict(unsent(), alive, {"a"}, "e1", NOW, CONFIG, LONG_AGO)
    assert decision is not None and decision[1].endswith(f"{W} that ended detecting "
                                                         "could not send it on")
    assert judge(unsent(), alive, hosts=set()) == "restart"  # nowhere to send it
    sent = unsent()
    sent["lease"]["resent_at"] = ago(5)
    assert judge(sent, alive) is None  # sent already: it waits in its host's queue


def test_a_phase_handed_back_on_a_stop_waits_a_while_for_its_host() -> None:
    def handed_back(seconds: float) -> dict[str, Any]:
        record = build(lease_worker=None, handed=seconds, handed_by=W, broker_epoch="e1")
        record["lease"]["released"] = "building"
        return record
    stopped = workers(worker(builds=(), state="stopped"))
    # No worker of its host is alive: it is restarting (HAND_BACK_WAITS x 10 s stale).
    assert judge(handed_back(20), stopped, hosts=set()) is None
    assert judge(handed_back(31), stopped, hosts=set()) == "restart"  # it did not come back
    # Measured from when the reaper could see the store, not from the hand-back alone.
    assert judge(handed_back(100), stopped, hosts=set(), seen_since=ago(5)) is None
    assert judge(handed_back(20), stopped, epoch="e2") == "restart"  # the broker restarted


def test_cancel_requested_ends_a_build_nobody_holds_within_the_quiet_window() -> None:
    cancelled = build(cancel_requested=True)
    assert judge(cancelled, workers(worker(seen=0.5))) is None  # its worker ends it
    assert judge(cancelled, workers(worker(seen=4))) == "cancel"  # killed a moment ago
    assert judge(cancelled, workers(worker(builds=()))) == "cancel"
    assert judge(build(lease_worker=None, handed=1, cancel_requested=True), {}) == "cancel"


def test_a_cancel_is_not_taken_from_a_worker_the_store_kept_quiet() -> None:
    """After a store outage its worker could not write its record: the build it holds
    is not ended under it as one nobody holds (its worker sees the cancel at its next
    beat and ends the build itself), but only once it stays quiet after the return."""
    cancelled = build(cancel_requested=True)
    quiet_since_outage = workers(worker(seen=25))
    assert judge(cancelled, quiet_since_outage, seen_since=ago(1)) is None
    assert judge(cancelled, quiet_since_outage, seen_since=ago(4)) == "cancel"
    assert judge(cancelled, workers(worker(builds=())), seen_since=ago(1)) == "cancel"


def test_a_cancelled_build_its_stuck_worker_holds_is_ended_after_the_build_timeout() -> None:
    """A worker that lives and lists the build, but whose phase no longer beats (stuck
    where the guard's stop did not reach), does not keep a cancelled build running:
    it is ended as a build it held without beating would be started again."""
    stuck = build(cancel_requested=True, heartbeat=ago(700))
    assert judge(stuck, workers(worker())) == "cancel"
    assert judge(build(cancel_requested=True, heartbeat=ago(300)), workers(worker())) is None


def reason(record: dict[str, Any], found: dict[str, WorkerRecord], hosts: set[str] | None = None,
           epoch: str | None = "e1") -> str:
    decision = verdict(record, found, {"a"} if hosts is None else hosts, epoch, NOW, CONFIG,
                       LONG_AGO)
    assert decision is not None and decision[0] == "restart", decision
    return decision[1]


@pytest.mark.parametrize(("record", "found", "hosts", "epoch", "label"), [
    (build(), workers(worker(seen=11)), None, "e1", "worker_silent"),
    (build(), {}, None, "e1", "worker_silent"),  # never wrote its record
    (build(), workers(worker(state="stopped")), None, "e1", "worker_stopped"),
    (build(), workers(worker(builds=())), None, "e1", "worker_let_go"),
    (build(heartbeat=ago(700)), workers(worker()), None, "e1", "heartbeat_stopped"),
    (build(lease_worker=None, handed=20, broker_epoch="e1"), {}, set(), "e1", "host_lost"),
    (build(lease_worker=None, handed=20, broker_epoch="e1"), {}, None, "e2", "broker_lost"),
    (build(lease_worker=None, handed=700), {}, None, "e1", "next_phase_late"),
])
def test_each_reason_the_reaper_restarts_a_build_for_has_its_label(
        record: dict[str, Any], found: dict[str, WorkerRecord], hosts: set[str] | None,
        epoch: str | None, label: str) -> None:
    assert restart_label(reason(record, found, hosts, epoch)) == label


def test_restart_labels_are_a_fixed_set() -> None:
    """What a worker that could not send the next phase writes, and any reason no
    version here writes (a worker's name in it never makes a label of its own)."""
    assert restart_label("its next phase could not be sent (Connection refused)") == \
        "broker_lost"
    for other in ("the moon", "", None, "its worker x@y:1 sneezed"):
        assert restart_label(other) == "other"
    worker_names = ["odd stopped", "went silent", "let it go"]
    assert {restart_label(f"its worker {name} went silent")
            for name in worker_names} == {"worker_silent"}
    assert set(RESTART_LABELS) == {"worker_silent", "worker_stopped", "worker_let_go",
                                   "heartbeat_stopped", "host_lost", "broker_lost",
                                   "next_phase_late", "store_refused", "other"}


def passes(clock_off: float, writes_until: float) -> list[str | None]:
    """What the reaper decides, one pass every 3 s for 60 s, of a build held by a worker
    whose clock is ``clock_off`` s ahead of the beat host's, and that writes its record
    every second until ``writes_until`` s (then it is killed)."""
    watch = StoreWatch(CONFIG)
    watch.back_since = LONG_AGO
    decisions: list[str | None] = []
    for second in range(0, 60, 3):
        now = NOW + dt.timedelta(seconds=second)
        written = NOW + dt.timedelta(seconds=min(second, writes_until) + clock_off)
        record = {**worker(), "last_seen": written}
        found = workers(record)
        heard = watch.heard(found, now)
        hosts = live_hosts(found, CONFIG.heartbeat_stale, now, LONG_AGO, heard)
        held = build(since=30, heartbeat=now - dt.timedelta(seconds=1))
        held["lease"]["since"] = NOW - dt.timedelta(seconds=30 - clock_off)
        decision = verdict(held, found, hosts, "e1", now, CONFIG, LONG_AGO, heard)
        decisions.append(None if decision is None else decision[0])
    return decisions


@pytest.mark.parametrize("clock_off", [0, -300, 300])
def test_the_reaper_judges_a_worker_by_its_writes_not_by_its_hosts_clock(
        clock_off: float) -> None:
    """The hosts' clocks may differ (the README asks for ten minutes at most): a worker
    whose clock is behind the beat host's is not lost while it keeps writing, and one
    whose clock is ahead is lost once it stops, after ``BINDER_HEARTBEAT_STALE``."""
    assert passes(clock_off, writes_until=60) == [None] * 20
    lost = passes(clock_off, writes_until=12)
    # Killed at 12 s (its last write read by the pass at 12 s): silent 10 s later,
    # restarted by the pass at 24 s.
    assert lost == [None] * 8 + ["restart"] * 12


def test_a_heartbeat_stopped_by_a_store_outage_is_not_a_stuck_phase() -> None:
    """A store that was away for longer than the build timeout took no heartbeat: the
    worker that holds the build (waiting to write its end) is not stuck, and the build
    is not started again as the store comes back, before the worker's write lands. Its
    heartbeat is judged from when the reaper could read the store again."""
    back = ago(5)
    assert judge(build(heartbeat=ago(4000)), workers(worker()), seen_since=back) is None
    assert judge(build(cancel_requested=True, heartbeat=ago(4000)), workers(worker()),
                 seen_since=back) is None
    # Still stuck once the store has been back as long as a stuck phase is judged.
    assert judge(build(heartbeat=ago(4000)), workers(worker()), seen_since=ago(700)) \
        == "restart"


def test_a_next_phase_held_up_by_a_store_outage_is_not_late() -> None:
    """Its claim waited for the store (holding its message): the build is not started
    again as the store comes back, before the claim lands."""
    waiting = build(lease_worker=None, handed=4000, broker_epoch="e1")
    idle = workers(worker(builds=()))
    assert judge(waiting, idle, seen_since=ago(5)) is None
    assert judge(waiting, idle, seen_since=ago(700)) == "restart"
