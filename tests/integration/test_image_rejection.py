"""An image that failed verification leaves the real registry, unless a completed build
of its name names the same tag: then the tag gets back the image it held."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from common import db
from common.clock import utcnow
from common.config import Config, get_config
from tests.integration.conftest import unique
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.images import in_registry
from tests.support.processes import wait_until
from tests.support.registry import Registry
from tests.support.service_clients import base_image
from tests.support.static_http import serve_directory
from workers.image_rejection import Predecessor, predecessor, withdraw
from workers.registry import manifest_digest, manifest_exists
from workers.verify import VERIFY_LABEL

BASE_IMAGE = base_image()


@pytest.fixture
def name(services: None) -> Iterator[str]:
    """A name of the test's own; its records are not whole builds, so they go after it."""
    name = f"rejection-{uuid.uuid4().hex[:8]}"
    yield name
    for collection in (db.builds(), db.attempts(), db.templates()):
        collection.delete_many({"name": name})


def completed(name: str, image: str) -> dict[str, Any]:
    return {"build_id": uuid.uuid4().hex, "name": name, "status": "completed",
            "image_name": image, "start_time": utcnow(), "end_time": utcnow(), "attempt": 1}


def test_a_rejected_tag_goes_unless_a_completed_build_names_it(name: str) -> None:
    config: Config = get_config()
    registry = Registry(config)
    repository = f"{config.image_prefix}{name}"
    rejected = f"{config.registry}/{repository}:{'c' * 40}-0123456789ab"
    other = f"{config.registry}/{repository}:{'a' * 40}-0123456789ab"
    registry.push(rejected)
    registry.push(other)
    other_build = completed(name, other)
    # The forced rebuild's predecessor, archived: it made the same tag.
    made = completed(name, rejected)
    db.attempts().insert_many([other_build, made])
    said: list[str] = []

    assert not withdraw(config, name, rejected, said.append)
    assert manifest_exists(config, rejected)
    assert said == [f"{rejected} stays in the registry: completed build "
                    f"{made['build_id']} names it"]

    # The forced rebuild pushed another image under the tag: it gets its image back.
    held = manifest_digest(config, rejected)
    assert held is not None
    earlier = predecessor(config, name, rejected, said.append)
    assert earlier == Predecessor(held, f"completed build {made['build_id']}")
    registry.push(rejected, variant="rebuilt")
    assert manifest_digest(config, rejected) != held
    assert not withdraw(config, name, rejected, said.append, earlier)
    assert said[-1] == f"restored {rejected} to the image of completed build {made['build_id']}"
    assert manifest_digest(config, rejected) == held
    # Withdrawn again with the predecessor's own image under the tag: nothing to do.
    assert not withdraw(config, name, rejected, said.append, earlier)
    assert said[-1] == (f"{rejected} stays in the registry as it was: the image that failed "
                        f"verification is that of completed build {made['build_id']} ({held})")
    assert manifest_digest(config, rejected) == held

    db.attempts().delete_one({"build_id": made["build_id"]})
    assert withdraw(config, name, rejected, said.append)
    assert said[-1] == f"removed {rejected} from the registry: it failed verification"
    assert not manifest_exists(config, rejected)
    # The tag alone went: the other build's image is there still.
    assert registry.tags(repository) == {other.rpartition(":")[2]}


def test_an_image_that_fails_verification_leaves_the_registry(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = unique("rejected")
    command = "sh -c 'echo not serving; exit 3'"
    git_server.make_repo(f"github/rita/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\n", ".binder.yml": f"command: {json.dumps(command)}\n"})
    record = api.start_and_wait(f"{repo_url}/rita/{repo}")
    log = api.logs(record["name"])
    assert record["status"] == "failed", (record, log)
    assert record["error"].startswith("The image exited (status 3) instead of serving"), record
    assert record["cause"] == "verification", record
    image = record["rejected-image"]
    assert image.rpartition(":")[2].startswith(f"{record['commit']}-")
    assert record["image-name"] is None and record["image-source"] is None
    assert f"pushed {image}" in log
    assert f"removed {image} from the registry: it failed verification" in log
    assert not in_registry(image)


def kill_verification(build_id: str) -> bool:
    """Kill the verification container of ``build_id``, if it runs; True when it did."""
    client = docker.from_env()
    try:
        running = client.containers.list(filters={"label": f"{VERIFY_LABEL}={build_id}"})
        for container in running:
            container.kill()
        return bool(running)
    finally:
        client.close()


def test_a_forced_rebuild_that_fails_verification_keeps_its_predecessors_tag(
        api: ApiClient, git_server: GitServer, repo_url: str, tmp_path: Path) -> None:
    repo = unique("slowserve")
    command = "sh -c 'sleep 10; exec python3 -m http.server 8888'"  # serves after 10 s
    # The Dockerfile adds a file from a URL, as a repository adds data it downloads:
    # the same commit rebuilt reads it again, so the rebuild makes another image.
    (tmp_path / "data.txt").write_text("first\n")
    with serve_directory(tmp_path) as data_url:
        git_server.make_repo(f"github/rita/{repo}", {
            "Dockerfile": f"FROM {BASE_IMAGE}\nADD {data_url}/data.txt /srv/data.txt\n",
            ".binder.yml": f"command: {json.dumps(command)}\n"})
        url = f"{repo_url}/rita/{repo}"
        first = api.start_and_wait(url)
        assert first["status"] == "completed", api.logs(first["name"])
        image = first["image-name"]
        config = get_config()
        served = manifest_digest(config, image)

        (tmp_path / "data.txt").write_text("second\n")
        response = api.start(url, force=True)
        assert response.status_code == 200, response.text
        forced = response.json()
        # Its image is the same tag; its verification fails (killed while the image starts).
        assert wait_until(lambda: kill_verification(forced["build-id"]), 300, interval=0.1)
        rebuilt = api.wait(forced["name"], 300)
    log = api.logs(forced["name"])
    assert rebuilt["status"] == "failed" and "instead of serving" in rebuilt["error"], log
    assert rebuilt["rejected-image"] == image and rebuilt["image-name"] is None
    assert f"{image} holds the image of completed build {first['build-id']} ({served})" in log
    # The push moved the tag to the rebuild's image; it is the completed build's again.
    assert f"restored {image} to the image of completed build {first['build-id']}" in log
    assert manifest_digest(config, image) == served
    # The template still points at it: the next start reuses it, naming the build that
    # made it.
    again = api.start_and_wait(url)
    assert again["status"] == "completed" and again["cached"] is True, api.logs(again["name"])
    assert again["image-name"] == image and again["built-by"] == first["build-id"]
    assert f"{image} is already built (build {first['build-id']})" in api.logs(again["name"])
