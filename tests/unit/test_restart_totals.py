"""``binder_builds_restarted_total``: each attempt the farm started again because its
worker was lost counts once, by reason, across scrapes, ends, retention, new API
processes and totals kept by a version that did not count restarts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from api.build_totals import SHAPE, BuildTotals, Totals
from common.clock import CLOCK_SLACK
from common.leases import RESTART_LABELS
from tests.unit.test_metrics import FakeStore, record, samples, samples_of

SILENT = {"worker": "a@box:1", "host": "a", "reason": "its worker a@box:1 went silent"}
GONE_HOST = {"worker": None, "host": "a", "reason": "no worker of host a is alive"}
BROKER = {"worker": None, "host": "a", "reason": "the broker restarted and lost its next phase"}


def restarted(got: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {dict(labels)["reason"]: value for (name, labels), value in got.items()
            if name == "binder_builds_restarted_total"}


def lost(*entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A record's ``lost``: entry N for attempt N."""
    return {str(attempt): entry for attempt, entry in enumerate(entries, start=1)}


def test_each_lost_attempt_counts_once_by_its_reason() -> None:
    got = restarted(samples([
        record("completed", "Dockerfile", build_id="a", attempt=3,
               lost=lost(SILENT, GONE_HOST)),
        record("failed", build_id="b", attempt=2, lost=lost(SILENT), cause="farm"),
        record("running", "Dockerfile", build_id="c", end_time=None, phase="queued",
               attempt=2, lost=lost({**BROKER, "reason": "spilled coffee"})),
        record("completed", "Dockerfile", build_id="d"),
    ]))
    # Every reason is there from 0, so a rate needs no first restart to start from.
    assert got == {**dict.fromkeys(RESTART_LABELS, 0), "worker_silent": 2, "host_lost": 1,
                   "other": 1}


def test_a_running_builds_restarts_never_go_back_nor_count_twice() -> None:
    """Restarted while running (counted at each scrape from the record), restarted
    again, ended, deleted by retention, then read by a new API process: the counter
    follows its lost attempts and never goes down."""
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    running = record("running", "Dockerfile", build_id="r", end_time=None, phase="queued",
                     attempt=2, lost=lost(SILENT))
    store.builds.records = [running]
    builds = BuildTotals()
    assert restarted(samples_of(builds.refresh(store)))["worker_silent"] == 1  # type: ignore[arg-type]
    store.builds.records = [{**running, "attempt": 3, "lost": lost(SILENT, BROKER)}]
    twice = restarted(samples_of(builds.refresh(store)))  # type: ignore[arg-type]
    assert (twice["worker_silent"], twice["broker_lost"]) == (1, 1)
    store.builds.records = [record("completed", "Dockerfile", build_id="r", end_time=now,
                                   attempt=3, lost=lost(SILENT, BROKER))]
    for _ in range(2):  # ended, then read again within the clock slack
        assert restarted(samples_of(builds.refresh(store))) == twice  # type: ignore[arg-type]
    store.builds.records = []  # retention deleted it
    assert restarted(samples_of(builds.refresh(store))) == twice  # type: ignore[arg-type]
    assert restarted(samples_of(BuildTotals().refresh(store))) == twice  # type: ignore[arg-type]


def kept_before_restarts(since: dt.datetime, counted: list[str]) -> dict[str, Any]:
    """Totals as the version before restarts were counted kept them: two completed
    builds, no ``restarted``."""
    return {"_id": "ended-builds", "shape": {**SHAPE, "version": 2}, "since": since,
            "counted": [{"build_id": build_id, "end": since} for build_id in counted],
            "totals": {"started": [["Dockerfile", "false", 2]],
                       "ended": [["completed", [["Dockerfile", "false", 2]]],
                                 ["failed", []], ["cancelled", []]],
                       "pushed": 0, "phase_seconds": [], "build_seconds": []}}


def test_totals_kept_before_restarts_were_counted_start_from_the_builds_they_stand_for() -> None:
    """An API upgraded on a farm whose totals were kept without restarts reads the
    restarts of the builds those totals counted (once), counts those that ended since
    or still run as any scrape does, and keeps them all in the new shape: no build's
    restart counts twice, and none goes when retention deletes its build after."""
    store, now = FakeStore(), dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(minutes=1)
    store.metrics.documents["ended-builds"] = kept_before_restarts(since, counted=["edge"])
    store.attempts.records = [
        # Counted by the kept totals: long before they reach, and just before (named).
        record("completed", "Dockerfile", build_id="old", end_time=now - dt.timedelta(days=3),
               lost=lost(SILENT)),
        record("completed", "Dockerfile", build_id="edge", end_time=since, lost=lost(GONE_HOST))]
    store.builds.records = [
        # Ended since (read by the refresh, as every scrape does), and running.
        record("failed", build_id="new", end_time=now, cause="farm", lost=lost(SILENT)),
        record("running", build_id="live", end_time=None, phase="queued", attempt=2,
               lost=lost(BROKER))]
    # "edge" ended within CLOCK_SLACK of ``since``: the refresh reads it again, and skips it.
    assert store.attempts.records[1]["end_time"] >= since - CLOCK_SLACK
    first = BuildTotals()
    got = restarted(samples_of(first.refresh(store)))  # type: ignore[arg-type]
    assert got == {**dict.fromkeys(RESTART_LABELS, 0), "worker_silent": 2, "host_lost": 1,
                   "broker_lost": 1}
    # The other totals resume as kept: the two completed builds, one failed since.
    whole = samples_of(first.refresh(store))  # type: ignore[arg-type]
    assert restarted(whole) == got  # read from the builds once, on resuming
    assert whole[("binder_builds_completed_total",
                  (("cached", "false"), ("config", "Dockerfile")))] == 2
    assert store.metrics.documents["ended-builds"]["shape"] == SHAPE
    # Kept with the restarts now: retention deleting the old builds takes nothing back.
    store.attempts.records = []
    assert restarted(samples_of(BuildTotals().refresh(store))) == got  # type: ignore[arg-type]


def test_restarts_are_kept_and_read_back() -> None:
    totals = Totals.of([record("cancelled", build_id="x", attempt=2, lost=lost(GONE_HOST))])
    again = Totals.from_doc(totals.to_doc())
    assert again.restarted == totals.restarted == {"host_lost": 1}
