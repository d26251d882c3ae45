"""The OCI registry: which tags exist and their digests, deleting a tag or putting an
earlier manifest back under it, pushing and pulling through the engine, and the
credentials Docker needs for it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Set
from pathlib import Path

import docker
import requests

from common.config import Config, registry_url
from common.errors import BuildFailure
from common.models import FailureCause
from workers.service_auth import write_private

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def split_tag(image: str) -> tuple[str, str]:
    """``host:port/repo/path:tag`` -> (``host:port/repo/path``, ``tag``); no tag is ``latest``."""
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:  # the colon was the registry's port
        return image, "latest"
    return repository, tag


def split_image(image: str) -> tuple[str, str, str]:
    """``host:port/repo/path:tag`` -> (registry, repository, tag)."""
    registry, _, rest = image.partition("/")
    repository, tag = split_tag(rest)
    return registry, repository, tag


def _auth(config: Config) -> tuple[str, str] | None:
    if config.registry_username:
        return (config.registry_username, config.registry_password)
    return None


def manifest_digest(config: Config, image: str, timeout: float = 5) -> str | None:
    """The registry's digest of ``image`` (``sha256:...``), ``None`` when it has no such
    tag (it answers 404). Raises ``requests.HTTPError`` for any other refusal (a
    registry failing, a login refused): taking that for "no such tag" would have a
    withdrawal report a tag gone that is there, or retention delete a manifest a kept
    tag shares; and any ``requests.RequestException`` when it does not answer."""
    registry, repository, tag = split_image(image)
    base = registry_url(registry, config.registry_insecure)
    response = requests.head(f"{base}/v2/{repository}/manifests/{tag}",
                             headers={"Accept": MANIFEST_TYPES}, auth=_auth(config),
                             timeout=timeout)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise _refused(response)
    return response.headers.get("Docker-Content-Digest") or None


def manifest_exists(config: Config, image: str, timeout: float = 5) -> bool:
    """True when the registry holds ``image`` (a full ``registry/repo:tag``)."""
    return manifest_digest(config, image, timeout) is not None


def delete_tag(config: Config, image: str, keep_digests: Set[str] = frozenset()) -> bool:
    """Delete ``image``'s manifest from the registry (by its digest: the registry deletes
    no tag alone); True when the tag is gone, or was.

    False, deleting nothing, when its digest is in ``keep_digests``: the manifest is
    also that of a tag to keep, which would go with it. Raises ``requests.HTTPError``
    when the registry refuses (one that does not allow deletes answers 405), and any
    ``requests.RequestException`` when it does not answer.
    """
    digest = manifest_digest(config, image, timeout=10)
    if digest is None:
        return True
    if digest in keep_digests:
        return False
    registry, repository, _ = split_image(image)
    response = requests.delete(
        f"{registry_url(registry, config.registry_insecure)}/v2/{repository}/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES}, auth=_auth(config), timeout=30)
    if response.status_code in (202, 404):
        return True
    raise _refused(response)


def restore_tag(config: Config, image: str, digest: str) -> None:
    """Put the manifest ``digest`` of ``image``'s repository back under ``image``'s tag,
    with its exact bytes and media type (so its digest stays ``digest``).

    The registry keeps a manifest addressable by its digest after its tag moves,
    until garbage collection deletes it untagged. Raises ``requests.HTTPError``
    when the registry no longer has it or refuses the tag, and any
    ``requests.RequestException`` when it does not answer.
    """
    registry, repository, tag = split_image(image)
    manifests = f"{registry_url(registry, config.registry_insecure)}/v2/{repository}/manifests"
    found = requests.get(f"{manifests}/{digest}", headers={"Accept": MANIFEST_TYPES},
                         auth=_auth(config), timeout=30)
    if found.status_code != 200:
        raise _refused(found)
    put = requests.put(f"{manifests}/{tag}", data=found.content,
                       headers={"Content-Type": found.headers.get("Content-Type", "")},
                       auth=_auth(config), timeout=30)
    if put.status_code != 201:
        raise _refused(put)


def _refused(response: requests.Response) -> requests.HTTPError:
    return requests.HTTPError(f"HTTP {response.status_code} {response.text[:200]}",
                              response=response)


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


def push_image(client: docker.DockerClient, config: Config, image: str,
               on_status: Callable[[str], None], check: Callable[[], None] = lambda: None) -> int:
    """Push ``image``; each new overall status goes to ``on_status``, ``check`` runs
    between events (it raises to stop). Raises ``BuildFailure`` when refused.

    Returns the bytes of the layers the engine pushed, as its progress reported
    them (layers the registry already had count nothing).
    """
    repository, tag = split_tag(image)
    last_status = ""
    progress: dict[str, int] = {}
    pushed = 0
    for event in client.api.push(repository, tag=tag, stream=True, decode=True,
                                 auth_config=auth_config(config)):
        check()
        if "error" in event:
            raise BuildFailure(f"The registry refused the image: {event['error']}",
                               suggestions=["Retry; operators: check BINDER_REGISTRY."],
                               cause=FailureCause.FARM)
        status = event.get("status", "")
        layer = event.get("id")
        if layer and status == "Pushing":
            detail = event.get("progressDetail") or {}
            progress[layer] = max(progress.get(layer, 0), int(detail.get("current") or 0))
        elif layer and status == "Pushed":
            pushed += progress.pop(layer, 0)
        if status and status != last_status and "id" not in event:
            on_status(status)
        last_status = status
    return pushed


def pull(client: docker.DockerClient, image: str,
         auth: dict[str, str] | None = None) -> None:
    """Pull ``image`` into the engine; raises ``docker.errors.APIError`` with the
    engine's own reason when it cannot.

    docker-py's ``images.pull`` drops the error events of the pull's stream and then
    fails on its lookup of the image, so a full disk or a missing blob would read
    "no such image"; the stream is read here instead.
    """
    repository, tag = split_tag(image)
    for event in client.api.pull(repository, tag=tag, stream=True, decode=True,
                                 auth_config=auth):
        if "error" in event:
            raise docker.errors.APIError(f"could not pull {image}: {event['error']}")


def pull_image(client: docker.DockerClient, config: Config, image: str) -> None:
    """Pull ``image`` from the farm's registry; raises ``docker.errors.APIError``."""
    pull(client, image, auth_config(config))


def ensure_image(client: docker.DockerClient, config: Config, image: str,
                 before_pull: Callable[[], None] = lambda: None) -> bool:
    """Pull ``image`` from the farm's registry unless the engine has it (calling
    ``before_pull`` first); True when it was pulled."""
    try:
        client.images.get(image)
        return False
    except docker.errors.ImageNotFound:
        before_pull()
        pull_image(client, config, image)
        return True
