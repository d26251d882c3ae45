"""The reaper: no accepted build is lost or left running.

It runs in the beat process, on a thread of its own every
``BINDER_REAPER_INTERVAL`` seconds, not as a queued task: a reaper waiting
behind builds for a free worker would come too late. Each pass:

* ends a build whose cancel was requested and that nobody holds any more
  (its worker is quiet for a few heartbeat intervals, or let it go), or whose
  worker holds it but stopped working on it (stuck where the stop did not reach);
* restarts from fetch, as the next attempt, a running build its worker
  lost: the worker process named in its lease stopped, went silent for
  ``BINDER_HEARTBEAT_STALE``, or is alive but let the build go (see
  ``common/worker_store.py``); a build between phases whose host has no live
  worker (a phase handed back by a stopping worker first waits a while for
  its host to come back), or whose next phase went with a restarted broker. After
  ``BINDER_MAX_ATTEMPTS`` it fails the build saying so;
* sends the next phase of a build whose worker died between ending a phase
  and sending the next one (its record, silent for ``BINDER_HEARTBEAT_STALE``
  or stopped, still lists the build), or, alive, could neither send it nor
  start the build again (its record lists the build as ``unsent``): the
  attempt goes on where it was;
* sends again the first phase of a queued build whose message may be lost
  (never sent because the broker was down, or sent before it restarted);
  duplicates are harmless because fetch claims the attempt;
* withdraws from the registry the image of a build that ended while its push
  phase's worker was gone, before verification said yes or no
  (``workers/unverified.py``): the API, which ends such a build when it is
  cancelled, does not talk to the registry.

The build's log says what the reaper did and why (``common/leases.py``
writes it with the record): a restart, or the end line a worker would have
written, and what became of an image withdrawn after the end.

A worker cannot write its record while the database is down, so after an
outage the reaper judges no record older than the moment it could read the
database again (``workers/store_watch.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors
from celery import Celery, Task, shared_task
from celery.signals import beat_init

from common import db, leases, worker_store
from common.clock import utcnow
from common.config import Config
from common.db import translate_errors
from common.errors import NoDatabase
from common.models import BuildRecord, Lease, Phase, Status
from common.naming import image_repository
from common.worker_store import Heard, Holder, WorkerRecord
from workers.celery_app import FarmCelery, task_config
from workers.dispatch import broker_epoch, enqueue_build, following_step, send_next_again
from workers.docker_engine import docker_client
from workers.image_build import BUILT_LABEL
from workers.phase_runner import work_dir_name
from workers.process_logs import bind_build
from workers.store_watch import KeptInStore, StoreWatch
from workers.unverified import withdraw_left

log = logging.getLogger(__name__)

#: A queued build whose message is older than this is sent again.
REQUEUE_AFTER = dt.timedelta(minutes=30)
#: Worker records not written for this long are removed.
FORGET_WORKERS_AFTER = dt.timedelta(days=1)


def verdict(build: BuildRecord, workers: Mapping[str, WorkerRecord], live_hosts: set[str],
            epoch: str | None, now: dt.datetime, config: Config,
            seen_since: dt.datetime, heard: Heard | None = None) -> tuple[str, str] | None:
    """What to do with a running build holding a lease: ``("cancel", why)``,
    ``("restart", why)``, ``("send", why)`` (its next phase) or nothing. ``heard``:
    when the workers last wrote their records, by the reaper's clock
    (``StoreWatch.heard``)."""
    lease = build.get("lease")
    assert lease is not None, "the reaper judges builds holding a lease"
    worker = lease.get("worker")
    too_long = dt.timedelta(seconds=config.heartbeat_stale + config.build_timeout)
    beat = build.get("heartbeat")
    # Held, but its phase is stuck: the guard stops beating once it stopped the phase.
    # Not while the store was away (no beat could be written), as with workers' records.
    stuck = beat is not None and now - max(beat, seen_since) > too_long
    if build.get("cancel_requested"):
        # Quiet counting from the store's return, as for a restart: a worker kept
        # from writing by an outage still holds the build and ends it itself.
        held = worker_store.holder(build, workers, worker_store.quiet_window(config), now,
                                   seen_since, heard)
        if held is not Holder.HELD:
            return "cancel", f"nobody holds it ({held.value})"
        if stuck:
            return "cancel", f"{worker} holds it but has not worked on it for {too_long}"
        return None
    held = worker_store.holder(build, workers, config.heartbeat_stale, now, seen_since, heard)
    if held is Holder.HELD:
        if stuck:
            return "restart", f"{worker} holds it but has not worked on it for {too_long}"
        return None
    if held in (Holder.LET_GO, Holder.SILENT, Holder.STOPPED):
        return "restart", f"its worker {worker} {held.value}"
    host = lease.get("host")
    if host not in live_hosts and not _waits_for_its_host(lease, now, config, seen_since):
        return "restart", f"no worker of host {host} is alive"
    if held in (Holder.UNSENT, Holder.SEND_FAILED) \
            and following_step(build.get("phase")) is not None:
        # Before the broker's epoch: a message never sent was in no broker.
        return "send", (f"the worker {lease.get('handed_by')} that ended {build['phase']} "
                        f"{held.value}")
    if epoch is not None and build.get("broker_epoch") not in (None, epoch):
        return "restart", "the broker restarted and lost its next phase"
    handed = lease.get("handed_at") or lease["since"]
    # A claim waits for the store while it is away: late only counting from its return.
    if now - max(handed, seen_since) > too_long:
        return "restart", f"its next phase did not start within {too_long}"
    return None


#: A phase handed back by a stopping worker waits this many
#: ``BINDER_HEARTBEAT_STALE`` for a worker of its host before the build starts
#: again elsewhere: most orderly stops are restarts (an upgrade, ``up`` again).
HAND_BACK_WAITS = 3


def _waits_for_its_host(lease: Lease, now: dt.datetime, config: Config,
                        seen_since: dt.datetime) -> bool:
    """True while a phase handed back on a stop still waits for its host to come back."""
    if not lease.get("released"):
        return False
    since = max(lease.get("handed_at") or lease["since"], seen_since)
    return (now - since).total_seconds() <= HAND_BACK_WAITS * config.heartbeat_stale


def _running_with_lease(config: Config) -> list[BuildRecord]:
    with translate_errors():
        return list(db.builds(config).find({"status": Status.RUNNING.value,
                                            "lease": {"$ne": None}}))


def unsent_builds(config: Config, live_hosts: set[str] | None = None) -> list[BuildRecord]:
    """Queued builds to send again: never sent, sent to a broker that restarted since,
    sent long ago, or sent to the queue of a host that is no longer alive."""
    epoch = broker_epoch(config)
    if epoch is None:
        return []  # the broker is down: nothing can be sent now
    old = utcnow() - REQUEUE_AFTER

    def unsent(record: BuildRecord) -> bool:
        if record.get("phase") != Phase.QUEUED.value or record.get("lease") is not None:
            return False
        enqueued_at = record.get("enqueued_at")
        placed_on = record.get("placed_on")
        return (record.get("enqueued") is False or record.get("broker_epoch") != epoch
                or (enqueued_at is not None and enqueued_at < old)
                or (live_hosts is not None and placed_on is not None
                    and placed_on not in live_hosts))
    # The store is asked only for the running builds (few, and found by the status
    # index) and the rest is decided here: any further condition made the embedded
    # store scan every build ever made, every pass.
    with translate_errors():
        running = list(db.builds(config).find({"status": Status.RUNNING.value}))
    return [record for record in running if unsent(record)]


def reap(celery: Celery, config: Config, watch: StoreWatch) -> dict[str, int]:
    """One pass of the reaper; returns what it did (for logs and tests)."""
    done = {"cancelled": 0, "restarted": 0, "failed": 0, "resent": 0, "requeued": 0,
            "withdrawn": 0}
    now = utcnow()
    try:
        workers = worker_store.all_workers()
        running = _running_with_lease(config)
        watch.resume(now)
    except NoDatabase:
        watch.failed()
        log.warning("reaper: database unreachable; will try again")
        return done
    watch.succeeded(now)
    heard = watch.heard(workers, now)
    hosts = worker_store.live_hosts(workers, config.heartbeat_stale, now, watch.back_since,
                                    heard)
    epoch = broker_epoch(config)
    try:
        watch.keep(now)
        # What the reaper does to a build is logged as that build's (build=NAME), so
        # following a build through the process logs finds why it started again.
        for build in running:
            with _one_build(build):
                decision = verdict(build, workers, hosts, epoch, now, config,
                                   watch.back_since, heard)
                if decision is not None:
                    _act(celery, build, *decision, config, done)
        for record in unsent_builds(config, hosts):
            with _one_build(record):
                done["requeued"] += enqueue_build(celery, config, record)
        worker_store.prune(FORGET_WORKERS_AFTER)
        # Last: a registry slow to answer delays nothing above.
        done["withdrawn"] += withdraw_left(config, now)
        watch.pass_ended()
    except NoDatabase:
        watch.failed()
        log.warning("reaper: database lost during a pass; will try again")
    return done


@contextlib.contextmanager
def _one_build(record: BuildRecord) -> Iterator[None]:
    """What the reaper does to one build. A build it fails on (the store refuses its
    write, a record no version here writes) is left for the next pass: failing the
    pass, it would hold up every build after it, every pass. A store that stopped
    answering ends the pass (``NoDatabase``)."""
    try:
        # Read with defaults: a record without them is one this reports, not fails on.
        with bind_build(str(record.get("name")), attempt=str(record.get("attempt", "-"))):
            yield
    except NoDatabase:
        raise
    except Exception:
        log.exception("reaper: could not deal with the build %s; the other builds go on",
                      record.get("name"))


def _act(celery: Celery, build: BuildRecord, action: str, reason: str, config: Config,
         done: dict[str, int]) -> None:
    name = build["name"]
    if action == "cancel":
        if leases.end_unheld(build, Status.CANCELLED, "Cancelled by request.",
                              config) is not None:
            log.info("cancelled %s: %s", name, reason)
            done["cancelled"] += 1
        return
    if action == "send":
        if send_next_again(celery, config, build, reason):
            log.warning("sent the next phase of %s: %s", name, reason)
            done["resent"] += 1
        return
    restarted = leases.restart(build, reason, config)
    if restarted is None:
        if build["attempt"] >= config.max_attempts:
            log.warning("failed %s after %s lost attempts: %s", name, build["attempt"], reason)
            done["failed"] += 1
        return
    log.warning("restarting %s as attempt %s: %s", name, restarted["attempt"], reason)
    done["restarted"] += 1
    enqueue_build(celery, config, restarted)


def run_forever(celery: FarmCelery, stop: threading.Event) -> None:
    config = celery.farm_config
    watch = StoreWatch(config, KeptInStore(config))
    while not stop.wait(config.reaper_interval):
        try:
            reap(celery, config, watch)
        except Exception:  # the reaper must outlive any one failed pass
            log.exception("reaper pass failed")


_stop = threading.Event()


@beat_init.connect
def _start_reaper(sender: Any, **_: Any) -> None:
    threading.Thread(target=run_forever, args=(sender.app, _stop), daemon=True,
                     name="reaper").start()


def disk_percent(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


def remove_old_images(config: Config) -> int:
    """Above the high watermark, remove built images, oldest first, to the low one.

    Only images this farm built are touched: labelled as built by a farm, and
    tagged under this farm's registry and image prefix (another farm may share
    the engine, with images it has not pushed yet). They are in the registry
    already, so a host pulls them again if it needs them.
    """
    root = config.data_path
    if disk_percent(root) < config.gc_high_percent:
        return 0
    client = docker_client(config, timeout=120)
    ours = image_repository(config.registry, config.image_prefix, "")
    images = [image for image in client.images.list(filters={"label": BUILT_LABEL})
              if any(tag.startswith(ours) for tag in image.tags)]
    images.sort(key=lambda image: image.attrs.get("Created", ""))
    removed = 0
    for image in images:
        if disk_percent(root) < config.gc_low_percent:
            break
        for tag in image.tags:
            if tag.startswith(ours):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, noprune=False)
        removed += 1
    with contextlib.suppress(docker.errors.APIError):  # untagged farm images serve no one
        client.images.prune(filters={"dangling": True, "label": BUILT_LABEL})
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
        running = {work_dir_name(r["build_id"], r["attempt"]) for r in db.builds(config).find(
            {"status": Status.RUNNING.value}, {"build_id": 1, "attempt": 1})}
    removed = 0
    cutoff = time.time() - config.build_timeout
    for path in root.iterdir():
        if path.name not in running and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return {"removed": removed, "images": images}
