"""The OCI registry's HTTP API: does an image tag exist?"""

from __future__ import annotations

import requests

from common.config import Config

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def split_image(image: str) -> tuple[str, str, str]:
    """``host:port/repo/path:tag`` -> (registry, repository, tag)."""
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    if not repository:
        repository, tag = rest, "latest"
    return registry, repository, tag


def _auth(config: Config) -> tuple[str, str] | None:
    if config.registry_username:
        return (config.registry_username, config.registry_password)
    return None


def manifest_exists(config: Config, image: str, timeout: float = 5) -> bool:
    """True when the registry holds ``image`` (a full ``registry/repo:tag``)."""
    registry, repository, tag = split_image(image)
    scheme = "http" if config.registry_insecure else "https"
    response = requests.head(f"{scheme}://{registry}/v2/{repository}/manifests/{tag}",
                             headers={"Accept": MANIFEST_TYPES}, auth=_auth(config),
                             timeout=timeout)
    return response.status_code == 200


def auth_config(config: Config) -> dict[str, str] | None:
    """Credentials for docker push/pull, when configured."""
    if not config.registry_username:
        return None
    return {"username": config.registry_username, "password": config.registry_password}
