"""Images the farm built, looked at from outside: in its registry, and run."""

from __future__ import annotations

import docker

from tests.support.service_clients import registry_request


def in_registry(image: str) -> bool:
    """Whether the farm's registry holds ``image`` (``REGISTRY/REPOSITORY:TAG``)."""
    repository, _, tag = image.partition("/")[2].rpartition(":")
    response = registry_request(
        "HEAD", f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    return response.status_code == 200


def run_in_image(image: str, command: str, timeout: float = 60) -> str:
    """``command`` (``sh -c``, through the image's entrypoint) in a throw-away container of
    ``image`` without network: its output, once it exits within ``timeout`` seconds."""
    client = docker.from_env(timeout=int(timeout) + 30)
    try:
        container = client.containers.run(image, ["sh", "-c", command], detach=True,
                                          network_mode="none")
        try:
            container.wait(timeout=timeout)
            return str(container.logs().decode(errors="replace"))
        finally:
            container.remove(force=True)
    finally:
        client.close()
