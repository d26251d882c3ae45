"""Counters and histograms of every build for ``/metrics``, kept by each API process.

Reading every build record at every scrape costs time and memory in
proportion to the farm's history (seconds and hundreds of MB per scrape at
100,000 builds). A build that has ended no longer changes, so the totals
of ended builds are read once and then brought up to date with only the
builds that ended since the last scrape, plus the running ones (few, and
read again each time). They are kept in the store after each scrape, where
a new API process starts from them (a first read of 20,000 builds on the
embedded store takes seconds). Every process thus reports the same totals
from the same store, restarts lose nothing, and a build deleted by
retention stays counted (counters only grow, as Prometheus expects).

Failed builds are counted by their ``cause`` too (``FailureCause``), which the
worker or the reaper that failed the build recorded. Failures recorded before
causes were kept count as ``unknown``, as do those in totals kept by an
earlier version (their causes were not kept, and reading the builds again
would lose the ones retention deleted, taking the counter back).

Attempts the farm started again because their worker was lost (``lost`` of a
record, one entry per lost attempt, see ``common/leases.py``) are counted by
``restart_label``: a running build's each time it is read (its entries only
grow), an ended one's once, with its other totals. Totals kept by a version
before restarts were counted did not count them: on resuming from those, the
restarts of the ended builds they stand for are read once from the builds
still stored (``lost_in_kept``), so the counter starts with them and never
counts one twice.

A build counts once, by ``build_id``, whether found in ``builds`` or in the
``attempts`` it was archived to. Builds that ended are read by their
``end_time`` as far back as ``CLOCK_SLACK`` before the last scrape, which
is how far the clocks of the hosts writing it may differ.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from pymongo.database import Database
from pymongo.errors import PyMongoError

from common.clock import CLOCK_SLACK, utcnow
from common.leases import RESTART_LABELS, restart_label
from common.models import FINAL_STATUSES, FailureCause, Phase, Status

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the phase and build duration histograms.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
                    math.inf)

#: What a scrape reads of each record.
RECORD_FIELDS = {"_id": 0, "build_id": 1, "status": 1, "phase": 1, "config": 1, "cached": 1,
                 "start_time": 1, "end_time": 1, "phases": 1, "lease": 1, "pushed_bytes": 1,
                 "attempt": 1, "lost": 1, "cause": 1}

ENDED = [status.value for status in FINAL_STATUSES]

#: Records per batch of a read: the first scrape reads every build, a batch at a
#: time (the store's default, 16 MB, would take ~80 MB of a worker's memory at once).
BATCH = 500


def config_label(record: dict[str, Any]) -> str:
    """The config file type a build was detected with: its file name, ``none`` for a
    repository without one, ``unknown`` when the build ended before detection."""
    config = record.get("config")
    if config:
        return PurePosixPath(config).name
    phases = record.get("phases") or {}
    detected = (phases.get(Phase.DETECTING.value) or {}).get("end") or record.get("cached")
    return "none" if detected else "unknown"


#: The cause label of failures recorded before causes were kept.
UNKNOWN_CAUSE = "unknown"


def cause_label(record: dict[str, Any]) -> str:
    """A failed build's cause: the one recorded, ``unknown`` for a failure recorded
    before causes were kept."""
    try:
        return FailureCause(str(record.get("cause"))).value
    except ValueError:
        return UNKNOWN_CAUSE


#: The labels of each status's counter: a failure's cause too.
ENDED_LABELS = {status: ["config", "cached", *(["cause"] if status is Status.FAILED else [])]
                for status in FINAL_STATUSES}


class Histogram:
    """Observations into ``DURATION_BUCKETS``, per label values."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], list[int]] = defaultdict(
            lambda: [0] * len(DURATION_BUCKETS))
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        for index, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.counts[labels][index] += 1
                break
        self.sums[labels] += seconds

    def add(self, other: Histogram) -> None:
        for labels, counts in other.counts.items():
            mine = self.counts[labels]
            for index, count in enumerate(counts):
                mine[index] += count
            self.sums[labels] += other.sums[labels]

    def to_doc(self) -> list[dict[str, Any]]:
        return [{"labels": list(labels), "counts": counts, "sum": self.sums[labels]}
                for labels, counts in self.counts.items()]

    @classmethod
    def from_doc(cls, doc: list[dict[str, Any]]) -> Histogram:
        histogram = cls()
        for row in doc:
            labels = tuple(row["labels"])
            histogram.counts[labels] = list(row["counts"])
            histogram.sums[labels] = float(row["sum"])
        return histogram

    def family(self, name: str, help_text: str, label_names: list[str]) -> Metric:
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        for labels, counts in sorted(self.counts.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(DURATION_BUCKETS, counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            family.add_metric(list(labels), buckets, self.sums[labels])
        return family


def queued_since(record: dict[str, Any]) -> dt.datetime | None:
    """When a queued build joined the queue: when it was started, or when the reaper
    started it again as its current attempt."""
    attempt = int(record.get("attempt") or 1)
    restarted = ((record.get("lost") or {}).get(str(attempt - 1)) or {}).get("at")
    since = restarted or record.get("start_time")
    return since if isinstance(since, dt.datetime) else None


def lost_attempts(record: dict[str, Any]) -> Counter[str]:
    """The attempts of ``record`` its worker lost, by ``restart_label`` of their reason."""
    return Counter(restart_label((entry or {}).get("reason"))
                   for entry in (record.get("lost") or {}).values())


def _earliest(*times: dt.datetime | None) -> dt.datetime | None:
    return min((time for time in times if time is not None), default=None)


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0.0, (end - start).total_seconds())
    return None


class Totals:
    """What a set of build records adds up to: counters, histograms, running builds."""

    def __init__(self) -> None:
        self.started: Counter[tuple[str, ...]] = Counter()
        #: By ``ENDED_LABELS``: config and cache hit, and a failure's cause.
        self.ended: dict[Status, Counter[tuple[str, ...]]] = {s: Counter()
                                                              for s in FINAL_STATUSES}
        self.running_by_host: Counter[str] = Counter()
        self.running_by_phase: Counter[str] = Counter()
        #: When the build that has waited longest for a worker joined the queue.
        self.oldest_queued: dt.datetime | None = None
        self.pushed = 0
        self.phase_seconds, self.build_seconds = Histogram(), Histogram()
        #: Lost attempts the farm started again, by ``restart_label``.
        self.restarted: Counter[str] = Counter()

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Totals:
        totals = cls()
        for record in records:
            totals.count(record)
        return totals

    def count(self, record: dict[str, Any]) -> None:
        labels = (config_label(record), "true" if record.get("cached") else "false")
        status = record.get("status")
        # A running build counts as started once detection named its config: its labels
        # are then final (a cache hit ends in fetch). Counted before, under "unknown",
        # it would leave that series when detected, and a counter would go down.
        if status != Status.RUNNING.value or labels[0] != "unknown":
            self.started[labels] += 1
        self.restarted.update(lost_attempts(record))
        if status == Status.FAILED.value:
            self.ended[Status.FAILED][(*labels, cause_label(record))] += 1
        elif status in self.ended:
            self.ended[Status(status)][labels] += 1
        if status == Status.RUNNING.value:
            phase = record.get("phase") or Phase.QUEUED.value
            self.running_by_phase[phase] += 1
            if phase == Phase.QUEUED.value:
                self.oldest_queued = _earliest(self.oldest_queued, queued_since(record))
            lease = record.get("lease")
            if lease:
                # The host, not the worker process: one series per host, whatever
                # its processes (a worker's name changes with each restart).
                self.running_by_host[lease.get("host") or lease.get("worker")
                                     or "unknown"] += 1
        if status not in self.ended:
            return
        # What a build did (its phases' times, the bytes it pushed) is taken once it has
        # ended: a running one restarted by the reaper runs its phases again and pushes
        # anew, so counted while running it would take a bucket, a sum or the bytes back.
        self.pushed += int(record.get("pushed_bytes") or 0)
        for phase, times in (record.get("phases") or {}).items():
            seconds = _seconds((times or {}).get("start"), (times or {}).get("end"))
            if seconds is not None:
                self.phase_seconds.observe((phase,), seconds)
        if status == Status.COMPLETED.value:
            seconds = _seconds(record.get("start_time"), record.get("end_time"))
            if seconds is not None:
                self.build_seconds.observe(labels, seconds)

    def plus(self, other: Totals) -> Totals:
        """A new ``Totals`` of both."""
        both = Totals()
        for part in (self, other):
            both.started.update(part.started)
            for status, counts in part.ended.items():
                both.ended[status].update(counts)
            both.running_by_host.update(part.running_by_host)
            both.running_by_phase.update(part.running_by_phase)
            both.oldest_queued = _earliest(both.oldest_queued, part.oldest_queued)
            both.pushed += part.pushed
            both.phase_seconds.add(part.phase_seconds)
            both.build_seconds.add(part.build_seconds)
            both.restarted.update(part.restarted)
        return both

    def to_doc(self) -> dict[str, Any]:
        """The counters and histograms as a store document (running builds are not kept:
        they are read again at every refresh). Lists, not maps: config file names hold
        dots, which a document's keys cannot."""
        def rows(counts: Counter[tuple[str, ...]]) -> list[list[Any]]:
            return [[*labels, count] for labels, count in counts.items()]
        return {"started": rows(self.started),
                "ended": [[status.value, rows(counts)] for status, counts in self.ended.items()],
                "pushed": self.pushed, "phase_seconds": self.phase_seconds.to_doc(),
                "build_seconds": self.build_seconds.to_doc(),
                "restarted": [[label, count] for label, count in self.restarted.items()]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Totals:
        """The totals ``to_doc`` wrote; failures kept without a cause (by an earlier
        version) count as cause ``unknown``; totals kept without restarts have none
        (``BuildTotals`` reads those from the builds)."""
        def counter(rows: list[list[Any]], width: int = 2) -> Counter[tuple[str, ...]]:
            counts: Counter[tuple[str, ...]] = Counter()
            for *labels, count in rows:
                labels += [UNKNOWN_CAUSE] * (width - len(labels))
                counts[tuple(labels)] += count
            return counts
        totals = cls()
        totals.started = counter(doc["started"])
        for status, rows in doc["ended"]:
            totals.ended[Status(status)] = counter(rows, len(ENDED_LABELS[Status(status)]))
        totals.pushed = int(doc["pushed"])
        totals.phase_seconds = Histogram.from_doc(doc["phase_seconds"])
        totals.build_seconds = Histogram.from_doc(doc["build_seconds"])
        totals.restarted = Counter({label: count for label, count in doc.get("restarted", [])})
        return totals

    def metrics(self) -> Iterator[Metric]:
        counters = [("started", "Builds accepted", self.started, ["config", "cached"])] + [
            (status.value, f"Builds that ended {status.value}", self.ended[status],
             ENDED_LABELS[status]) for status in FINAL_STATUSES]
        for what, help_text, counts, label_names in counters:
            by = ", by config file type and cache hit" + (
                f" and cause ({', '.join([*FailureCause, UNKNOWN_CAUSE])})"
                if "cause" in label_names else "")
            family = CounterMetricFamily(f"binder_builds_{what}", f"{help_text}{by}.",
                                         labels=label_names)
            for labels, count in sorted(counts.items()):
                family.add_metric(list(labels), count)
            yield family
        yield self.phase_seconds.family(
            "binder_phase_duration_seconds",
            "Time each phase of an ended build took (its last attempt).", ["phase"])
        yield self.build_seconds.family("binder_build_duration_seconds",
                                        "Start-to-completion time of completed builds.",
                                        ["config", "cached"])
        by_host = GaugeMetricFamily("binder_running_builds_by_host",
                                    "Running builds by the worker host holding them.",
                                    labels=["host"])
        for host, count in sorted(self.running_by_host.items()):
            by_host.add_metric([host], count)
        yield by_host
        by_phase = GaugeMetricFamily("binder_running_builds", "Running builds by phase.",
                                     labels=["phase"])
        for phase in Phase:
            if phase is not Phase.FINISHED:
                by_phase.add_metric([phase.value], self.running_by_phase[phase.value])
        yield by_phase
        waited = GaugeMetricFamily(
            "binder_oldest_queued_build_seconds",
            "How long the build that has waited longest for a worker has waited (0 when none "
            "waits).")
        waited.add_metric([], 0.0 if self.oldest_queued is None else
                          max(0.0, (utcnow() - self.oldest_queued).total_seconds()))
        yield waited
        yield CounterMetricFamily("binder_pushed_bytes", "Bytes of image layers pushed to the "
                                  "registry (layers it already had are not counted).",
                                  value=self.pushed)
        restarted = CounterMetricFamily(
            "binder_builds_restarted", "Attempts the farm started again from fetch because "
            f"their worker was lost, by reason ({', '.join(RESTART_LABELS)}).",
            labels=["reason"])
        for label in RESTART_LABELS:  # every reason, from 0: a rate needs no first sample
            restarted.add_metric([label], self.restarted[label])
        yield restarted


#: Where the totals of ended builds are kept between processes: one document of the
#: ``metrics`` collection. Its ``shape`` is checked on reading, so totals kept by another
#: version (other buckets) are read again from the builds rather than misread.
SNAPSHOT = {"_id": "ended-builds"}
SHAPE = {"version": 3, "buckets": [str(bound) for bound in DURATION_BUCKETS]}
#: Totals kept before restarts were counted (2), and before failures had causes too (1):
#: read, their restarts read again from the builds (``lost_in_kept``), their failures
#: without a cause as cause ``unknown``.
BEFORE_RESTARTS = ({**SHAPE, "version": 2}, {**SHAPE, "version": 1})
SHAPES_READ = (SHAPE, *BEFORE_RESTARTS)


def lost_in_kept(db: Database[dict[str, Any]], since: dt.datetime,
                 counted: dict[str, dt.datetime]) -> Counter[str]:
    """The lost attempts of the ended builds that totals kept up to ``since`` (with the
    builds they name as ``counted``) stand for, of those still stored: exactly the ended
    builds the next ``refresh`` leaves out, so none is counted twice."""
    horizon, seen = since - CLOCK_SLACK, set[str]()
    restarted: Counter[str] = Counter()
    fields = {"_id": 0, "build_id": 1, "end_time": 1, "lost": 1}
    for collection, status in itertools.product((db.attempts, db.builds), ENDED):
        for record in collection.find({"status": status}, fields, batch_size=BATCH):
            build_id, end = record["build_id"], record.get("end_time")
            kept = build_id in counted or (isinstance(end, dt.datetime) and end < horizon)
            if kept and build_id not in seen:
                seen.add(build_id)
                restarted.update(lost_attempts(record))
    return restarted


class BuildTotals:
    """The totals of every build in one store, brought up to date at each ``refresh``.

    After each refresh the totals of ended builds, and how far they reach, are
    written to the store; a process's first refresh starts from there, so an API
    restarted on a long history reads only what ended since another process's
    last scrape. Those totals are the same fold of the same records whichever
    process made them.
    """

    def __init__(self) -> None:
        self._ended = Totals()
        # Builds counted as ended whose end may still be read again, and when each ended.
        self._counted: dict[str, dt.datetime] = {}
        self._since: dt.datetime | None = None
        self._lock = threading.Lock()  # two scrapes at once count each build once

    def refresh(self, db: Database[dict[str, Any]]) -> Totals:
        """Count the builds that ended since the last refresh; the totals with the
        running builds. Raises what the store raises (nothing is counted then)."""
        with self._lock:
            if self._since is None:
                self._resume(db)
            now = utcnow()
            # Running builds first: one that ends meanwhile is then found ended below
            # and counted once, as ended, rather than in neither query.
            running = {record["build_id"]: record for record in db.builds.find(
                {"status": Status.RUNNING.value}, RECORD_FIELDS)}
            since = {} if self._since is None else {
                "end_time": {"$gte": self._since - CLOCK_SLACK}}
            ended, counted = Totals(), dict(self._counted)
            # One query per status: an equality and a range use the (status, end_time)
            # index, where the store would scan every record for a list of statuses.
            for collection, status in itertools.product((db.attempts, db.builds), ENDED):
                for record in collection.find({"status": status, **since}, RECORD_FIELDS,
                                              batch_size=BATCH):
                    build_id = record["build_id"]
                    running.pop(build_id, None)
                    if build_id not in counted:
                        counted[build_id] = record.get("end_time") or now
                        ended.count(record)
            # Only now that every read succeeded does the state move on.
            self._ended = self._ended.plus(ended)
            horizon = now - CLOCK_SLACK
            self._counted = {build_id: end for build_id, end in counted.items()
                             if end >= horizon}
            self._since = now
            self._keep(db)
            return self._ended.plus(Totals.of(running.values()))

    def _resume(self, db: Database[dict[str, Any]]) -> None:
        """Start from the totals another process (or this one, before a restart) kept."""
        kept = db.metrics.find_one(SNAPSHOT)
        if not kept or kept.get("shape") not in SHAPES_READ:
            return
        ended = Totals.from_doc(kept["totals"])
        counted = {row["build_id"]: row["end"] for row in kept["counted"]}
        if kept["shape"] in BEFORE_RESTARTS:
            ended.restarted = lost_in_kept(db, kept["since"], counted)
        self._ended, self._counted, self._since = ended, counted, kept["since"]

    def _keep(self, db: Database[dict[str, Any]]) -> None:
        """Write the totals of ended builds for the next process's first refresh; a
        store that refuses only costs that process a whole read."""
        try:
            db.metrics.replace_one(SNAPSHOT, {
                **SNAPSHOT, "shape": SHAPE, "since": self._since,
                "totals": self._ended.to_doc(),
                "counted": [{"build_id": build_id, "end": end}
                            for build_id, end in self._counted.items()]}, upsert=True)
        except PyMongoError as exc:
            log.warning("could not keep the build totals for other API processes: %s", exc)

