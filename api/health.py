"""``GET /health/``: one entry per component; 503 naming what fails.

Each check is bounded in time (about a second) so the report comes fast
even when a component hangs; a failing check returns its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from api.schemas import HealthSchema
from common.clock import utcnow
from common.config import Config
from common.probes import check_docker, check_mongo, check_redis, check_registry

bp = Blueprint("health", __name__)

CHECK_TIMEOUT = 1.5


@dataclass
class ComponentHealth:
    name: str
    status: str  # "ok" or "failing"
    timestamp: dt.datetime
    error: str | None = None


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
    now = utcnow()
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


@bp.get("/health/", strict_slashes=False)
def health() -> ResponseReturnValue:
    components = check_all(current_app.config["BINDER"])
    status = 200 if all(c.status == "ok" for c in components) else 503
    return jsonify(HealthSchema().dump(components, many=True)), status
