"""``binder-build up`` (what ``make up`` runs): the farm serves, and stops clean."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.farm import BIN, free_port, wait_http


def farm_processes(marker: str) -> list[int]:
    """Pids whose environment carries ``marker`` (the run's data dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            pids.append(int(entry.name))
    return pids


def test_up_serves_health_then_stops_everything_it_started(
        farm_env: dict[str, str], services: None, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    data_dir = tmp_path / f"up-{run}"
    port = free_port()
    env = {**os.environ, **farm_env, "BINDER_DATA_DIR": str(data_dir), "BINDER_PORT": str(port),
           "BINDER_FLOWER_PORT": str(free_port()), "REDIS_URL": "redis://127.0.0.1:6379/9",
           "BINDER_MONGO_DB": f"binder_up_{run}", "BINDER_WORKER_ID": f"up-{run}"}
    env.pop("BINDER_API_KEY")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([str(BIN / "binder-build"), "up"], env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        # The API answers before the worker does: wait for every component to be ok.
        deadline = time.monotonic() + 90
        health = wait_http(f"http://127.0.0.1:{port}/health/", lambda: up.poll() is None)
        while health.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            health = wait_http(f"http://127.0.0.1:{port}/health/", lambda: up.poll() is None)
        assert health.status_code == 200, log.read_text()[-3000:]
        components = {item["name"]: item["status"] for item in health.json()}
        assert components == {name: "ok" for name in
                              ("mongo", "redis", "docker", "registry", "workers")}
        text = log.read_text()
        key = (data_dir / "api-key").read_text().strip()
        assert f"key  {key}" in text and f"http://127.0.0.1:{port}/" in text
        assert "api.1" in text and "worker.1" in text and "beat.1" in text
        assert len(farm_processes(str(data_dir))) >= 4
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    deadline = time.monotonic() + 20
    while farm_processes(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert farm_processes(str(data_dir)) == []
