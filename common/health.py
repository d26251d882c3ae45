"""Health of each component the farm needs, as the Binder protocol lists it.

Each check is bounded in time (about a second) so ``GET /health/`` answers
fast even when a component hangs; a failing check returns its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import docker
import redis
import requests

from common import db
from common.config import Config

CHECK_TIMEOUT = 1.5


@dataclass
class ComponentHealth:
    name: str
    status: str  # "ok" or "failing"
    timestamp: dt.datetime
    error: str | None = None


def check_mongo(config: Config) -> None:
    db.ping(config)


def check_redis(config: Config) -> None:
    client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_docker(config: Config) -> None:
    client = docker.DockerClient(base_url=config.docker_host, timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_registry(config: Config) -> None:
    response = requests.get(f"{config.registry_url}/v2/", timeout=1.5)
    if response.status_code not in (200, 401):
        raise RuntimeError(f"registry answered {response.status_code}")


def check_workers(config: Config) -> None:
    check_redis(config)  # a ping through a dead broker would only hang
    from workers.celery_app import app

    replies = app.control.ping(timeout=1.0)
    if not replies:
        raise RuntimeError("no Celery worker answered a ping")


CHECKS: dict[str, Callable[[Config], None]] = {
    "mongo": check_mongo,
    "redis": check_redis,
    "docker": check_docker,
    "registry": check_registry,
    "workers": check_workers,
}


def check_all(config: Config) -> list[ComponentHealth]:
    """Run every check concurrently; each one counts as failing past its time."""
    now = dt.datetime.now(dt.UTC)
    pool = ThreadPoolExecutor(max_workers=len(CHECKS))
    futures = {name: pool.submit(check, config) for name, check in CHECKS.items()}
    results = []
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT)
            results.append(ComponentHealth(name, "ok", now))
        except FutureTimeout:
            results.append(ComponentHealth(name, "failing", now, "no answer in time"))
        except Exception as exc:  # any failure of a component is its health
            results.append(ComponentHealth(name, "failing", now, str(exc) or type(exc).__name__))
    pool.shutdown(wait=False, cancel_futures=True)
    return results
