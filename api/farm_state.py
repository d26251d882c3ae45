"""What the farm is doing: worker hosts and their builds, and how much is waiting.

Read for the farm's page from the truth (MongoDB: worker process records,
see ``common/worker_store.py``, and running builds) and the broker (Redis:
messages in each queue). A worker process is ``lost`` when it says ``up``
but has not been seen for ``BINDER_HEARTBEAT_STALE``; a host is ``up`` while
one of its processes is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from common import host_store, worker_store
from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.host_store import HostRecord
from common.models import Phase, Status
from common.redis_client import redis_client
from common.worker_store import WorkerRecord
from workers.queues import SHARED_QUEUE, host_queue

#: A host's state from its processes' states, the first that any has.
HOST_STATE_ORDER = ("up", "draining", "lost", "stopped")


def worker_hosts(config: Config) -> list[dict[str, Any]]:
    """Each host with its state, when it was last seen, and its worker processes
    with the builds each runs now."""
    with translate_errors():
        running = {record["build_id"]: record["name"] for record in get_db(config).builds.find(
            {"status": Status.RUNNING.value}, {"_id": 0, "build_id": 1, "name": 1})}
    hosts = hosts_view(worker_store.all_workers().values(), running, config.heartbeat_stale,
                       utcnow())
    drained = {host["host"] for host in host_store.all_hosts() if host.get("draining")}
    for host in hosts:
        if host["state"] == "up" and host["host"] in drained:
            host["state"] = "draining"
    return hosts


def hosts_view(workers: Iterable[WorkerRecord], names: Mapping[str, str], stale: float,
               now: dt.datetime) -> list[dict[str, Any]]:
    """``workers`` grouped by host, sorted by host and then process name.

    ``names`` maps the ids of running builds to their names (a process may
    still list a build that just ended). A stopped process is shown only
    while its host has no other: its host is then ``stopped``.
    """
    by_host: dict[str, list[dict[str, Any]]] = {}
    for worker in workers:
        state = worker["state"]
        if state == "up" and not worker_store.seen(worker, stale, now):
            state = "lost"
        by_host.setdefault(worker["host"], []).append({
            "name": worker["worker"], "state": state, "last_seen": worker["last_seen"],
            "builds": sorted(names[b] for b in worker["builds"] if b in names)})
    result = []
    for host, processes in sorted(by_host.items()):
        states = {process["state"] for process in processes}
        state = next(s for s in HOST_STATE_ORDER if s in states)
        if state != "stopped":
            processes = [p for p in processes if p["state"] != "stopped"]
        result.append({"host": host, "state": state,
                       "last_seen": max(p["last_seen"] for p in processes),
                       "workers": sorted(processes, key=lambda p: p["name"])})
    return result


def _state(host: Mapping[str, Any], stale: dt.datetime) -> str:
    """``stopped``, ``lost`` (says up, not seen for a while), ``draining`` or ``up``."""
    seen = host.get("last_seen")
    state = host.get("state") or "up"
    if state == "up" and (seen is None or seen < stale):
        return "lost"
    if state == "up" and host.get("draining"):
        return "draining"
    return str(state)


def docker_host(config: Config, host: HostRecord,
                running: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """One Docker host's record for the API (see ``common/host_store.py``), with its state.

    ``running`` (the builds on each host) is read from the builds themselves when
    not given: the advert's copy may be a heartbeat old, and an operator who
    drains a host waits on this list.
    """
    if running is None:
        running = host_store.running_builds(host["host"])
    stale = utcnow() - dt.timedelta(seconds=config.heartbeat_stale)
    return {**host, "state": _state(host, stale), "draining": bool(host.get("draining")),
            "running": running.get(host["host"], [])}


def docker_hosts(config: Config) -> list[dict[str, Any]]:
    """Every Docker host a worker ever ran as."""
    running = host_store.running_builds()
    return [docker_host(config, host, running) for host in host_store.all_hosts()]


def queue_lengths(config: Config, hosts: list[str]) -> dict[str, Any]:
    """Builds waiting for a worker and running, and the messages in each queue.

    A queue whose length Redis cannot tell (the broker is down) is ``None``.
    """
    with translate_errors():
        db = get_db(config)
        waiting = db.builds.count_documents({"status": Status.RUNNING.value,
                                             "phase": Phase.QUEUED.value})
        running = db.builds.count_documents({"status": Status.RUNNING.value}) - waiting
    names = [SHARED_QUEUE, *(host_queue(host) for host in hosts)]
    queues = []
    for name in names:
        try:
            messages: int | None = int(redis_client(config).llen(config.broker_prefix + name))
        except redis.RedisError:
            messages = None
        queues.append({"name": name, "messages": messages})
    return {"waiting": waiting, "running": running, "queues": queues}
