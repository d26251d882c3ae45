"""``GET /health/``: one entry per component; 503 naming what fails.

Each check is bounded in time (about a second) so the report comes fast
even when a component hangs; a failing check returns its reason, shown
only to a request with a key.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace

from celery import Celery
from flask import current_app

from api.auth import current_key, no_key
from api.blueprint import Blueprint
from api.schemas.common import HealthSchema
from common.clock import utcnow
from common.config import Config
from common.probes import check_docker, check_mongo, check_redis, check_registry

bp = Blueprint("health", __name__, description="Whether the farm's components answer.")

CHECK_TIMEOUT = 1.5


@dataclass
class ComponentHealth:
    name: str
    status: str  # "ok" or "failing"
    timestamp: dt.datetime
    error: str | None = None


def check_workers(config: Config, celery: Celery) -> None:
    check_redis(config)  # a ping through a dead broker would only hang
    if not celery.control.ping(timeout=1.0):
        raise RuntimeError("no Celery worker answered a ping")


CHECKS: dict[str, Callable[[Config], None]] = {
    "mongo": check_mongo,
    "redis": check_redis,
    "docker": check_docker,
    "registry": check_registry,
}


def check_all(config: Config, celery: Celery) -> list[ComponentHealth]:
    """Run every check concurrently; each one counts as failing past its time."""
    now = utcnow()
    checks: dict[str, Callable[[Config], None]] = {
        **CHECKS, "workers": functools.partial(check_workers, celery=celery)}
    pool = ThreadPoolExecutor(max_workers=len(checks))
    futures = {name: pool.submit(check, config) for name, check in checks.items()}
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


@bp.route("/health/")
@no_key
@bp.response(200, HealthSchema(many=True), description="every component is ok")
@bp.alt_response(503, schema=HealthSchema(many=True), description="a component is failing")
def health() -> tuple[list[ComponentHealth], int]:
    """Health of each component: MongoDB, Redis, Docker, the registry and the workers.

    Anyone may ask; why a component fails (which names internal addresses)
    is shown only to a request with a key of the farm.
    """
    components = check_all(current_app.config["BINDER"], current_app.extensions["celery"])
    if current_key() is None:
        components = [replace(component, error=None) for component in components]
    return components, 200 if all(c.status == "ok" for c in components) else 503
