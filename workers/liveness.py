"""Each worker process says it is alive and which builds it holds.

The record's shape and how it is read are in ``common/worker_store.py``.
A thread in every worker process (the Celery main process and each pool
process) writes the process's record every heartbeat interval, and at once
when the builds it holds change. The phase runner holds a build from just
before it claims a phase until the next phase is handed on or the build
ended; a worker that gives a build up (it could not reach the database for
too long) lets it go, and its next record says so, so the reaper restarts
the build at once instead of waiting for its heartbeat to go stale. One whose
next phase it could not send, nor its restart write (the broker and MongoDB
were both away), lists it as ``unsent`` instead, and the reaper sends that
phase once it can: the build looks handed on otherwise.

A pool process writes only while its Celery main process lives: without it
the process can neither take nor acknowledge tasks, and its silence makes
the reaper restart what it held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery.signals import (
    celeryd_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from common import worker_store
from common.clock import utcnow
from common.config import Config, get_config
from common.db import ensure_indexes

log = logging.getLogger(__name__)

#: The Celery node (``<host-id>@<hostname>``) of this worker; set before the
#: pool forks, so pool processes inherit it.
_node: str | None = None


def node_name(config: Config) -> str:
    return _node or f"{config.worker_host}@{socket.gethostname()}"


def worker_name(config: Config | None = None) -> str:
    """This process's worker name, ``<host-id>@<hostname>:<pid>``."""
    return f"{node_name(config or get_config())}:{os.getpid()}"


def died_here(name: str, config: Config | None = None) -> bool:
    """True when the worker process ``name`` belongs to this process's Celery
    node (same machine) and has exited; a zombie not yet reaped counts as exited."""
    node, _, pid = name.rpartition(":")
    if node != node_name(config or get_config()) or not pid.isdigit():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # The state follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class Heartbeat:
    """The record writer of one process: the builds it holds, written by a thread."""

    def __init__(self, config: Config, watch_parent: bool = False) -> None:
        self.config = config
        self.name = worker_name(config)
        self.started = utcnow()
        self.state = "up"
        self._held: set[str] = set()
        #: Builds this process could not send on, and when (monotonic) it gave up.
        self._unsent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._parent = os.getppid() if watch_parent else None
        self._thread = threading.Thread(target=self._run, daemon=True, name="worker-liveness")

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def hold(self, build_id: str) -> None:
        with self._lock:
            self._held.add(build_id)
            self._unsent.pop(build_id, None)  # a phase of it is here again after all
        self._wake.set()

    def could_not_send(self, build_id: str) -> None:
        """Stop holding ``build_id``, whose next phase this process could not send
        nor its restart write: list it as ``unsent`` for the reaper to send."""
        with self._lock:
            self._held.discard(build_id)
            self._unsent[build_id] = time.monotonic()
        self._wake.set()

    def unsent(self) -> list[str]:
        # Kept until the reaper would restart the build anyway (its next phase late).
        keep = self.config.heartbeat_stale + self.config.build_timeout
        with self._lock:
            now = time.monotonic()
            self._unsent = {build: at for build, at in self._unsent.items()
                            if now - at <= keep}
            return sorted(self._unsent)

    def release(self, build_id: str) -> None:
        """Stop holding ``build_id``; the record says so at once, if it held it."""
        with self._lock:
            held = build_id in self._held
            self._held.discard(build_id)
        if held:
            self._wake.set()

    def ended(self, build_id: str) -> None:
        """Stop holding ``build_id``, which ended: the record says so with its next
        write, not one of its own (only running builds are judged by it)."""
        with self._lock:
            self._held.discard(build_id)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def record(self) -> worker_store.WorkerRecord:
        # The time first, then the builds: a record written after a build was
        # claimed (its lease's ``since``) is sure to list it.
        now = utcnow()
        return worker_store.WorkerRecord(
            worker=self.name, node=node_name(self.config), host=self.config.worker_host,
            hostname=socket.gethostname(), pid=os.getpid(), state=self.state,
            started=self.started, last_seen=now, builds=self.held(), unsent=self.unsent())

    def write(self) -> None:
        worker_store.write(self.record())

    def stop(self, state: str = "stopped") -> None:
        self._stop.set()
        self._wake.set()
        self.state = state
        try:
            self.write()
        except Exception:
            log.warning("could not record that %s stopped", self.name)

    def _run(self) -> None:
        with contextlib.suppress(Exception):
            ensure_indexes(self.config)
        while not self._stop.is_set():
            self._wake.clear()
            if self._parent is not None and os.getppid() != self._parent:
                log.warning("the Celery main process is gone; %s stops beating", self.name)
                return
            try:
                self.write()
            except Exception:  # keep beating: the database may be back next time
                log.warning("could not record that %s is alive", self.name)
            self._wake.wait(self.config.heartbeat_interval)


_heartbeat: Heartbeat | None = None
_heartbeat_lock = threading.Lock()


def heartbeat(watch_parent: bool = False) -> Heartbeat:
    """This process's heartbeat, started on first use (also outside Celery)."""
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is None or _heartbeat.name != worker_name():
            _heartbeat = Heartbeat(get_config(), watch_parent).start()
        return _heartbeat


@contextlib.contextmanager
def holding(build_id: str) -> Iterator[None]:
    """This process holds ``build_id`` inside the block."""
    beat = heartbeat()
    beat.hold(build_id)
    try:
        yield
    finally:
        beat.release(build_id)


def let_go(build_id: str) -> None:
    """Stop holding ``build_id`` before the block ends (the build is given up)."""
    heartbeat().release(build_id)


def ended(build_id: str) -> None:
    """Stop holding ``build_id``, which ended (``Heartbeat.ended``)."""
    heartbeat().ended(build_id)


def could_not_send(build_id: str) -> None:
    """Stop holding ``build_id``, whose next phase could not be sent nor its restart
    written: the reaper sends that phase (``Heartbeat.could_not_send``)."""
    heartbeat().could_not_send(build_id)


@celeryd_init.connect
def _named(sender: str | None = None, **_: Any) -> None:
    global _node
    _node = sender


@worker_ready.connect
def _start(**_: Any) -> None:
    heartbeat()


@worker_process_init.connect
def _start_pool_process(**_: Any) -> None:
    global _heartbeat, _heartbeat_lock
    # Forked from the main process: its heartbeat and lock are not ours.
    _heartbeat, _heartbeat_lock = None, threading.Lock()
    heartbeat(watch_parent=True)


@worker_process_shutdown.connect
def _process_stopping(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@worker_shutdown.connect
def _stopping(**_: Any) -> None:
    """A warm shutdown marks every process of this node stopped at once, so the
    builds waiting in its host's queue are handed back without waiting."""
    if _heartbeat is not None:
        _heartbeat.stop()
    try:
        worker_store.mark_node(node_name(get_config()), "stopped")
    except Exception:
        log.warning("could not record that this worker stopped")
