"""``GET /health/``: every component, 503 naming a stopped one, recovery."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.farm import ApiClient, Farm
from tests.support.services import RedisInstance


def statuses(api: ApiClient) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    response = api.request("GET", "/health/", auth=False)
    elapsed = time.monotonic() - started
    return response.status_code, {c["name"]: c["status"] for c in response.json()}, elapsed


def test_health_lists_all_components_ok(api: ApiClient) -> None:
    code, components, _ = statuses(api)
    assert code == 200
    assert components == {name: "ok" for name in
                          ("mongo", "redis", "docker", "registry", "workers")}


def test_health_names_stopped_redis_fast_and_recovers(farm_env: dict[str, str], services: None,
                                                      tmp_path: Path) -> None:
    redis = RedisInstance(tmp_path)
    redis.start()
    env = {**farm_env, "REDIS_URL": redis.url}
    farm = Farm(env, tmp_path / "logs")
    try:
        _, url = farm.start_api()
        farm.start("worker-health", ["worker"], {"BINDER_WORKER_ID": "health"})
        api = ApiClient(url, env["BINDER_API_KEY"])
        deadline = time.monotonic() + 60
        while statuses(api)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert statuses(api)[0] == 200
        redis.stop()
        code, components, elapsed = statuses(api)
        assert code == 503
        assert components["redis"] == "failing"
        assert components["mongo"] == components["docker"] == components["registry"] == "ok"
        assert elapsed < 2
        # why it fails names an internal address: only a key gets to read it
        anonymous = api.request("GET", "/health/", auth=False).json()
        assert all(entry["error"] is None for entry in anonymous), anonymous
        detailed = {entry["name"]: entry["error"]
                    for entry in api.request("GET", "/health/").json()}
        assert f"127.0.0.1:{redis.port}" in detailed["redis"]
        redis.start()
        deadline = time.monotonic() + 60
        while statuses(api)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        code, components, _ = statuses(api)
        assert code == 200 and components["redis"] == "ok" and components["workers"] == "ok"
    finally:
        farm.stop()
        redis.stop()
