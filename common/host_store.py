"""Docker hosts: what each advertises, whether it is drained, and which may take a build.

One record per host id in the ``hosts`` collection. The main process of the
host's worker writes what it advertises every heartbeat interval
(``workers/host_advert.py``); operators set ``draining`` through the API,
and it stays set across restarts of the worker until they undrain it:

    host             the host id (its queue is ``host.<id>``)
    node             the Celery node of its worker
    docker_host      the engine's address
    engine_version   the engine's version
    free_disk_mb     free space where builds land (the worker's work dir and,
                     for a local engine, its data root), the smaller
    min_free_disk_mb the worker's ``BINDER_MIN_FREE_DISK_MB``
    concurrency      builds it runs at once
    running          names of the builds that run there now
    state            ``up`` or ``stopped`` (what the worker says)
    draining         taking no new builds (operators say)
    last_seen        when the worker last wrote the record

A host is *free* (``refusal`` is None) when it is up and seen recently,
not draining, runs fewer builds than its concurrency and has enough disk.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypedDict, cast

from pymongo import DESCENDING, ReturnDocument

from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.errors import DoesNotExist
from common.models import Status

#: The fields a worker advertises (``draining`` is the operators').
ADVERTISED = ("node", "docker_host", "engine_version", "free_disk_mb", "min_free_disk_mb",
              "concurrency", "running", "state", "last_seen")


class HostRecord(TypedDict, total=False):
    host: str
    node: str
    docker_host: str
    engine_version: str
    free_disk_mb: int
    min_free_disk_mb: int
    concurrency: int
    running: list[str]
    state: str
    draining: bool
    drained_at: dt.datetime | None
    last_seen: dt.datetime


def advertise(record: HostRecord) -> HostRecord:
    """Write what the host's worker advertises; return the whole record (with ``draining``)."""
    fields = {key: record[key] for key in ADVERTISED if key in record}  # type: ignore[literal-required]
    with translate_errors():
        stored = get_db().hosts.find_one_and_update(
            {"host": record["host"]}, {"$set": fields, "$setOnInsert": {"draining": False}},
            upsert=True, projection={"_id": 0}, return_document=ReturnDocument.AFTER)
    return cast(HostRecord, stored)


def mark_stopped(host: str) -> None:
    with translate_errors():
        get_db().hosts.update_one({"host": host},
                                  {"$set": {"state": "stopped", "last_seen": utcnow()}})


def set_draining(host: str, draining: bool) -> HostRecord:
    """Drain (or undrain) ``host``; ``DoesNotExist`` when no worker ever ran as that host."""
    changes: dict[str, Any] = {"draining": draining,
                               "drained_at": utcnow() if draining else None}
    with translate_errors():
        stored = get_db().hosts.find_one_and_update(
            {"host": host}, {"$set": changes}, projection={"_id": 0},
            return_document=ReturnDocument.AFTER)
        known = [] if stored else sorted(doc["host"]
                                         for doc in get_db().hosts.find({}, {"host": 1}))
    if stored is None:
        raise DoesNotExist(f"No worker has run as host {host}.",
                           suggestions=[f"Known hosts: {', '.join(known) or 'none yet'}; "
                                        "list them with GET /hosts/."])
    return cast(HostRecord, stored)


def find(host: str) -> HostRecord | None:
    with translate_errors():
        return cast(HostRecord | None, get_db().hosts.find_one({"host": host}, {"_id": 0}))


def all_hosts() -> list[HostRecord]:
    with translate_errors():
        return [cast(HostRecord, doc)
                for doc in get_db().hosts.find({}, {"_id": 0}).sort("host", 1)]


def running_builds(host: str | None = None, exclude_build: str | None = None,
                   claimed_only: bool = False) -> dict[str, list[str]]:
    """Names of the running builds on each host (or on ``host``).

    A build counts on the host its lease names, also between two phases (its
    next phase waits in the host's queue), or, before its first phase, on the
    host it was sent to (``placed_on``): so builds started together spread.
    ``claimed_only`` counts only the builds that hold a lease.
    """
    # Only the status is asked of the store: its index finds the running builds (few),
    # where a condition on the lease or the placement made it scan every build ever made.
    with translate_errors():
        docs = list(get_db().builds.find({"status": Status.RUNNING.value},
                                         {"_id": 0, "name": 1, "build_id": 1, "lease.host": 1,
                                          "placed_on": 1}))
    result: dict[str, list[str]] = {}
    for doc in docs:
        lease = doc.get("lease")
        if lease is None and claimed_only:
            continue
        where = lease.get("host") if lease is not None else doc.get("placed_on")
        if where is None or (host is not None and where != host) \
                or doc.get("build_id") == exclude_build:
            continue
        result.setdefault(where, []).append(doc["name"])
    return {key: sorted(names) for key, names in result.items()}


def running_counts() -> Counter[str]:
    """How many builds run on each host."""
    return Counter({host: len(names) for host, names in running_builds().items()})


def note_placement(build_id: str, attempt: int, host: str | None,
                   config: Config | None = None) -> None:
    """Record where a queued attempt is sent (``placed_on``; None: the shared queue).

    Noted *before* the task is sent: the host it goes to may send it on at once,
    and that host's note must be the last word. A note written after the send
    could count the build on a host that no longer has it, and that host would
    take no new builds while the build waits in the shared queue for a free one.
    """
    with translate_errors():
        get_db(config).builds.update_one({"build_id": build_id, "attempt": attempt},
                                         {"$set": {"placed_on": host}})


def last_build_host(name: str) -> str | None:
    """The host that last ran the build phase of ``name``: its engine has the layers."""
    selector = {"name": name, "phases.building.worker": {"$exists": True}}
    with translate_errors():
        doc = get_db().attempts.find_one(selector, {"phases.building.worker": 1},
                                         sort=[("start_time", DESCENDING)])
    return str(doc["phases"]["building"]["worker"]) if doc else None


def is_live(record: HostRecord, window: float, now: dt.datetime | None = None) -> bool:
    """Up, and seen within ``window`` seconds."""
    seen = record.get("last_seen")
    if record.get("state") != "up" or seen is None:
        return False
    return ((now or utcnow()) - seen).total_seconds() <= window


def refusal(record: HostRecord, running: int, window: float,
            now: dt.datetime | None = None) -> str | None:
    """Why ``record``'s host takes no new build now (running ``running``), or None."""
    host = record["host"]
    if not is_live(record, window, now):
        return f"host {host} is not up"
    if record.get("draining"):
        return f"host {host} is draining"
    if running >= max(1, int(record.get("concurrency") or 1)):
        return f"host {host} is full ({running} running)"
    free, needed = record.get("free_disk_mb"), record.get("min_free_disk_mb") or 0
    if free is not None and free < needed:
        return f"host {host} has {free} MiB of disk free (needs {needed})"
    return None


def choose(records: list[HostRecord], running: Mapping[str, int], window: float,
           preferred: str | None = None, exclude: str | None = None,
           now: dt.datetime | None = None) -> str | None:
    """The host a new build goes to: ``preferred`` when free, else the least loaded
    free host (ties by id), else None (no host is free: any may take it later)."""
    free = [r for r in records if r["host"] != exclude
            and refusal(r, running.get(r["host"], 0), window, now) is None]
    if preferred is not None and any(r["host"] == preferred for r in free):
        return preferred
    if not free:
        return None

    def load(record: HostRecord) -> tuple[float, str]:
        count = running.get(record["host"], 0)
        return count / max(1, int(record.get("concurrency") or 1)), record["host"]

    return min(free, key=load)["host"]


def place(config: Config, name: str, exclude: str | None = None,
          built_before: bool = True) -> str | None:
    """The host for a new attempt of ``name`` (see ``choose``), from the store now.
    Not ``built_before`` (the name has no record: no attempt of it ever ran), no host
    is asked for its layers."""
    preferred = last_build_host(name) if built_before else None
    return choose(all_hosts(), running_counts(), config.heartbeat_stale,
                  preferred=preferred, exclude=exclude)
