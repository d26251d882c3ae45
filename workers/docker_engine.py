"""The worker's Docker engine, through the Docker SDK."""

from __future__ import annotations

import docker

from common.config import Config

#: Long reads: a build step may print nothing for minutes.
API_TIMEOUT = 3600


def docker_client(config: Config, timeout: int = API_TIMEOUT) -> docker.DockerClient:
    return docker.DockerClient(base_url=config.docker_host, timeout=timeout)
