"""Worker liveness: which worker processes are alive, and which builds each holds.

One record per worker process in the ``workers`` collection, keyed by its
name ``<host-id>@<hostname>:<pid>``. Each process writes its own every
heartbeat interval, and at once when the builds it holds change (see
``workers/liveness.py``):

    worker      the name (the key)
    node        the Celery node (``<host-id>@<hostname>``) the process belongs to
    host        the host id: the Docker host, whose queue is ``host.<id>``
    hostname    the machine
    pid         the process
    state       ``up``, ``draining`` (takes no new builds) or ``stopped``
    started     when the process started
    last_seen   when the record was written
    builds      ids of the builds the process holds: a phase of theirs runs
                there, or it is sending their next phase
    unsent      ids of builds whose phase the process ended but could send the
                next phase of neither to the broker nor, starting the build
                again, write to MongoDB (both were away): the reaper sends it

A build's lease names the worker process that took its current phase and
the host it runs on (between phases: the host, and the process that handed
it on). The API and the reaper read both to tell a build its
worker still runs from one nobody holds: the lease's worker is quiet or
stopped (killed, lost with its host), or it wrote its record after taking
the lease and no longer lists the build (it let the build go).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import Enum
from typing import Any, NotRequired, TypedDict, cast

from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors


class WorkerRecord(TypedDict):
    worker: str
    node: str
    host: str
    hostname: str
    pid: int
    state: str
    started: dt.datetime
    last_seen: dt.datetime
    builds: list[str]
    unsent: NotRequired[list[str]]  # absent from records of earlier versions


class Holder(Enum):
    """Who holds a running build, as its lease and the worker records say."""

    NOBODY = "nobody"  # no lease: waiting for its first phase
    HELD = "held"  # the lease's worker is alive and lists it
    HANDED_ON = "handed on"  # between phases, waiting in its host's queue
    UNSENT = "died handing it on"  # between phases, its next phase maybe never sent
    SEND_FAILED = "could not send it on"  # between phases, its next phase never sent
    LET_GO = "let it go"  # the lease's worker is alive but no longer holds it
    SILENT = "went silent"  # the lease's worker has not been seen for the window
    STOPPED = "stopped"  # the lease's worker stopped


#: States in which nobody runs the build's current phase.
NOT_HELD = frozenset({Holder.NOBODY, Holder.LET_GO, Holder.SILENT, Holder.STOPPED})


def quiet_window(config: Config) -> float:
    """Seconds after which a worker that writes every heartbeat interval is quiet.

    Enough to end a cancelled build nobody runs within seconds; restarting a
    build waits for ``BINDER_HEARTBEAT_STALE`` instead, since a wrong restart
    wastes the work done so far and a wrong cancel does not.
    """
    return max(2.0 * config.heartbeat_interval + 1.0, 3.0)


def write(record: WorkerRecord) -> None:
    with translate_errors():
        get_db().workers.replace_one({"worker": record["worker"]}, dict(record), upsert=True)


def mark_node(node: str, state: str) -> None:
    """Set the state of every process record of the Celery node ``node``."""
    with translate_errors():
        get_db().workers.update_many({"node": node},
                                     {"$set": {"state": state, "last_seen": utcnow()}})


def find(name: str) -> WorkerRecord | None:
    with translate_errors():
        record: Any = get_db().workers.find_one({"worker": name}, {"_id": 0})
    return cast(WorkerRecord | None, record)


def all_workers() -> dict[str, WorkerRecord]:
    with translate_errors():
        return {doc["worker"]: cast(WorkerRecord, doc)
                for doc in get_db().workers.find({}, {"_id": 0})}


def prune(older_than: dt.timedelta) -> int:
    """Forget worker processes not seen for ``older_than``."""
    with translate_errors():
        return get_db().workers.delete_many(
            {"last_seen": {"$lt": utcnow() - older_than}}).deleted_count


#: When a reader saw each worker's record (by name) last written, by the reader's own
#: clock (``workers/reaper.py``, ``StoreWatch.heard``): a worker whose host's clock
#: differs from the reader's is judged by whether it keeps writing, not by the time
#: its clock writes.
Heard = Mapping[str, dt.datetime]


def seen(worker: WorkerRecord, window: float, now: dt.datetime,
         seen_since: dt.datetime | None = None, heard: Heard | None = None) -> bool:
    """True when ``worker`` is up and wrote its record within ``window`` seconds.

    ``seen_since``: the reader could not see the store until then (it was
    down), so a record cannot be older than that for the worker's fault.
    ``heard``: when the reader saw it written, if it watched (else its ``last_seen``).
    """
    last = (heard or {}).get(worker["worker"], worker["last_seen"])
    if seen_since is not None and seen_since > last:
        last = seen_since
    return worker["state"] != "stopped" and (now - last).total_seconds() <= window


def holder(build: Mapping[str, Any], workers: Mapping[str, WorkerRecord], window: float,
           now: dt.datetime | None = None, seen_since: dt.datetime | None = None,
           heard: Heard | None = None) -> Holder:
    """Who holds the running ``build``, judging a worker silent after ``window`` s
    (``seen``)."""
    lease = build.get("lease")
    if not lease:
        return Holder.NOBODY
    now = now or utcnow()
    name = lease.get("worker")
    if name is None:
        # The worker that ended the last phase holds it until the next one is sent.
        sender = workers.get(lease.get("handed_by") or "")
        # Sent since (or handed back to its queue): it waits there like any other.
        waits = bool(lease.get("released") or lease.get("resent_at"))
        if sender is not None and build["build_id"] in sender.get("unsent", ()) \
                and not waits:
            return Holder.SEND_FAILED
        if sender is None or build["build_id"] not in sender["builds"]:
            return Holder.HANDED_ON
        if sender["state"] != "stopped" and seen(sender, window, now, seen_since, heard):
            return Holder.HELD
        # Gone while it still held the build: it died before it sent the next phase (or
        # just after), unless that phase was handed back to its queue on a stop, or the
        # farm has sent it since.
        if waits:
            return Holder.HANDED_ON
        return Holder.UNSENT
    worker = workers.get(name)
    if worker is None:
        # Not written yet (a process that took a build as it started), or
        # forgotten long ago: silent once the lease is older than the window.
        since = max(lease["since"], seen_since) if seen_since else lease["since"]
        return Holder.SILENT if (now - since).total_seconds() > window else Holder.HELD
    if worker["state"] == "stopped":
        return Holder.STOPPED
    if not seen(worker, window, now, seen_since, heard):
        return Holder.SILENT
    # A record written after the lease was taken lists every build the
    # process held then (it adds a build before claiming it).
    if build["build_id"] not in worker["builds"] and worker["last_seen"] > lease["since"]:
        return Holder.LET_GO
    return Holder.HELD


def live_hosts(workers: Mapping[str, WorkerRecord], window: float, now: dt.datetime | None = None,
               seen_since: dt.datetime | None = None, heard: Heard | None = None) -> set[str]:
    """Host ids with at least one worker process up and seen within ``window`` s."""
    now = now or utcnow()
    return {w["host"] for w in workers.values()
            if w["state"] == "up" and seen(w, window, now, seen_since, heard)}
