"""Worker hosts say they are alive, so the reaper can tell waiting from lost.

The main process of every worker writes ``hosts.{host}.last_seen`` every
heartbeat interval from a thread. A build between phases (its next task
waiting in its host's queue) has a stale build heartbeat but a live host;
only when the host is gone too is the build lost. A warm shutdown marks the
host stopped at once, so its builds are handed back without waiting.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from common.clock import utcnow
from common.config import get_config
from common.db import ensure_indexes, get_db
from common.errors import NoDatabase

log = logging.getLogger(__name__)

_stop = threading.Event()


def beat_once(host: str, state: str = "up") -> None:
    get_db().hosts.update_one({"host": host},
                              {"$set": {"last_seen": utcnow(), "state": state}}, upsert=True)


def _beat_forever(host: str, interval: float) -> None:
    while not _stop.wait(interval):
        try:
            beat_once(host)
        except (NoDatabase, Exception):  # keep beating once the database is back
            log.warning("could not record that %s is alive", host)


@worker_ready.connect
def _start(**_: Any) -> None:
    config = get_config()
    try:
        ensure_indexes(config)
        beat_once(config.worker_host)
    except Exception:
        log.warning("database not reachable at worker start")
    threading.Thread(target=_beat_forever, args=(config.worker_host, config.heartbeat_interval),
                     daemon=True, name="host-liveness").start()


@worker_shutdown.connect
def _stopping(**_: Any) -> None:
    _stop.set()
    try:
        beat_once(get_config().worker_host, state="stopped")
    except Exception:
        log.warning("could not record that this worker stopped")
