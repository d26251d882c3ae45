"""``GET /metrics``: Prometheus metrics, read from the truth (MongoDB) and the broker
at scrape time, plus the API's own request latencies.

Build counters and histograms are derived from every build record (current
attempts in ``builds``, earlier ones in ``attempts``; each process reads the
ended ones once, see ``api/build_totals.py``), so they are true across hosts
and API processes: any API process can be scraped, and nothing is lost when
one restarts. Request latencies are measured in each
API process; under gunicorn they are summed across its processes with
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which
``binder-build api`` sets and empties at start).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator

import redis
from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from api.auth import public_read
from api.blueprint import Blueprint
from api.build_totals import BuildTotals
from api.request_metrics import MULTIPROC_ENV, REQUEST_SECONDS
from common import template_store, worker_store
from common.config import Config
from common.db import get_db, ping, translate_errors
from common.errors import BadDatabase, NoDatabase
from common.models import Status
from common.redis_client import redis_client
from workers.queues import SHARED_QUEUE, host_queue

RECENT = dt.timedelta(hours=1)


class FarmCollector(Collector):
    """Build totals and running builds, templates, live workers, queue lengths, and how
    long the store and the broker took to answer.

    Nothing here reads every build record at each scrape: the totals read ended
    builds once (``BuildTotals``), and the rest asks only for running builds and
    the last hour's, through their indexes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.builds = BuildTotals()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("binder_store_up", "1 when MongoDB answered this scrape.")
        took = GaugeMetricFamily(
            "binder_store_ping_seconds", "Seconds MongoDB took to answer this scrape's ping "
            "(until it failed, when binder_store_up is 0).")
        try:
            time_ping(lambda: ping(self.config), took)
            yield from self._from_store()
            up.add_metric([], 1)
        except (NoDatabase, BadDatabase):
            up.add_metric([], 0)
        yield up
        yield took
        yield from self._from_broker()

    def _from_store(self) -> Iterator[Metric]:
        with translate_errors():
            db = get_db(self.config)
            templates = template_store.count_templates()
            hosts = len(worker_store.live_hosts(worker_store.all_workers(),
                                                self.config.heartbeat_stale))
            # Current attempts and those a later start of the same name archived: a
            # repository built again within the hour counts each time.
            query = {"status": Status.COMPLETED.value,
                     "end_time": {"$gte": dt.datetime.now(dt.UTC) - RECENT}}
            fields = {"build_id": 1, "start_time": 1, "end_time": 1, "cached": 1}
            recent = list({record["build_id"]: record
                           for collection in (db.attempts, db.builds)
                           for record in collection.find(query, fields)}.values())
            totals = self.builds.refresh(db)
        yield from totals.metrics()
        yield GaugeMetricFamily("binder_templates", "Stored templates.", value=templates)
        yield GaugeMetricFamily("binder_worker_hosts", "Worker hosts seen alive.", value=hosts)
        # Cache hits end in milliseconds: among them, a slow build would not move the median.
        durations = sorted((r["end_time"] - r["start_time"]).total_seconds()
                           for r in recent if not r.get("cached"))
        cached = sum(1 for r in recent if r.get("cached"))
        yield GaugeMetricFamily("binder_completed_last_hour", "Builds completed in the last hour.",
                                value=len(recent))
        yield GaugeMetricFamily("binder_cache_hits_last_hour",
                                "Completed builds of the last hour served from the cache.",
                                value=cached)
        median = GaugeMetricFamily(
            "binder_build_seconds_median_last_hour",
            "Median start-to-completion time of the builds completed in the last hour that "
            "built their image (cache hits are left out; 0 when none).")
        median.add_metric([], durations[len(durations) // 2] if durations else 0.0)
        yield median

    def _from_broker(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily("binder_queue_messages", "Messages waiting in the shared "
                                   "build queue and in each live host's queue.",
                                   labels=["queue"])
        up = GaugeMetricFamily("binder_broker_up", "1 when Redis answered this scrape.")
        took = GaugeMetricFamily(
            "binder_broker_ping_seconds", "Seconds Redis took to answer this scrape's ping "
            "(until it failed, when binder_broker_up is 0).")
        try:
            client = redis_client(self.config)
            time_ping(client.ping, took)
            for queue in (SHARED_QUEUE, *map(host_queue, self._live_hosts())):
                queued.add_metric([queue], client.llen(self.config.broker_prefix + queue))
            up.add_metric([], 1)
            yield queued
        except redis.RedisError:
            up.add_metric([], 0)
        yield up
        yield took

    def _live_hosts(self) -> list[str]:
        try:
            return sorted(worker_store.live_hosts(worker_store.all_workers(),
                                                  self.config.heartbeat_stale))
        except (NoDatabase, BadDatabase):
            return []


def time_ping(round_trip: Callable[[], object], seconds: GaugeMetricFamily) -> None:
    """Call ``round_trip`` (a ping of a service) and add to ``seconds`` how long it took,
    or took to fail: a service that answers slowly shows before it stops answering.
    Raises what ``round_trip`` raises."""
    started = time.perf_counter()
    try:
        round_trip()
    finally:
        seconds.add_metric([], time.perf_counter() - started)


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
    # The whole header, as given: a ``mimetype`` would have Flask add a second charset.
    return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """The app's registry, made at its first scrape (the collector reads at every one)."""
    registry = current_app.extensions.get("binder_metrics")
    if registry is None:
        registry = farm_registry(current_app.config["BINDER"])
        current_app.extensions["binder_metrics"] = registry
    return registry
