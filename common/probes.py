"""Does each service answer? Each probe raises when it does not, within about a second.

Used by the API's health report and by the launcher, which reuses a service
that answers instead of starting another.
"""

from __future__ import annotations

import redis
import requests

from common import db
from common.config import Config
from common.docker_connection import engine_client


def check_mongo(config: Config) -> None:
    db.ping(config)


def check_redis(config: Config) -> None:
    client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_docker(config: Config) -> None:
    # Asked afresh: an engine replaced since speaks the API version it answers now.
    client = engine_client(config, timeout=2, ask_version=True)
    try:
        client.ping()
    finally:
        client.close()


def check_registry(config: Config) -> None:
    """The registry answers, and takes the farm's credentials when it asks for some."""
    auth = (config.registry_username, config.registry_password) \
        if config.registry_username else None
    response = requests.get(f"{config.registry_url}/v2/", auth=auth, timeout=1.5)
    if response.status_code == 401:
        raise RuntimeError("the registry refused the farm's credentials" if auth else
                           "the registry requires credentials (BINDER_REGISTRY_USERNAME, "
                           "BINDER_REGISTRY_PASSWORD)")
    if response.status_code != 200:
        raise RuntimeError(f"registry answered {response.status_code}")
