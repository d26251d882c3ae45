"""Putting builds on the queue. Used by the API and the reaper.

A build goes to the queue of the host placement chooses
(``workers/placement.py``), or to the shared queue when no host is free.

A message is only a hint: the build record is written first, so a failed
enqueue (broker down) leaves ``enqueued: false`` and the reaper sends it
once the broker is back.
"""

from __future__ import annotations

import logging

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from common import host_store
from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.models import STEPS, BuildRecord
from common.redis_client import redis_client
from workers.placement import queue_for
from workers.queues import shown_name, task_name

log = logging.getLogger(__name__)

#: One try on a connection of its own with short socket timeouts, so a request
#: waits about a second on a broker that is down or frozen (accepts connections,
#: never answers), not the worker's long, retrying timeouts.
SEND_TIMEOUT = 1.0
SEND_OPTIONS = {"socket_timeout": SEND_TIMEOUT, "socket_connect_timeout": SEND_TIMEOUT,
                "retry_on_timeout": False, "max_retries": 0}


def broker_epoch(config: Config) -> str | None:
    """The broker's run id; it changes when Redis restarts (and loses queues)."""
    try:
        return str(redis_client(config).info("server").get("run_id"))
    except redis.RedisError:
        return None


def enqueue_build(celery: Celery, config: Config, record: BuildRecord) -> bool:
    """Send the first step of ``record``'s current attempt; True when sent."""
    build_id, attempt = record["build_id"], record["attempt"]
    queue, host = queue_for(config, record["name"])
    host_store.note_placement(build_id, attempt, host, config)  # before: see there
    try:
        with celery.connection_for_write(transport_options=SEND_OPTIONS,
                                         connect_timeout=SEND_TIMEOUT) as connection:
            celery.send_task(task_name(STEPS[0]), args=[build_id, attempt], queue=queue,
                             shadow=shown_name(STEPS[0], record["name"]),
                             connection=connection, retry=False)
    except (OperationalError, redis.RedisError, OSError) as exc:
        log.warning("broker unavailable; %s stays queued for the reaper: %s",
                    record["name"], exc)
        host_store.note_placement(build_id, attempt, None, config)  # not sent: on no host
        return False
    with translate_errors():
        get_db(config).builds.update_one(
            {"build_id": build_id, "attempt": attempt},
            {"$set": {"enqueued": True, "enqueued_at": utcnow(),
                      "broker_epoch": broker_epoch(config)}})
    return True
