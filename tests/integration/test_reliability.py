"""Reliability with real processes: no accepted build is lost or left stuck.

This module runs a farm of its own (API, two workers, beat) on a private
Redis and MongoDB database, so it can kill workers and stop Redis without
disturbing other tests. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pytest
import requests

from common.build_store import new_record
from tests.integration.conftest import API_KEY, DATA_DIR, STORE_BOUND, unique
from tests.support.farm import ApiClient, Farm, HostWorkers, start_whole_farm
from tests.support.git_server import GitServer
from tests.support.processes import commands_running
from tests.support.service_clients import base_image, mongo_client, registry_request
from tests.support.services import MongoInstance, RedisInstance

BASE_IMAGE = base_image()
HOSTS = ("rel-a", "rel-b")
#: How many times each phase is killed (the acceptance run uses 10 in all).
KILL_REPEATS = int(os.environ.get("BINDER_FAULT_REPEATS", "1"))


@dataclass
class Cluster:
    farm: Farm
    api: ApiClient
    redis: RedisInstance
    db: pymongo.database.Database
    workers: HostWorkers


@pytest.fixture(scope="module")
def cluster(farm_env: dict[str, str], services: None) -> Iterator[Cluster]:
    run = uuid.uuid4().hex[:6]
    log_dir = DATA_DIR / f"logs-reliability-{run}"
    log_dir.mkdir(parents=True, exist_ok=True)
    redis_server = RedisInstance(log_dir)
    redis_server.start()
    db_name = f"{farm_env['BINDER_MONGO_DB']}_rel_{run}"
    env = {**farm_env, "REDIS_URL": redis_server.url,
           "BINDER_MONGO_DB": db_name}
    farm = Farm(env, log_dir)
    client = mongo_client()
    try:
        url, workers = start_whole_farm(farm, client[db_name].workers, HOSTS, timeout=60)
        yield Cluster(farm, ApiClient(url, API_KEY), redis_server, client[db_name], workers)
    finally:
        farm.stop()
        redis_server.stop()
        client.drop_database(db_name)
        client.close()


def slow_dockerfile(seconds: int, extra: str = "") -> str:
    return (f"FROM {BASE_IMAGE}\nUSER root\nRUN echo {uuid.uuid4().hex} > /id && sleep {seconds}"
            f"\n{extra}USER ${{NB_USER}}\n")


def images_in_registry(image: str) -> list[str]:
    repository = image.partition("/")[2].rpartition(":")[0]
    response = registry_request("GET", f"/v2/{repository}/tags/list")
    return list(response.json().get("tags") or [])


def wait_until(predicate, timeout: float, interval: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


PHASE_SETUPS = {
    # phase: (repository files, git-server delay for this repo)
    "fetching": (lambda: {"Dockerfile": slow_dockerfile(1)}, 6.0),
    "building": (lambda: {"Dockerfile": slow_dockerfile(12)}, 0.0),
    "pushing": (lambda: {"Dockerfile": slow_dockerfile(
        1, "RUN head -c 400000000 /dev/urandom > /big\n")}, 0.0),
}


@pytest.mark.parametrize("phase", [p for p in PHASE_SETUPS for _ in range(KILL_REPEATS)])
def test_sigkill_worker_mid_phase_build_completes_elsewhere(
        cluster: Cluster, git_server: GitServer, repo_url: str, phase: str) -> None:
    cluster.workers.ensure()
    files, delay = PHASE_SETUPS[phase]
    repo = unique(f"kill-{phase}")
    git_server.make_repo(f"github/rel/{repo}", files())
    if delay:
        git_server.delays[repo] = delay
    try:
        response = cluster.api.start(f"{repo_url}/rel/{repo}")
        assert response.status_code == 200, response.text
        name = response.json()["name"]
        record = cluster.api.wait_phase(name, phase, timeout=120)
        assert record["phase"] == phase, record
        victim = record["worker"]
        git_server.delays.pop(repo, None)
        cluster.workers[victim].signal(signal.SIGKILL)
        done = cluster.api.wait(name, timeout=240)
    finally:
        git_server.delays.pop(repo, None)
    assert done["status"] == "completed", (done, cluster.api.logs(name))
    assert done["attempt"] == 2
    assert done["worker"] != victim
    # The log says why attempt 2 ran, as the record's ``lost`` does, before it ran.
    logs = cluster.api.logs(name)
    lost = cluster.db.builds.find_one({"name": name})["lost"]["1"]["reason"]
    restarted = f"== restarted by the farm: {lost}; attempt 2 starts from fetch\n"
    assert restarted in logs and f"its worker {victim}@" in lost, (lost, logs[-3000:])
    assert logs.index(restarted) < logs.index("(attempt 2)\n"), logs[-3000:]
    assert images_in_registry(done["image-name"]) == [done["image-name"].rpartition(":")[2]]
    assert cluster.db.builds.count_documents({"status": "running", "name": name}) == 0


def test_redis_stopped_for_20s_loses_no_build(cluster: Cluster, git_server: GitServer,
                                              repo_url: str) -> None:
    cluster.workers.ensure()
    names = []
    for index in range(5):
        repo = unique(f"redis{index}")
        git_server.make_repo(f"github/rel/{repo}", {"Dockerfile": slow_dockerfile(4)})
        response = cluster.api.start(f"{repo_url}/rel/{repo}")
        assert response.status_code == 200, response.text
        names.append(response.json()["name"])
    time.sleep(2)
    cluster.redis.stop()
    time.sleep(20)
    cluster.redis.start()
    for name in names:
        record = cluster.api.wait(name, timeout=300)
        assert record["status"] == "completed", (record, cluster.api.logs(name))


def test_concurrent_starts_create_one_build(cluster: Cluster, git_server: GitServer,
                                            repo_url: str) -> None:
    repo = unique("race")
    git_server.make_repo(f"github/rel/{repo}", {"Dockerfile": slow_dockerfile(3)})
    barrier = threading.Barrier(20)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def start() -> None:
        client = ApiClient(cluster.api.url, API_KEY)
        barrier.wait(10)
        response = client.start(f"{repo_url}/rel/{repo}")
        with lock:
            results.append(response)

    threads = [threading.Thread(target=start) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = sorted(response.status_code for response in results)
    assert codes == [200] + [409] * 19, [r.text for r in results if r.status_code != 409]
    assert all(r.json()["type"] == "alreadyBuilding" for r in results if r.status_code == 409)
    name = next(r.json()["name"] for r in results if r.status_code == 200)
    assert cluster.api.wait(name, timeout=180)["status"] == "completed"
    assert cluster.db.builds.count_documents({"name": name}) == 1


def test_build_over_its_timeout_fails_and_its_container_is_gone(
        cluster: Cluster, git_server: GitServer, repo_url: str) -> None:
    cluster.workers.ensure()
    repo = unique("timeout")
    git_server.make_repo(f"github/rel/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN sleep 601\n", ".binder.yml": "timeout: 1\n"})
    response = cluster.api.start(f"{repo_url}/rel/{repo}")
    name = response.json()["name"]
    record = cluster.api.wait(name, timeout=150)
    assert record["status"] == "failed"
    assert record["error"].startswith("The build timed out after 1 min in phase building"), record
    assert record["cause"] == "timeout", record
    assert wait_until(lambda: not commands_running("sleep 601"), 15)


def test_cancel_ends_build_within_10s_and_removes_its_container(
        cluster: Cluster, git_server: GitServer, repo_url: str) -> None:
    cluster.workers.ensure()
    repo = unique("cancel")
    git_server.make_repo(f"github/rel/{repo}", {"Dockerfile": f"FROM {BASE_IMAGE}\n"
                                                               "RUN sleep 602\n"})
    name = cluster.api.start(f"{repo_url}/rel/{repo}").json()["name"]
    assert cluster.api.wait_phase(name, "building", timeout=60)["phase"] == "building"
    assert wait_until(lambda: bool(commands_running("sleep 602")), 30)
    started = time.monotonic()
    response = cluster.api.request("DELETE", f"/builds/{name}")
    assert response.status_code == 200, response.text
    record = cluster.api.wait(name, timeout=10)
    assert record["status"] == "cancelled", record
    assert time.monotonic() - started < 10
    assert wait_until(lambda: not commands_running("sleep 602"), 10)


#: The build step the hand-back tests stop: long enough that a stop which waited
#: for it would show, short enough to run again in full.
STEP_SECONDS = 27


@pytest.mark.parametrize("how", ["process group", "main process"])
def test_sigterm_to_a_worker_hands_its_build_back_and_it_completes_without_a_death(
        cluster: Cluster, git_server: GitServer, repo_url: str, how: str) -> None:
    """honcho (``up``) and systemd send SIGTERM to every process of a worker; an
    operator may send it to the main process only. Either is an orderly stop."""
    cluster.workers.ensure()
    repo = unique("handback")
    step = f"sleep {STEP_SECONDS}"
    git_server.make_repo(f"github/rel/{repo}", {"Dockerfile": slow_dockerfile(STEP_SECONDS)})
    name = cluster.api.start(f"{repo_url}/rel/{repo}").json()["name"]
    assert cluster.api.wait_phase(name, "building", timeout=60)["phase"] == "building"
    assert wait_until(lambda: bool(commands_running(step)), 30)
    step_started = time.monotonic()
    host = cluster.api.build(name)["worker"]
    worker = cluster.workers[host]
    if how == "process group":
        worker.signal(signal.SIGTERM)
    else:
        os.kill(worker.popen.pid, signal.SIGTERM)
    worker.popen.wait(30)
    assert time.monotonic() - step_started < STEP_SECONDS - 5  # it did not wait for the step
    assert wait_until(lambda: not commands_running(step), 10)  # the step was stopped
    worker_log = worker.log_tail(20000)
    assert f"handed building of {name} back" in worker_log, worker_log
    assert "WorkerLostError" not in worker_log and "exited with" not in worker_log, worker_log

    record = cluster.db.builds.find_one({"name": name})
    assert record is not None
    assert (record["status"], record["attempt"], record["phase"]) == ("running", 1, "building")
    assert record["lease"]["worker"] is None and record["lease"]["released"] == "building"
    assert record["deliveries"]["1"]["building"] == 1
    assert record["handed_back"]["1"]["building"] == 1
    assert "== building handed back: the worker process got SIGTERM" in cluster.api.logs(name)

    cluster.workers.ensure()  # its host's next worker runs building again, and on
    done = cluster.api.wait(name, timeout=240)
    logs = cluster.api.logs(name)
    assert done["status"] == "completed", (done, logs)
    assert (done["attempt"], done["worker"]) == (1, host)
    record = cluster.db.builds.find_one({"name": name})
    assert record is not None
    assert record["deliveries"]["1"]["building"] == 2
    assert "== building runs again: a stopping worker handed it back 1 time(s)" in logs, logs
    assert "died" not in logs, logs


@pytest.mark.parametrize("fault", ["down", "frozen"])
def test_start_with_broker_down_or_frozen_is_accepted_fast_and_built_later(
        cluster: Cluster, git_server: GitServer, repo_url: str, fault: str) -> None:
    cluster.workers.ensure()
    repo = unique(f"nobroker-{fault}")
    git_server.make_repo(f"github/rel/{repo}", {"a.txt": "x"})
    if fault == "down":
        cluster.redis.stop()
    else:
        cluster.redis.freeze()
    try:
        started = time.monotonic()
        response = cluster.api.start(f"{repo_url}/rel/{repo}")
        elapsed = time.monotonic() - started
    finally:
        if fault == "down":
            cluster.redis.start()
        else:
            cluster.redis.thaw()
    assert response.status_code == 200, response.text
    # Bounded by the API's one-second send timeout, not the broker's socket timeouts
    # (10 s); on a loaded two-core machine the rest of the start takes a second or two.
    assert elapsed < 5
    body = response.json()
    assert (body["status"], body["phase"]) == ("running", "queued")
    record = cluster.api.wait(body["name"], timeout=120)
    assert record["status"] == "completed", (record, cluster.api.logs(body["name"]))


def _timed_get(api: ApiClient, path: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = api.request("GET", path)
    return response.status_code, response.json().get("type", ""), time.monotonic() - started


def _until_200(api: ApiClient, path: str, timeout: float) -> float:
    """Seconds until ``path`` answers 200 (fails past ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _timed_get(api, path)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{path} did not answer 200 within {timeout} s")


def test_store_frozen_or_down_answers_503_fast_and_recovers(
        farm_env: dict[str, str], services: None, tmp_path: Path) -> None:
    mongo = MongoInstance(tmp_path).start()
    farm = Farm({**farm_env, "MONGO_URL": mongo.url, **STORE_BOUND}, tmp_path / "logs")
    client = mongo.client()
    try:
        client[farm_env["BINDER_MONGO_DB"]].builds.insert_one(new_record("probe", {
            "display_name": "o/probe", "repository": "https://github.com/o/probe"}))
        _, url = farm.start_api()
        api = ApiClient(url, API_KEY)
        assert _timed_get(api, "/builds/probe")[0] == 200
        # Frozen: the server accepts connections and never answers.
        with mongo.frozen():
            for _ in range(3):
                code, kind, elapsed = _timed_get(api, "/builds/probe")
                assert (code, kind) == (503, "noDatabase")
                assert elapsed < 2.5
        assert _until_200(api, "/builds/probe", 5) < 5
        # Down: connections are refused.
        mongo.stop()
        for method, path, body in (("GET", "/builds/probe", None),
                                   ("POST", "/builds/repo",
                                    {"repository": "https://github.com/o/r"})):
            started = time.monotonic()
            response = api.request(method, path, json=body)
            assert time.monotonic() - started < 2.5
            assert response.status_code == 503, response.text
            assert response.json()["type"] == "noDatabase"
        mongo.start()
        assert _until_200(api, "/builds/probe", 5) < 5
    finally:
        client.close()
        farm.stop()
        mongo.stop()
