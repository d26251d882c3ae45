"""Telling a host's advert at once that a build started or ended there, or that
operators drained or undrained it.

A host consumes the shared queue only while it takes new builds at all (not
drained, disk to spare: ``workers/host_advert.py``), and its record tells
operators what runs there; it learns both from that record, rewritten every
heartbeat. Waiting for the next heartbeat would let a drained host take new
builds for seconds, and show what ran there a heartbeat ago. So the worker
process that claims or ends a build, and the API that drains a host, publish
a word on the host's Redis channel, and the advert rewrites the record then. The heartbeat stays the
fallback: a lost word (Redis away) only costs one interval.
"""

from __future__ import annotations

import logging
import threading

import redis

from common.config import Config
from common.redis_client import redis_client

log = logging.getLogger(__name__)

#: How long the listener waits between tries while Redis is away.
RECONNECT_PAUSE = 1.0


def channel(config: Config, host: str) -> str:
    """The channel of ``host`` (under the broker's prefix: farms may share a Redis)."""
    return f"{config.broker_prefix}binder-host-changed:{host}"


def announce(config: Config, host: str | None = None) -> None:
    """Tell the advert of ``host`` (default: this worker's) to look again (best effort)."""
    host = host or config.worker_host
    try:
        redis_client(config).publish(channel(config, host), "changed")
    except redis.RedisError as exc:
        log.info("could not tell host %s's advert to look again: %s", host, exc)


class Listener:
    """A thread that sets ``wake`` whenever this host's channel gets a word."""

    def __init__(self, config: Config, wake: threading.Event) -> None:
        self.config = config
        self.wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="host-events")

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                log.info("host events unavailable (heartbeats only until back): %s", exc)
                self._stop.wait(RECONNECT_PAUSE)

    def _listen(self) -> None:
        pubsub = redis_client(self.config).pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel(self.config, self.config.worker_host))
            # A word may have been missed while (re)subscribing: look once now.
            self.wake.set()
            while not self._stop.is_set():
                if pubsub.get_message(timeout=1.0) is not None:
                    self.wake.set()
        finally:
            pubsub.close()
