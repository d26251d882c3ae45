"""The reaper's watch of the store: since when it could read MongoDB again.

A worker cannot write its record or its build's heartbeat while the database
is down, so the reaper judges no record older than the moment it could read
the database again (``back_since``), nor older than the moment it ran again
after not running for a while: it cannot tell whether the store was away then.

The watch is kept in the store (one document of the ``reaper`` collection),
written at each pass: a beat restarted within a few passes goes on from the
return of the store, and from the reads of worker records, the previous run
saw, so a restart of the beat does not put off the judgements counted from
them (a stuck phase waits ``BINDER_HEARTBEAT_STALE`` + ``BINDER_BUILD_TIMEOUT``,
a silent worker ``BINDER_HEARTBEAT_STALE``). A beat away for longer is like a
reaper that did not run: the store may have been away meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from common.clock import utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.errors import BadDatabase
from common.worker_store import WorkerRecord

log = logging.getLogger(__name__)

#: The document of the ``reaper`` collection that keeps the watch between runs.
KEPT = {"_id": "store-watch"}


class KeptWatches(Protocol):
    """Where the watch is kept: the ``reaper`` collection (a fake in unit tests)."""

    def find_one(self, selector: Mapping[str, Any], /) -> Mapping[str, Any] | None: ...

    def replace_one(self, selector: Mapping[str, Any], document: dict[str, Any], /,
                    upsert: bool = ...) -> object: ...


class KeptInStore:
    """The ``reaper`` collection of the farm's database, looked up at each use (the
    process's client is made again after a fork)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def find_one(self, selector: Mapping[str, Any], /) -> Mapping[str, Any] | None:
        return get_db(self.config).reaper.find_one(selector)

    def replace_one(self, selector: Mapping[str, Any], document: dict[str, Any], /,
                    upsert: bool = False) -> object:
        return get_db(self.config).reaper.replace_one(selector, document, upsert=upsert)


class StoreWatch:
    """When the reaper could last not read the database (or did not run)."""

    def __init__(self, config: Config, kept: KeptWatches | None = None) -> None:
        """``kept``: where the watch is kept between runs of the reaper (none: each
        run starts from scratch)."""
        self.config = config
        self._kept = kept
        # Until it has watched for a while, assume the worse: records may be
        # old because the database was down, not because workers are gone.
        self.back_since: dt.datetime = utcnow()
        self._last_ok: float | None = None
        self._failing = False
        #: Per worker: the ``last_seen`` last read, when (this clock) it was read, and
        #: when (this clock) it was written, as far as this reaper can tell.
        self._read: dict[str, tuple[dt.datetime, dt.datetime, dt.datetime]] = {}

    def failed(self) -> None:
        self._failing = True

    def _gap(self) -> float:
        """Seconds between two reads of the store beyond which it may have been away."""
        return self.config.reaper_interval * 3 + self.config.mongo_timeout_ms / 1000

    def resume(self, now: dt.datetime) -> None:
        """On this run's first pass, go on from the watch the previous run kept, if it
        read the store within ``_gap`` before ``now`` (raises ``NoDatabase``; a watch
        the store refuses to give is as none kept)."""
        if self._kept is None or self._last_ok is not None or self._failing:
            return
        try:
            with translate_errors():
                kept = self._kept.find_one(KEPT)
        except BadDatabase:
            # Only spares a restarted beat a wait: the passes go on from scratch.
            log.warning("reaper: the watch kept in the store could not be read")
            return
        if kept is None:
            return
        checked, back_since = kept.get("checked"), kept.get("back_since")
        if isinstance(checked, dt.datetime) and isinstance(back_since, dt.datetime) \
                and back_since <= checked <= now \
                and (now - checked).total_seconds() <= self._gap():
            self.back_since = min(back_since, self.back_since)
            self._read = _reads(kept.get("read"))

    def succeeded(self, now: dt.datetime) -> None:
        if self._failing or (self._last_ok is not None
                             and time.monotonic() - self._last_ok > self._gap()):
            self.back_since = now
        self._failing = False
        self._last_ok = time.monotonic()

    def pass_ended(self) -> None:
        """A pass ended without the store failing it: it read the store to its end
        (``withdraw_left`` reads each build's record before its registry requests, each
        bounded by a timeout), so a pass slowed by the registry is no reaper that did
        not run. Counted from its start, every slow pass would start the watch again,
        and a lost build would wait for as long as the registry is slow."""
        if not self._failing:
            self._last_ok = time.monotonic()

    def keep(self, now: dt.datetime) -> None:
        """Keep the watch in the store for the next run, as read at ``now`` (raises
        ``NoDatabase``; one the store refuses is logged, and the pass goes on)."""
        if self._kept is None:
            return
        try:
            with translate_errors():
                self._kept.replace_one(KEPT, {
                    **KEPT, "checked": now, "back_since": self.back_since,
                    # A list: a worker's name is no field name (it may hold dots).
                    "read": [{"worker": name, "last_seen": last_seen, "read_at": read_at,
                              "heard": heard}
                             for name, (last_seen, read_at, heard) in self._read.items()]},
                    upsert=True)
        except BadDatabase:
            log.warning("reaper: the watch could not be kept in the store; a restarted "
                        "beat judges from its own start")

    def heard(self, workers: Mapping[str, WorkerRecord],
              now: dt.datetime) -> dict[str, dt.datetime]:
        """When each worker of ``workers`` (read at ``now``) last wrote its record, by
        this reaper's clock: a worker whose host's clock is behind the beat host's is
        not lost while it keeps writing, one whose clock is ahead not alive once it
        stopped (each host's clock may differ; the README asks for ten minutes).

        A record read again unchanged was written when that value was first read. A
        changed one was written between the previous read and now: at its
        ``last_seen`` when that lies between them (the clocks agree), else it counts
        as written now (the worker's clock is behind or ahead). A record read for
        the first time (a worker that just started, or this reaper did) counts as
        written now, as ``back_since`` would have it.
        """
        heard: dict[str, dt.datetime] = {}
        for name, worker in workers.items():
            written = worker["last_seen"]
            known = self._read.get(name)
            if known is None:
                heard[name] = now
            elif known[0] == written:
                heard[name] = known[2]
            else:
                heard[name] = written if known[1] <= written <= now else now
        self._read = {name: (worker["last_seen"], now, heard[name])
                      for name, worker in workers.items()}
        return heard


def _reads(kept: object) -> dict[str, tuple[dt.datetime, dt.datetime, dt.datetime]]:
    """The reads of worker records a previous run kept (``StoreWatch.keep``); an entry
    of another shape is left out (its worker counts as read for the first time)."""
    reads: dict[str, tuple[dt.datetime, dt.datetime, dt.datetime]] = {}
    for entry in kept if isinstance(kept, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("worker"), str):
            continue
        times = (entry.get("last_seen"), entry.get("read_at"), entry.get("heard"))
        if all(isinstance(value, dt.datetime) for value in times):
            reads[entry["worker"]] = times  # type: ignore[assignment]
    return reads
