"""An image that failed verification leaves the real registry, unless a completed build
of its name names the same tag: then the tag gets back the image it held. So does one
whose worker died before verification said yes or no, once its build ended: the
reaper withdraws it (a farm of its own, with beat, whose worker the tests kill)."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from common import db
from common.clock import utcnow
from common.config import Config, get_config
from tests.integration.conftest import API_KEY, DATA_DIR, RUN_ID, unique
from tests.support.farm import ApiClient, Farm, HostWorkers, start_whole_farm
from tests.support.git_server import GitServer
from tests.support.images import in_registry
from tests.support.processes import wait_until
from tests.support.registry import Registry
from tests.support.service_clients import base_image, mongo_client
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
    rebuild = rebuild_being_verified(api, git_server, repo_url, tmp_path, unique("slowserve"))
    first, forced, image, served = rebuild.first, rebuild.forced, rebuild.image, rebuild.served
    # Its image is the same tag; its verification fails (killed while the image starts).
    assert wait_until(lambda: kill_verification(forced["build-id"]), 300, interval=0.1)
    rebuilt = api.wait(forced["name"], 300)
    log = api.logs(forced["name"])
    assert rebuilt["status"] == "failed" and "instead of serving" in rebuilt["error"], log
    assert rebuilt["rejected-image"] == image and rebuilt["image-name"] is None
    assert f"{image} holds the image of completed build {first['build-id']} ({served})" in log
    # The push moved the tag to the rebuild's image; it is the completed build's again.
    assert f"restored {image} to the image of completed build {first['build-id']}" in log
    assert manifest_digest(get_config(), image) == served
    # The template still points at it: the next start reuses it, naming the build that
    # made it.
    again = api.start_and_wait(first["repository"])
    assert again["status"] == "completed" and again["cached"] is True, api.logs(again["name"])
    assert again["image-name"] == image and again["built-by"] == first["build-id"]
    assert f"{image} is already built (build {first['build-id']})" in api.logs(again["name"])


@dataclass
class Rebuild:
    """A forced rebuild pushed to its completed predecessor's tag, being verified."""

    first: dict[str, Any]  # the completed build
    forced: dict[str, Any]  # the rebuild, as its start answered
    image: str  # the tag both push
    served: str  # its digest before the rebuild's push


def rebuild_being_verified(api: ApiClient, git_server: GitServer, repo_url: str,
                           tmp_path: Path, repo: str) -> Rebuild:
    """Build a repository, force its rebuild and wait until the rebuild has pushed its
    image and is verifying it. The rebuild's data is a byte longer: its image waits ten
    minutes before serving. (A downloaded file only root may read: its size is what the
    image's user can see.)"""
    command = ("sh -c 'test $(stat -c %s /srv/data.txt) -gt 6 && sleep 600; "
               "exec python3 -m http.server 8888'")
    (tmp_path / "data.txt").write_text("first\n")
    with serve_directory(tmp_path) as data_url:
        git_server.make_repo(f"github/rita/{repo}", {
            "Dockerfile": f"FROM {BASE_IMAGE}\nADD {data_url}/data.txt /srv/data.txt\n",
            ".binder.yml": f"command: {json.dumps(command)}\n"})
        url = f"{repo_url}/rita/{repo}"
        first = api.start_and_wait(url)
        assert first["status"] == "completed", api.logs(first["name"])
        image = first["image-name"]
        served = manifest_digest(get_config(), image)
        assert served is not None

        (tmp_path / "data.txt").write_text("second\n")
        response = api.start(url, force=True)
        assert response.status_code == 200, response.text
        forced = response.json()
        name = forced["name"]
        assert wait_until(lambda: f"pushed {image} (" in api.logs(name), 300, interval=0.2), \
            api.logs(name)
    # The push moved the tag to the rebuild's image, which is not verified yet.
    assert manifest_digest(get_config(), image) != served
    # Verification starts beside the push: its container may come after the push.
    assert wait_until(lambda: verification_running(forced["build-id"]), 60,
                      interval=0.1), api.logs(name)
    return Rebuild(first, forced, image, served)


def test_a_forced_rebuild_cancelled_while_verified_gives_its_predecessors_tag_back(
        api: ApiClient, git_server: GitServer, repo_url: str, tmp_path: Path) -> None:
    rebuild = rebuild_being_verified(api, git_server, repo_url, tmp_path,
                                     unique("cancelverify"))
    name, image = rebuild.forced["name"], rebuild.image
    assert api.request("DELETE", f"/builds/{name}").status_code == 200
    cancelled = api.wait(name, 120)
    log = api.logs(name)
    assert cancelled["status"] == "cancelled", log
    assert f"{image} was pushed but not verified: the build was cancelled" in log
    assert (f"restored {image} to the image of completed build "
            f"{rebuild.first['build-id']}") in log
    assert manifest_digest(get_config(), image) == rebuild.served
    # Not a verdict: the cancelled build names the image it was making, none rejected.
    assert cancelled["image-name"] == image and "rejected-image" not in cancelled
    assert not verification_running(rebuild.forced["build-id"])


def test_a_forced_rebuild_handed_back_while_verified_gives_the_tag_back_until_it_runs_again(
        api: ApiClient, farm: Farm, git_server: GitServer, repo_url: str,
        tmp_path: Path) -> None:
    """A stopping worker hands the push back: the tag holds the predecessor's image
    meanwhile, and the next worker's run, which pushes again and whose verification
    fails, gives it back again (the record remembers what it held first)."""
    rebuild = rebuild_being_verified(api, git_server, repo_url, tmp_path,
                                     unique("handbackverify"))
    name, image, maker = rebuild.forced["name"], rebuild.image, rebuild.first["build-id"]
    worker = next(process for process in reversed(farm.processes)
                  if process.name == "worker-test-a" and process.alive())
    try:
        worker.signal(signal.SIGTERM)
        worker.popen.wait(60)
        record = api.build(name)
        log = api.logs(name)
        assert (record["status"], record["phase"]) == ("running", "pushing"), log
        assert "== pushing handed back: the worker process got SIGTERM" in log
        assert f"{image} was pushed but not verified: its worker is stopping" in log
        assert manifest_digest(get_config(), image) == rebuild.served

        # The next worker's verification gives up on the image in seconds.
        farm.start_worker("test-a", BINDER_VERIFY_TIMEOUT="5")
        failed = api.wait(name, 240)
    finally:
        farm.stop_workers("test-a")
        farm.start_worker("test-a")
    log = api.logs(name)
    assert failed["status"] == "failed" and "within 5 s" in failed["error"], log
    assert failed["rejected-image"] == image
    assert "== pushing runs again: a stopping worker handed it back 1 time(s)" in log
    assert log.count(f"pushed {image} (") == 2
    assert log.count(f"{image} holds the image of completed build {maker}") == 1
    assert log.count(f"restored {image} to the image of completed build {maker}") == 2, log
    assert manifest_digest(get_config(), image) == rebuild.served


def verification_running(build_id: str) -> bool:
    """True while a verification container of ``build_id`` runs."""
    client = docker.from_env()
    try:
        return bool(client.containers.list(filters={"label": f"{VERIFY_LABEL}={build_id}"}))
    finally:
        client.close()


# A worker killed after the push, before verification said yes or no


@dataclass
class ReapedFarm:
    """A farm of its own: API, beat (the reaper, every second) and one worker, which
    the tests kill; a build lost once fails."""

    api: ApiClient
    workers: HostWorkers
    db: Any

    def kill_worker(self) -> None:
        """SIGKILL every process of the worker: nothing of it runs another line."""
        worker = self.workers[REAPED_HOST]
        worker.signal(signal.SIGKILL)
        worker.popen.wait(30)


REAPED_HOST = "unverified-a"
#: A command verification waits for until BINDER_VERIFY_TIMEOUT (ten minutes).
NEVER_SERVES = "sh -c 'sleep 600'"


@pytest.fixture(scope="module")
def reaped(farm_env: dict[str, str], services: None) -> Iterator[ReapedFarm]:
    run = uuid.uuid4().hex[:6]
    database = f"binder_test_{RUN_ID}_unverified_{run}"
    farm = Farm({**farm_env, "BINDER_MONGO_DB": database,
                 "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-unverified-{run}:",
                 "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-unverified-",
                 "BINDER_DATA_DIR": str(DATA_DIR / f"farm-unverified-{run}"),
                 "BINDER_REAPER_INTERVAL": "1", "BINDER_MAX_ATTEMPTS": "1"},
                DATA_DIR / f"logs-unverified-{run}")
    client = mongo_client()
    try:
        url, workers = start_whole_farm(farm, client[database].workers, (REAPED_HOST,))
        yield ReapedFarm(ApiClient(url, API_KEY), workers, client[database])
    finally:
        farm.stop()
        client.drop_database(database)
        client.close()


def killed_awaiting_a_verdict(reaped: ReapedFarm, name: str, build_id: str) -> str:
    """Kill the worker of build ``name`` while it verifies the image it pushed; the image."""
    image = str(reaped.api.build(name)["image-name"])
    reaped.kill_worker()
    record = reaped.db.builds.find_one({"build_id": build_id})
    assert (record["status"], record["phase"]) == ("running", "pushing"), record
    assert record["unverified_image"] == image, record  # what the reaper withdraws
    return image


def test_a_rebuild_whose_worker_died_verifying_gets_its_tag_back_when_cancelled(
        reaped: ReapedFarm, git_server: GitServer, repo_url: str, tmp_path: Path) -> None:
    """The API cancels the build (nobody holds it) and does not talk to the registry;
    the reaper gives the tag the image of the completed build it held before."""
    reaped.workers.ensure()
    rebuild = rebuild_being_verified(reaped.api, git_server, repo_url, tmp_path,
                                     unique("deadverify"))
    name, build_id = rebuild.forced["name"], rebuild.forced["build-id"]
    maker = rebuild.first["build-id"]
    try:
        image = killed_awaiting_a_verdict(reaped, name, build_id)
        assert image == rebuild.image
        assert reaped.api.request("DELETE", f"/builds/{name}").status_code == 200
        cancelled = reaped.api.wait(name, 60)
        assert cancelled["status"] == "cancelled", cancelled
        restored = f"restored {image} to the image of completed build {maker}"
        assert wait_until(lambda: restored in reaped.api.logs(name), 60, interval=0.5), \
            reaped.api.logs(name)
    finally:
        kill_verification(build_id)  # its worker died: nobody else stops it
    assert manifest_digest(get_config(), image) == rebuild.served
    log = reaped.api.logs(name)
    said = (f"{image} was pushed but not verified: the build was cancelled after the worker "
            f"pushing it was lost\n{restored}\n")
    assert log.endswith(said), log[-2000:]
    assert log.count(restored) == 1
    record = reaped.db.builds.find_one({"build_id": build_id})
    assert record["unverified_image"] is None and record["status"] == "cancelled"
    assert record["unverified_withdrawn"]["image"] == image
    # The build stays as the API ended it, naming the image it was making.
    again = reaped.api.build(name)
    assert (again["status"], again["image-name"]) == ("cancelled", image)
    assert again["end-time"] == cancelled["end-time"]


def test_an_image_whose_worker_died_verifying_leaves_the_registry_when_the_build_fails(
        reaped: ReapedFarm, git_server: GitServer, repo_url: str) -> None:
    """Nobody cancels: the reaper finds the build lost on its last attempt
    (BINDER_MAX_ATTEMPTS=1), fails it, and then removes its image from the registry."""
    reaped.workers.ensure()
    repo = unique("deadfresh")
    git_server.make_repo(f"github/rita/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\n",
        ".binder.yml": f"command: {json.dumps(NEVER_SERVES)}\n"})
    response = reaped.api.start(f"{repo_url}/rita/{repo}")
    assert response.status_code == 200, response.text
    name, build_id = response.json()["name"], response.json()["build-id"]
    try:
        assert wait_until(lambda: "pushed " in reaped.api.logs(name)
                          and verification_running(build_id), 300, interval=0.2), \
            reaped.api.logs(name)
        image = killed_awaiting_a_verdict(reaped, name, build_id)
        assert in_registry(image)
        failed = reaped.api.wait(name, 120)
        assert failed["status"] == "failed" and failed["cause"] == "farm", failed
        assert failed["error"].startswith("The build was lost 1 times"), failed
        removed = f"removed {image} from the registry: it was not verified"
        assert wait_until(lambda: removed in reaped.api.logs(name), 60, interval=0.5), \
            reaped.api.logs(name)
    finally:
        kill_verification(build_id)
    assert not in_registry(image)
    log = reaped.api.logs(name)
    assert (f"{image} was pushed but not verified: the build failed after the worker "
            f"pushing it was lost\n{removed}\n") in log, log[-2000:]
    assert reaped.db.builds.find_one({"build_id": build_id})["unverified_image"] is None
