"""A worker's Docker host: its base image, what it advertises, and when it takes new builds.

In the worker's main process:

- before it takes any task, the engine gets the base image from the
  registry if it lacks it (a new host starts empty), and loses the
  verification containers of builds that no longer run (``workers/verify.py``);
- a thread writes the host's record (``common/host_store.py``) every
  heartbeat interval, and at once when a build starts or ends here
  (``common/host_events.py``): engine version, free disk, concurrency, the
  builds running there, and reads back whether operators drained it;
- a consumer step (``HostGate``) consumes the shared queue only while the
  host takes new builds at all (up, not drained, disk to spare), so a
  draining host leaves them to the others; phases of its own builds keep
  coming on its ``host.<id>`` queue.

A host that is only full keeps consuming the shared queue: it has no free
process to take a message with (tasks are late-acked with prefetch 1), and a
process that frees takes the next phase of its own build first, since its
queue comes first and queues are asked in that order
(``workers/celery_app.py``). So a host whose build ends takes the next waiting
build at once, where closing the shared queue while full reopened it only
after the advert, the gate and the next broker poll had each noticed.

What the advert has not seen yet the fetch task checks again as it starts
(``workers/placement.py``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
from celery import bootsteps
from celery.signals import worker_init, worker_shutdown

from common import build_store, host_store
from common.clock import utcnow
from common.config import Config, get_config
from common.errors import BinderError
from common.host_events import Listener
from common.host_store import HostRecord
from common.models import Status
from workers.build_cgroup import LimitNotSet, limit_builds
from workers.docker_engine import docker_client
from workers.queues import SHARED_QUEUE
from workers.registry import ensure_image
from workers.verify import remove_leftovers

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Longest wait, as the worker stops, for an advert beat in flight to end.
STOP_JOIN_SECONDS = 10.0
#: How often the consumer follows the advert's open/closed (a comparison of two flags;
#: a host that took a new build after it closed would only send it on).
GATE_INTERVAL = 0.1


def ensure_base_pulled(config: Config, say: Callable[[str], None] = log.info) -> bool:
    """Pull the base image into this host's engine when it lacks it; True when pulled."""
    image = config.base_image_name
    client = docker_client(config, timeout=1800)
    try:
        pulled = ensure_image(client, config, image, lambda: say(
            f"the engine at {config.docker_host} has no {image}; pulling it from the registry"))
    finally:
        client.close()
    if pulled:
        say(f"pulled {image}")
    return pulled


def free_disk_mb(paths: list[Path]) -> int:
    """Free MiB on the fullest of ``paths`` (those that exist here)."""
    free = [shutil.disk_usage(path).free // MIB for path in paths if path.exists()]
    return int(min(free)) if free else 0


class HostAdvert:
    """The thread that writes this host's record and knows whether it is free."""

    def __init__(self, config: Config, node: str) -> None:
        self.config = config
        self.node = node
        #: Whether the host takes new builds now (free), as its last beat saw it.
        self.accepting = True
        #: Whether it takes new builds at all: free, or full only (see the module docstring).
        self.open = True
        self.record: HostRecord | None = None
        self.engine_version = ""
        self.data_root: Path | None = None
        self._stop = threading.Event()
        # Set by a heartbeat's end and by a word that a build started or ended here.
        self._wake = threading.Event()
        self._events = Listener(config, self._wake)
        self._thread = threading.Thread(target=self._run, daemon=True, name="host-advert")

    def start(self) -> HostAdvert:
        self._thread.start()
        self._events.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._events.stop()
        # A beat in flight would write "up" after "stopped", and the API would go on
        # placing builds on this host's queue, which nothing consumes any more.
        self._thread.join(timeout=STOP_JOIN_SECONDS)
        try:
            host_store.mark_stopped(self.config.worker_host)
        except BinderError:
            log.warning("could not record that host %s stopped", self.config.worker_host)

    def _engine_facts(self) -> None:
        client = docker_client(self.config, timeout=10)
        try:
            self.engine_version = str(client.version().get("Version", ""))
            if self.config.docker_host.startswith("unix://"):  # its disk is this machine's
                self.data_root = Path(client.info().get("DockerRootDir", ""))
        finally:
            client.close()

    def advertised(self) -> HostRecord:
        config = self.config
        config.work_root.mkdir(parents=True, exist_ok=True)
        paths = [config.work_root] + ([self.data_root] if self.data_root else [])
        running = host_store.running_builds(config.worker_host).get(config.worker_host, [])
        return HostRecord(
            host=config.worker_host, node=self.node, docker_host=config.docker_host,
            engine_version=self.engine_version, free_disk_mb=free_disk_mb(paths),
            min_free_disk_mb=config.min_free_disk_mb, concurrency=config.worker_concurrency,
            running=running, state="up", last_seen=utcnow())

    def beat(self) -> None:
        if not self.engine_version:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                self._engine_facts()
        mine = self.advertised()
        self.record = host_store.advertise(mine)
        reason = host_store.refusal(self.record, len(mine["running"]),
                                    self.config.heartbeat_stale)
        if (reason is None) != self.accepting:
            log.info("host %s %s", self.config.worker_host,
                     "takes new builds" if reason is None else f"takes no new builds: {reason}")
        self.accepting = reason is None
        self.open = host_store.refusal(self.record, 0, self.config.heartbeat_stale) is None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a word arriving during the beat brings another one
            try:
                self.beat()
            except Exception:  # keep advertising: the database may be back next time
                log.warning("could not advertise host %s", self.config.worker_host,
                            exc_info=True)
            self._wake.wait(self.config.heartbeat_interval)


_advert: HostAdvert | None = None


class HostGate(bootsteps.StartStopStep):
    """Consume the shared queue only while this host is open (see the module docstring)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry: Any = None

    def start(self, consumer: Any) -> None:
        global _advert
        if _advert is None:
            config = get_config()
            _advert = HostAdvert(config, f"{config.worker_host}@{socket.gethostname()}")
            _advert.node = getattr(consumer, "hostname", None) or _advert.node
            _advert.start()
        self.timer_entry = consumer.timer.call_repeatedly(GATE_INTERVAL, self.sync, (consumer,))

    def sync(self, consumer: Any) -> None:
        tasks = consumer.task_consumer
        if _advert is None or tasks is None:
            return
        consuming = tasks.consuming_from(SHARED_QUEUE)
        if _advert.open and not consuming:
            consumer.add_task_queue(SHARED_QUEUE)
        elif not _advert.open and consuming:
            consumer.cancel_task_queue(SHARED_QUEUE)

    def stop(self, consumer: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


@worker_init.connect
def _pull_base(**_: Any) -> None:
    """Before the first task: a host whose engine lacks the base image pulls it, the
    engine's build containers are put under the build memory limit, and verification
    containers an earlier worker left are removed."""
    def say(line: str) -> None:  # before Celery's logging is set up
        print(f"base image | {line}", flush=True)

    config = get_config()
    try:
        ensure_base_pulled(config, say)
    except (docker.errors.DockerException, OSError, BinderError) as exc:
        # Builds still pull it themselves (their FROM); say why it was not here.
        log.warning("could not pull the base image: %s", exc)
    limit_builds_early(config)
    remove_verification_leftovers(config)


def build_runs(build_id: str) -> bool:
    record = build_store.find_by_id(build_id) if build_id else None
    return record is not None and record.get("status") == Status.RUNNING.value


def remove_verification_leftovers(config: Config) -> None:
    """Remove what a worker that died while verifying left on this engine."""
    try:
        removed = remove_leftovers(config, build_runs)
    except (docker.errors.DockerException, OSError, BinderError) as exc:
        log.warning("could not look for verification containers left behind: %s", exc)
        return
    if removed:
        log.info("removed %d verification container(s) of builds that no longer run",
                 removed)


def limit_builds_early(config: Config) -> None:
    """Limit the build cgroup in the worker's main process, before its pool forks.

    Each pool process inherits that it is done, so no build waits for the
    helper container that sets it (a second or more on a busy host). When it
    fails here, each build tries again and says why it could not.
    """
    if not config.limit_build_cgroup:
        return
    try:
        limit_builds(config)
    except LimitNotSet as exc:
        log.warning("the build limits are not set yet: %s", exc)


@worker_shutdown.connect
def _stopping(**_: Any) -> None:
    if _advert is not None:
        _advert.stop()
