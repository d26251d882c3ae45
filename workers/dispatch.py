"""Putting builds on the queue. Used by the API and the reaper.

A message is only a hint: the build record is written first, so a failed
enqueue (broker down) leaves ``enqueued: false`` and the reaper sends it
once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.exceptions import OperationalError

from common.clock import utcnow
from common.config import get_config
from common.db import get_db, translate_errors
from common.redis_client import redis_client
from workers.celery_app import app
from workers.queues import SHARED_QUEUE

log = logging.getLogger(__name__)

#: Bounded retries so a request never waits long on a dead broker.
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.3}


def broker_epoch() -> str | None:
    """The broker's run id; it changes when Redis restarts (and loses queues)."""
    try:
        return str(redis_client(get_config()).info("server").get("run_id"))
    except redis.RedisError:
        return None


def enqueue_fetch(record: dict[str, Any]) -> bool:
    """Send the first phase of ``record``'s current attempt; True when sent."""
    build_id, attempt = record["build_id"], record["attempt"]
    try:
        app.send_task("binder.fetch", args=[build_id, attempt], queue=SHARED_QUEUE,
                      retry=True, retry_policy=RETRY_POLICY)
    except (OperationalError, redis.RedisError, OSError) as exc:
        log.warning("broker unavailable; %s stays queued for the reaper: %s",
                    record["name"], exc)
        return False
    with translate_errors():
        get_db().builds.update_one(
            {"build_id": build_id, "attempt": attempt},
            {"$set": {"enqueued": True, "enqueued_at": utcnow(), "broker_epoch": broker_epoch()}})
    return True
