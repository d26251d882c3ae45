"""One Redis client per process and URL (live log streams, broker probes)."""

from __future__ import annotations

import functools
import os

import redis

from common.config import Config


def redis_client(config: Config) -> redis.Redis:
    """This process's client for the configured Redis (one connection pool, reused)."""
    return _client(os.getpid(), config.redis_url)


@functools.lru_cache(maxsize=8)
def _client(pid: int, url: str) -> redis.Redis:
    # Keyed by pid: a pool must not cross a fork (gunicorn, Celery prefork).
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2,
                                decode_responses=True)
