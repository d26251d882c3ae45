"""The reaper (Celery beat): no accepted build is lost or left running.

* A running build whose heartbeat is stale and whose worker host is gone
  (silent, or stopped) is restarted from fetch on the shared queue with
  attempt + 1, up to ``max_attempts``; then it fails saying so.
* A queued build whose message may be lost (never sent because the broker
  was down, or sent before the broker restarted) is sent again; duplicates
  are harmless because fetch claims the attempt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import docker.errors
from celery import Celery, Task, shared_task

from common import build_store, db
from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.errors import NoDatabase
from common.models import BuildRecord, Phase, Status
from workers.celery_app import task_config
from workers.dispatch import broker_epoch, enqueue_build
from workers.docker_engine import docker_client
from workers.phase_runner import work_dir_name

log = logging.getLogger(__name__)

#: A queued build whose message is older than this is sent again.
REQUEUE_AFTER = dt.timedelta(minutes=30)


def live_hosts(config: Config) -> set[str]:
    since = utcnow() - dt.timedelta(seconds=config.heartbeat_stale)
    with translate_errors():
        return {doc["host"] for doc in get_db(config).hosts.find(
            {"last_seen": {"$gte": since}, "state": "up"})}


def lost_builds(config: Config) -> list[BuildRecord]:
    """Running builds holding a lease whose heartbeat went quiet and that cannot go on:
    their host is gone, or the message for their next phase was lost."""
    now = utcnow()
    quiet = now - dt.timedelta(seconds=max(3 * config.heartbeat_interval, 10))
    stale = now - dt.timedelta(seconds=config.heartbeat_stale)
    alive = live_hosts(config)
    epoch = broker_epoch(config)
    with translate_errors():
        candidates = db.builds(config).find({"status": Status.RUNNING.value,
                                           "lease": {"$ne": None},
                                           "heartbeat": {"$lt": quiet}})
        lost = []
        for record in candidates:
            lease = record.get("lease")
            host = lease["worker"] if lease else None
            # Even on a live host, a build silent for far longer than any
            # queue wait is lost (its task vanished).
            beat = record["heartbeat"]
            very_stale = beat is not None and beat < stale - dt.timedelta(
                seconds=config.build_timeout)
            # Handed on through a broker that has restarted since: the
            # message carrying the next phase is gone.
            message_lost = epoch is not None and record.get("broker_epoch") != epoch
            if host not in alive or very_stale or message_lost:
                lost.append(record)
        return lost


def restart(celery: Celery, record: BuildRecord, config: Config) -> None:
    build_id, attempt = record["build_id"], record["attempt"]
    lease = record.get("lease")
    host = lease["worker"] if lease else "an unknown host"
    if attempt >= config.max_attempts:
        build_store.finish(build_id, attempt, Status.FAILED,
                      f"The worker was lost {attempt} times; last on {host}. "
                      "Retry the build; operators should check the workers.")
        log.warning("failed %s after %s lost attempts", record["name"], attempt)
        return
    with translate_errors():
        restarted = db.builds(config).find_one_and_update(
            {"build_id": build_id, "attempt": attempt, "status": Status.RUNNING.value,
             "heartbeat": record["heartbeat"]},
            {"$set": {"attempt": attempt + 1, "phase": Phase.QUEUED.value, "lease": None,
                      "heartbeat": None, "enqueued": False,
                      f"lost.{attempt}": {"worker": host, "at": utcnow()}}},
            return_document=True)
    if restarted is not None:
        log.warning("restarting %s (attempt %s) lost on %s", record["name"], attempt + 1, host)
        enqueue_build(celery, config, restarted)


def unsent_builds(config: Config) -> list[BuildRecord]:
    epoch = broker_epoch(config)
    if epoch is None:
        return []  # the broker is down: nothing can be sent now
    old = utcnow() - REQUEUE_AFTER
    with translate_errors():
        return list(db.builds(config).find({
            "status": Status.RUNNING.value, "phase": Phase.QUEUED.value, "lease": None,
            "$or": [{"enqueued": False}, {"broker_epoch": {"$ne": epoch}},
                    {"enqueued_at": {"$lt": old}}]}))


@shared_task(bind=True, name="binder.reap", ignore_result=True)
def reap(self: Task) -> dict[str, int]:
    """One pass of the reaper; returns what it did (for logs and tests)."""
    config = task_config(self)
    try:
        lost = lost_builds(config)
        for record in lost:
            restart(self.app, record, config)
        unsent = unsent_builds(config)
        for record in unsent:
            enqueue_build(self.app, config, record)
    except NoDatabase:
        log.warning("reaper: database unreachable; will try again")
        return {"restarted": 0, "requeued": 0}
    return {"restarted": len(lost), "requeued": len(unsent)}


def disk_percent(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


def remove_old_images(config: Config) -> int:
    """Above the high watermark, remove built images, oldest first, to the low one.

    Only images this farm built (labelled) are touched; they are in the
    registry already, so a host pulls them again if it needs them.
    """
    root = config.data_path
    if disk_percent(root) < config.gc_high_percent:
        return 0
    client = docker_client(config, timeout=120)
    images = client.images.list(filters={"label": "org.binder-build.name"})
    images.sort(key=lambda image: image.attrs.get("Created", ""))
    removed = 0
    for image in images:
        if disk_percent(root) < config.gc_low_percent:
            break
        for tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, noprune=False)
        removed += 1
    with contextlib.suppress(docker.errors.APIError):
        client.images.prune(filters={"dangling": True})
    return removed


@shared_task(bind=True, name="binder.collect_garbage", ignore_result=True)
def collect_garbage(self: Task) -> dict[str, int]:
    """Remove stale work dirs, and old images when the disk is filling up."""
    config = task_config(self)
    images = remove_old_images(config)
    root = config.work_root
    if not root.exists():
        return {"removed": 0, "images": images}
    with translate_errors():
        running = {work_dir_name(r["build_id"], r["attempt"]) for r in get_db(config).builds.find(
            {"status": Status.RUNNING.value}, {"build_id": 1, "attempt": 1})}
    removed = 0
    cutoff = time.time() - config.build_timeout
    for path in root.iterdir():
        if path.name not in running and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return {"removed": removed, "images": images}
