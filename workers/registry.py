"""The OCI registry: does an image tag exist, and the credentials Docker needs for it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import requests

from common.config import Config
from workers.service_auth import write_private

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


def docker_cli_config(config: Config) -> Path:
    """A ``DOCKER_CONFIG`` directory for the Docker CLI holding only the registry's login.

    The CLI hands these to the engine for pulls and ``--cache-from`` imports
    (BuildKit's session); they never reach a build step. Private (0600).
    """
    directory = config.data_path / "docker-config"
    auths = {}
    if config.registry_username:
        login = f"{config.registry_username}:{config.registry_password}".encode()
        auths[config.registry] = {"auth": base64.b64encode(login).decode()}
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(directory / "config.json", json.dumps({"auths": auths}, indent=2) + "\n")
    return directory
