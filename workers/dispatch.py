"""Putting builds on the queue. Used by the API, the phases and the reaper.

A build goes to the queue of the host placement chooses
(``workers/placement.py``), or to the shared queue when no host is free.
Each step after the first goes where the step before it ran
(``step_queue``).

A message is only a hint: the build record is written first, so a failed
enqueue (broker down) leaves ``enqueued: false`` and the reaper sends it
once the broker is back; a next step the worker that ended the step before
died without sending, the reaper sends (``send_next_again``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

import redis
from celery import Celery
from kombu import Connection
from kombu.connection import ConnectionPool
from kombu.exceptions import LimitExceeded, OperationalError

from common import host_store, leases
from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.models import STEPS, BuildRecord, Step
from common.redis_client import redis_client
from workers.placement import queue_for
from workers.queues import SHARED_QUEUE, host_queue, shown_name, task_name

log = logging.getLogger(__name__)

#: One try with short socket timeouts, so a request
#: waits about a second on a broker that is down or frozen (accepts connections,
#: never answers), not the worker's long, retrying timeouts.
SEND_TIMEOUT = 1.0
SEND_OPTIONS = {"socket_timeout": SEND_TIMEOUT, "socket_connect_timeout": SEND_TIMEOUT,
                "retry_on_timeout": False, "max_retries": 0}
#: Send connections a process keeps (one per API thread at most is in use at once);
#: past them a send opens a connection for itself.
SEND_CONNECTIONS = 16

#: Each app's send connections, with the process they belong to (a forked child
#: makes its own: a connection is never shared across a fork).
_send_pools: weakref.WeakKeyDictionary[Celery, tuple[int, ConnectionPool]] = \
    weakref.WeakKeyDictionary()
_send_pools_lock = threading.Lock()


def broker_epoch(config: Config) -> str | None:
    """The broker's run id; it changes when Redis restarts (and loses queues)."""
    try:
        return str(redis_client(config).info("server").get("run_id"))
    except redis.RedisError:
        return None


def step_queue(step: Step, host: str) -> str:
    """The queue of ``step`` of a build whose step before it ran on ``host``: that
    host's, when ``step`` needs what the step before left there."""
    return host_queue(host) if step.same_host else SHARED_QUEUE


def following_step(phase: str | None) -> Step | None:
    """The step after the one that runs in ``phase`` (None after the last, or for a
    phase no step runs in)."""
    states = [step.state.value for step in STEPS]
    if phase not in states[:-1]:
        return None
    return STEPS[states.index(phase) + 1]


def _send_connection(celery: Celery) -> Connection:
    """A connection with the short send options (``SEND_OPTIONS``): one this process
    already has when one is free, so a start does not pay for a new connection to the
    broker (its handshake is several round trips)."""
    with _send_pools_lock:
        owner, pool = _send_pools.get(celery, (None, None))
        if pool is None or owner != os.getpid():
            pool = celery.connection_for_write(
                transport_options=SEND_OPTIONS,
                connect_timeout=SEND_TIMEOUT).Pool(limit=SEND_CONNECTIONS)
            _send_pools[celery] = (os.getpid(), pool)
    try:
        return pool.acquire(block=False)
    except LimitExceeded:
        return celery.connection_for_write(transport_options=SEND_OPTIONS,
                                           connect_timeout=SEND_TIMEOUT)


def _send(celery: Celery, step: Step, record: BuildRecord, queue: str) -> None:
    """Send ``step`` of ``record``'s attempt to ``queue`` with one short try. A pooled
    connection goes back to its pool afterwards, closed when the send failed (it
    connects again when next used); one opened for this send is closed."""
    with _send_connection(celery) as connection:
        celery.send_task(task_name(step), args=[record["build_id"], record["attempt"]],
                         queue=queue, shadow=shown_name(step, record["name"]),
                         connection=connection, retry=False)


def enqueue_build(celery: Celery, config: Config, record: BuildRecord,
                  placed: tuple[str, str | None] | None = None) -> bool:
    """Send the first step of ``record``'s current attempt; True when sent.

    ``placed``: the queue and host (``queue_for``) the record was stored with as its
    ``placed_on`` (a start places its build before storing it, a write less); else
    they are chosen and noted here, before the send (see ``note_placement``).

    The record keeps the epoch of the broker read before the send: one that
    restarts right after it took the step has lost it, and the reaper, seeing
    another epoch, sends it again (read after, the epoch would name the new
    broker, which never had it). One that restarts between the read and the
    send only costs a duplicate, which fetch's claim drops.
    """
    build_id, attempt = record["build_id"], record["attempt"]
    if placed is None:
        queue, host = queue_for(config, record["name"])
        host_store.note_placement(build_id, attempt, host, config)  # before: see there
    else:
        queue, host = placed
    epoch = broker_epoch(config)
    try:
        _send(celery, STEPS[0], record, queue)
    except (OperationalError, redis.RedisError, OSError) as exc:
        log.warning("broker unavailable; %s stays queued for the reaper: %s",
                    record["name"], exc)
        host_store.note_placement(build_id, attempt, None, config)  # not sent: on no host
        return False
    with translate_errors():
        get_db(config).builds.update_one(
            {"build_id": build_id, "attempt": attempt},
            {"$set": {"enqueued": True, "enqueued_at": utcnow(), "broker_epoch": epoch}})
    return True


def send_next_again(celery: Celery, config: Config, record: BuildRecord, reason: str) -> bool:
    """Send the step after the one ``record``'s attempt ended, which the worker that
    ended it did not send (``reason``: it died first); True when sent.

    The record notes it (``leases.note_sent_again``), with the epoch of the broker
    read before sending (see ``enqueue_build``). A duplicate of a message the worker did send is
    harmless: only one claim of a step succeeds (``build_store.start_phase``).
    """
    step = following_step(record.get("phase"))
    host = (record.get("lease") or {}).get("host")
    if step is None or host is None:
        return False
    epoch = broker_epoch(config)
    try:
        _send(celery, step, record, step_queue(step, host))
    except (OperationalError, redis.RedisError, OSError) as exc:
        log.warning("broker unavailable; could not send %s of %s: %s", step.name,
                    record["name"], exc)
        return False
    leases.note_sent_again(record, step.name, epoch, reason, config)
    return True
