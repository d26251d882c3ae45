"""The test run's services as the farm reaches them: with the farm's credentials.

Tests that look into Redis, MongoDB or the registry behind the farm's back
go through these, so they work against services that require credentials.
"""

from __future__ import annotations

from typing import Any

import pymongo
import requests

from common.config import get_config
from common.db import mongo_url


def base_image() -> str:
    """The base image every test Dockerfile starts FROM."""
    return str(get_config().base_image_name)


def mongo_client() -> pymongo.MongoClient[dict[str, Any]]:
    """A client of its own for the farm's MongoDB (close it)."""
    return pymongo.MongoClient(mongo_url(get_config()), tz_aware=True)


def registry_request(method: str, path: str, **kwargs: Any) -> requests.Response:
    """``path`` (``/v2/...``) on the farm's registry, with its credentials."""
    config = get_config()
    auth = (config.registry_username, config.registry_password) \
        if config.registry_username else None
    return requests.request(method, f"{config.registry_url}{path}", auth=auth,
                            timeout=kwargs.pop("timeout", 10), **kwargs)
