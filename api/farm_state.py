"""What the farm is doing: worker hosts and their builds, and how much is waiting.

Read for the farm's page from the truth (MongoDB: host records and running
builds) and the broker (Redis: messages in each queue). A host is ``lost``
when it says ``up`` but has not been seen for ``BINDER_HEARTBEAT_STALE``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis

from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.models import Phase, Status
from common.redis_client import redis_client
from workers.queues import SHARED_QUEUE, host_queue


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def worker_hosts(config: Config) -> list[dict[str, Any]]:
    """Each host with its state, when it was last seen, and the builds it runs now."""
    stale = utcnow() - dt.timedelta(seconds=config.heartbeat_stale)
    with translate_errors():
        db = get_db(config)
        hosts = list(db.hosts.find({}, {"_id": 0}).sort("host", 1))
        running = list(db.builds.find({"status": Status.RUNNING.value, "worker": {"$ne": None}},
                                      {"_id": 0, "name": 1, "worker": 1}))
    builds: dict[str, list[str]] = {}
    for record in running:
        builds.setdefault(record["worker"], []).append(record["name"])
    result = []
    for host in hosts:
        seen = _aware(host.get("last_seen"))
        state = host.get("state") or "up"
        if state == "up" and (seen is None or seen < stale):
            state = "lost"
        result.append({"host": host["host"], "state": state, "last_seen": seen,
                       "workers": [{"name": host["host"], "state": state, "last_seen": seen,
                                    "builds": sorted(builds.get(host["host"], []))}]})
    return result


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
