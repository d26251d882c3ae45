"""A host's record follows its builds at once, not at its next heartbeat.

A farm of its own whose worker beats every 600 s: what its host record says
about running builds can only change within the test's waits because the
worker tells the advert (``common/host_events.py``). A host that learnt late that its build ended
would leave the builds waiting in the shared queue idle for a heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common.config import get_config
from tests.integration.conftest import API_KEY, DATA_DIR, RUN_ID, unique
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from tests.support.processes import wait_until

HOST = f"events-{RUN_ID}"


@pytest.fixture(scope="module")
def slow_beat(farm_env: dict[str, str], services: None) -> Iterator[ApiClient]:
    env = {**farm_env, "BINDER_MONGO_DB": f"binder_test_{RUN_ID}_events",
           "BINDER_BROKER_PREFIX": f"test-{RUN_ID}-events:",
           "BINDER_IMAGE_PREFIX": f"test-{RUN_ID}-events-", "BINDER_VERIFY": "false",
           "BINDER_HEARTBEAT_INTERVAL": "600", "BINDER_HEARTBEAT_STALE": "1800"}
    farm = Farm(env, DATA_DIR / "logs-events")
    try:
        _, url = farm.start_api()
        worker = farm.start(f"worker-{HOST}", [
            "worker", "--host-id", HOST, "--concurrency", "1"],
            {"BINDER_DATA_DIR": str(DATA_DIR / "data-events")})
        farm.wait_worker(HOST, worker)
        api = ApiClient(url, API_KEY)
        assert wait_until(lambda: host(api)["state"] == "up", 30)
        yield api
    finally:
        farm.stop()
        from common.db import get_client

        get_client().drop_database(f"binder_test_{RUN_ID}_events")


def host(api: ApiClient) -> dict[str, Any]:
    hosts = {h["host"]: h for h in api.request("GET", "/hosts/").json()}
    return hosts.get(HOST, {"state": "unknown", "running": []})


def advertised_running() -> list[str]:
    """What the host's own record says it runs (the API reads the builds instead)."""
    from common.db import get_client

    record = get_client()[f"binder_test_{RUN_ID}_events"].hosts.find_one({"host": HOST}) or {}
    return list(record.get("running") or [])


def slow_repo(git_server: GitServer, seconds: int) -> str:
    repo = unique("slow")
    git_server.make_repo(f"github/events/{repo}", {"Dockerfile": (
        f"FROM {get_config().base_image_name}\nRUN echo {repo} && sleep {seconds}\n")})
    return f"{git_server.url}/github/events/{repo}"


def test_the_host_record_shows_a_build_while_it_runs_and_frees_the_host_when_it_ends(
        slow_beat: ApiClient, git_server: GitServer) -> None:
    api = slow_beat
    first, second = slow_repo(git_server, 8), slow_repo(git_server, 1)
    names = []
    for url in (first, second):
        response = api.start(url)
        assert response.status_code == 200, response.text
        names.append(response.json()["name"])
    # The first runs; the host is full and says so, though it has not beaten since.
    assert wait_until(lambda: advertised_running() == [names[0]], 30), advertised_running()
    assert host(api)["running"] == [names[0]]
    assert api.build(names[1])["phase"] == "queued"
    # When it ends, the host takes the second at once (600 s before its next beat).
    for name in names:
        record = api.wait(name, 120)
        assert record["status"] == "completed", record
    assert wait_until(lambda: advertised_running() == [], 30), advertised_running()
    assert host(api)["running"] == []

