"""``GET /metrics``: Prometheus metrics, read from the truth (MongoDB) and the broker
at scrape time, plus the API's own request latencies.

Build counters and histograms are derived from every build record (current
attempts in ``builds``, earlier ones in ``attempts``), so they are true
across hosts and API processes: any API process can be scraped, and
nothing is lost when one restarts. Request latencies are measured in each
API process; under gunicorn they are summed across its processes with
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which
``binder-build api`` sets and empties at start).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

import redis
from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from api.auth import public_read
from api.blueprint import Blueprint
from api.request_metrics import MULTIPROC_ENV, REQUEST_SECONDS
from common import worker_store
from common.config import Config
from common.db import get_db, translate_errors
from common.errors import BadDatabase, NoDatabase
from common.models import FINAL_STATUSES, Phase, Status
from common.redis_client import redis_client
from workers.queues import SHARED_QUEUE, host_queue

RECENT = dt.timedelta(hours=1)

#: Upper bounds (seconds) of the phase and build duration histograms.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
                    math.inf)

#: What a scrape reads of each record.
RECORD_FIELDS = {"build_id": 1, "status": 1, "phase": 1, "config": 1, "cached": 1,
                 "start_time": 1, "end_time": 1, "phases": 1, "lease": 1, "pushed_bytes": 1}


def config_label(record: dict[str, Any]) -> str:
    """The config file type a build was detected with: its file name, ``none`` for a
    repository without one, ``unknown`` when the build ended before detection."""
    config = record.get("config")
    if config:
        return PurePosixPath(config).name
    phases = record.get("phases") or {}
    detected = (phases.get(Phase.DETECTING.value) or {}).get("end") or record.get("cached")
    return "none" if detected else "unknown"


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

    def family(self, name: str, help_text: str, label_names: list[str]) -> Metric:
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        for labels, counts in sorted(self.counts.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(DURATION_BUCKETS, counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            family.add_metric(list(labels), buckets, self.sums[labels])
        return family


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0.0, (end - start).total_seconds())
    return None


def build_metrics(records: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """Counters and histograms of every build in ``records`` (one per build id)."""
    started: Counter[tuple[str, str]] = Counter()
    ended: dict[Status, Counter[tuple[str, str]]] = {s: Counter() for s in FINAL_STATUSES}
    running_by_host: Counter[str] = Counter()
    pushed = 0
    phase_seconds, build_seconds = Histogram(), Histogram()
    for record in records:
        labels = (config_label(record), "true" if record.get("cached") else "false")
        started[labels] += 1
        status = record.get("status")
        if status in ended:
            ended[Status(status)][labels] += 1
        lease = record.get("lease")
        if status == Status.RUNNING.value and lease:
            running_by_host[lease.get("worker") or "unknown"] += 1
        pushed += int(record.get("pushed_bytes") or 0)
        for phase, times in (record.get("phases") or {}).items():
            seconds = _seconds((times or {}).get("start"), (times or {}).get("end"))
            if seconds is not None:
                phase_seconds.observe((phase,), seconds)
        if status == Status.COMPLETED.value:
            seconds = _seconds(record.get("start_time"), record.get("end_time"))
            if seconds is not None:
                build_seconds.observe(labels, seconds)
    counters = [("started", "Builds accepted", started)] + [
        (status.value, f"Builds that ended {status.value}", ended[status])
        for status in FINAL_STATUSES]
    for what, help_text, counts in counters:
        family = CounterMetricFamily(f"binder_builds_{what}",
                                     f"{help_text}, by config file type and cache hit.",
                                     labels=["config", "cached"])
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        yield family
    yield phase_seconds.family("binder_phase_duration_seconds",
                               "Time each phase of a build took (the build's last attempt).",
                               ["phase"])
    yield build_seconds.family("binder_build_duration_seconds",
                               "Start-to-completion time of completed builds.",
                               ["config", "cached"])
    by_host = GaugeMetricFamily("binder_running_builds_by_host",
                                "Running builds by the worker host holding them.",
                                labels=["host"])
    for host, count in sorted(running_by_host.items()):
        by_host.add_metric([host], count)
    yield by_host
    yield CounterMetricFamily("binder_pushed_bytes", "Bytes of image layers pushed to the "
                              "registry (layers it already had are not counted).", value=pushed)


def all_builds(config: Config) -> Iterator[dict[str, Any]]:
    """Every build once: archived attempts first, then the current ones not archived."""
    db = get_db(config)
    seen: set[str] = set()
    for collection in (db.attempts, db.builds):
        for record in collection.find({}, RECORD_FIELDS):
            if record["build_id"] not in seen:
                seen.add(record["build_id"])
                yield record


class FarmCollector(Collector):
    """Builds by status and phase, templates, live workers, queue lengths."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("binder_store_up", "1 when MongoDB answered this scrape.")
        try:
            yield from self._from_store()
            up.add_metric([], 1)
        except (NoDatabase, BadDatabase):
            up.add_metric([], 0)
        yield up
        yield from self._from_broker()

    def _from_store(self) -> Iterator[Metric]:
        with translate_errors():
            db = get_db(self.config)
            statuses = {row["_id"]: row["n"] for row in db.builds.aggregate(
                [{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
            phases = {row["_id"]: row["n"] for row in db.builds.aggregate([
                {"$match": {"status": Status.RUNNING.value}},
                {"$group": {"_id": "$phase", "n": {"$sum": 1}}}])}
            templates = db.templates.estimated_document_count()
            hosts = len(worker_store.live_hosts(worker_store.all_workers(),
                                                self.config.heartbeat_stale))
            recent = list(db.builds.find(
                {"status": Status.COMPLETED.value,
                 "end_time": {"$gte": dt.datetime.now(dt.UTC) - RECENT}},
                {"start_time": 1, "end_time": 1, "cached": 1}))
            records = list(all_builds(self.config))
        yield from build_metrics(records)
        by_status = GaugeMetricFamily("binder_builds", "Builds by status (current attempt).",
                                      labels=["status"])
        for status in Status:
            by_status.add_metric([status.value], statuses.get(status.value, 0))
        yield by_status
        by_phase = GaugeMetricFamily("binder_running_builds", "Running builds by phase.",
                                     labels=["phase"])
        for phase in Phase:
            if phase is not Phase.FINISHED:
                by_phase.add_metric([phase.value], phases.get(phase.value, 0))
        yield by_phase
        yield GaugeMetricFamily("binder_templates", "Stored templates.", value=templates)
        yield GaugeMetricFamily("binder_worker_hosts", "Worker hosts seen alive.", value=hosts)
        durations = sorted((r["end_time"] - r["start_time"]).total_seconds() for r in recent)
        cached = sum(1 for r in recent if r.get("cached"))
        yield GaugeMetricFamily("binder_completed_last_hour", "Builds completed in the last hour.",
                                value=len(recent))
        yield GaugeMetricFamily("binder_cache_hits_last_hour",
                                "Completed builds of the last hour served from the cache.",
                                value=cached)
        median = GaugeMetricFamily("binder_build_seconds_median_last_hour",
                                   "Median start-to-completion time of the last hour's builds.")
        median.add_metric([], durations[len(durations) // 2] if durations else 0.0)
        yield median

    def _from_broker(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily("binder_queue_messages", "Messages waiting in the shared "
                                   "build queue and in each live host's queue.",
                                   labels=["queue"])
        up = GaugeMetricFamily("binder_broker_up", "1 when Redis answered this scrape.")
        try:
            client = redis_client(self.config)
            for queue in (SHARED_QUEUE, *map(host_queue, self._live_hosts())):
                queued.add_metric([queue], client.llen(self.config.broker_prefix + queue))
            up.add_metric([], 1)
            yield queued
        except redis.RedisError:
            up.add_metric([], 0)
        yield up

    def _live_hosts(self) -> list[str]:
        try:
            return sorted(worker_store.live_hosts(worker_store.all_workers(),
                                                  self.config.heartbeat_stale))
        except (NoDatabase, BadDatabase):
            return []


def farm_registry(config: Config) -> CollectorRegistry:
    """The farm's collector and the API's request latencies (summed over every API
    process when ``PROMETHEUS_MULTIPROC_DIR`` is set)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector(config))
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    return registry


bp = Blueprint("metrics", __name__,
               description="Prometheus metrics of builds, queues and workers.")


@bp.route("/metrics")
@public_read
@bp.response(200, {"type": "string"}, content_type="text/plain",
             description="Prometheus text exposition format")
def metrics() -> Response:
    """The farm's metrics, for Prometheus to scrape."""
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """The app's registry, made at its first scrape (the collector reads at every one)."""
    registry = current_app.extensions.get("binder_metrics")
    if registry is None:
        registry = farm_registry(current_app.config["BINDER"])
        current_app.extensions["binder_metrics"] = registry
    return registry
