"""An image is the commit built on one base image by one recipe.

The test changes a base image, so it runs on the second host, whose base
image is its own copy (``second_host``).
"""

from __future__ import annotations

import io
import time

from common.config import get_config
from tests.integration.conftest import SecondHost, unique
from tests.support.git_server import GitServer
from workers.docker_engine import docker_client
from workers.image_identity import BASE_DIGEST_SECONDS
from workers.registry import auth_config


def replace_base_image(base: str) -> None:
    """Push a new image under ``base``'s tag: the old one plus a label."""
    config = get_config()
    client = docker_client(config, timeout=300)
    recipe = f"FROM {base}\nLABEL org.binder-build.test-base=2\n".encode()
    client.images.build(fileobj=io.BytesIO(recipe), tag=base, rm=True, pull=False)
    for event in client.api.push(base, stream=True, decode=True,
                                 auth_config=auth_config(config)):
        assert "error" not in event, event


def test_a_new_base_image_rebuilds_the_commit_under_a_new_tag(
        second_host: SecondHost, git_server: GitServer) -> None:
    api = second_host.api
    repo = unique("newbase")
    git_server.make_repo(f"github/base/{repo}", {
        "Dockerfile": f"FROM {second_host.base_image}\nRUN echo built > /tmp/marker\n"})
    url = f"{git_server.url}/github/base/{repo}"
    first = api.start_and_wait(url, 300)
    assert first["status"] == "completed" and first["cached"] is False, api.logs(first["name"])
    commit = first["commit"]
    repository, _, tag = first["image-name"].rpartition(":")
    assert tag.startswith(f"{commit}-") and tag != commit
    again = api.start_and_wait(url, 300)
    assert again["cached"] is True and again["image-name"] == first["image-name"]

    replace_base_image(second_host.base_image)
    time.sleep(BASE_DIGEST_SECONDS + 1)  # the worker asks the registry again
    rebuilt = api.start_and_wait(url, 300)
    assert rebuilt["status"] == "completed", api.logs(rebuilt["name"])
    assert rebuilt["cached"] is False and rebuilt["commit"] == commit
    assert rebuilt["image-name"].startswith(f"{repository}:{commit}-")
    assert rebuilt["image-name"] != first["image-name"]
