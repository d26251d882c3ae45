"""``binder-build up`` (what ``make up`` runs): the farm serves, stops clean, and
starts again cleanly after it was killed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors
import requests

from tests.integration.conftest import unique
from tests.support.farm import BIN, ApiClient, free_port, wait_http
from tests.support.git_server import GitServer
from tests.support.processes import commands_running
from tests.support.service_clients import base_image
from tests.support.services import unmount_below


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


def _on_shared_services(farm_env: dict[str, str], data_dir: Path) -> tuple[dict[str, str], int]:
    """The environment of an ``up`` with a data dir and ports of its own that uses
    the shared services, and its API's port."""
    run = uuid.uuid4().hex[:6]
    port = free_port()
    env = {**os.environ, **farm_env, "BINDER_DATA_DIR": str(data_dir), "BINDER_PORT": str(port),
           "BINDER_FLOWER_PORT": str(free_port()), "REDIS_URL": "redis://127.0.0.1:6379/9",
           "BINDER_MONGO_DB": f"binder_up_{run}", "BINDER_WORKER_ID": f"up-{run}"}
    env.pop("BINDER_API_KEY")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env, port


def _wait_farm_gone(data_dir: Path, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while farm_processes(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return farm_processes(str(data_dir))


def test_up_serves_health_then_stops_everything_it_started(
        farm_env: dict[str, str], services: None, tmp_path: Path) -> None:
    data_dir = tmp_path / "up"
    env, port = _on_shared_services(farm_env, data_dir)
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
        # A fresh store gets its collections from up itself, before any process starts.
        ready = f"store | collections and indexes of {env['BINDER_MONGO_DB']} ready"
        assert ready in text and text.index(ready) < text.index("api.1"), text[:3000]
        assert len(farm_processes(str(data_dir))) >= 4
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert _wait_farm_gone(data_dir, 20) == []


def celery_worker_main(data_dir: Path) -> int:
    """The pid of the farm's Celery worker main process (its pool processes are
    its children and share its command line)."""
    def command(pid: int) -> bytes:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    workers = {pid for pid in farm_processes(str(data_dir))
               if b"celery" in command(pid) and b"\0worker\0" in command(pid)}
    mains = [pid for pid in workers
             if int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
             not in workers]
    assert len(mains) == 1, (workers, mains)
    return mains[0]


def test_a_farm_process_that_dies_stops_up_with_a_failure_naming_it(
        farm_env: dict[str, str], services: None, tmp_path: Path) -> None:
    data_dir = tmp_path / "up"
    env, port = _on_shared_services(farm_env, data_dir)
    log = tmp_path / "up.log"
    up = _start_up(env, log)
    try:
        _wait_healthy(port, up, data_dir, log, 120)
        os.kill(celery_worker_main(data_dir), signal.SIGKILL)
        status = up.wait(60)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
    text = log.read_text()
    assert status == 1, text[-3000:]
    # -9, or 137 when a shell ran the process and reports how it ended.
    assert re.search(r"worker\.1 exited on its own \(rc=(-9|137)\), so the farm stopped",
                     text), text[-3000:]
    assert "the farm stopped because one of its processes exited" in text
    assert _wait_farm_gone(data_dir, 20) == []


def test_stopping_up_mid_build_hands_the_build_to_the_next_up_without_a_death(
        farm_env: dict[str, str], services: None, tmp_path: Path, git_server: GitServer,
        repo_url: str) -> None:
    """The operator's way to restart the farm: SIGTERM ``up``, start it again. honcho
    stops each process with SIGTERM to its process group, pool processes included."""
    data_dir = tmp_path / "up"
    env, port = _on_shared_services(farm_env, data_dir)
    log = tmp_path / "up.log"
    repo = unique("up-restart")
    marker = uuid.uuid4().hex
    git_server.make_repo(f"github/ops/{repo}", {"Dockerfile": (
        f"FROM {base_image()}\nRUN echo {marker} && sleep 45\n")})
    up = _start_up(env, log)
    try:
        _wait_healthy(port, up, data_dir, log, 120)
        api = ApiClient(f"http://127.0.0.1:{port}", (data_dir / "api-key").read_text().strip())
        name = api.start(f"{repo_url}/ops/{repo}").json()["name"]
        assert api.wait_phase(name, "building", timeout=90)["phase"] == "building"
        deadline = time.monotonic() + 60
        while not commands_running(marker) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert commands_running(marker), api.logs(name)
        stopped_at = time.monotonic()
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, _tail(log)
        assert time.monotonic() - stopped_at < 30, _tail(log)  # not waiting for the step
        up = _start_up(env, log)
        _wait_healthy(port, up, data_dir, log, 120)
        done = api.wait(name, timeout=240)
        logs = api.logs(name)
        assert done["status"] == "completed", (done, logs)
        assert done["attempt"] == 1, logs  # the same attempt, from building
        assert "== building handed back: the worker process got SIGTERM" in logs, logs
        assert "== building runs again: a stopping worker handed it back 1 time(s)" in logs
        assert "died" not in logs, logs
        assert "WorkerLostError" not in log.read_text(), _tail(log)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
    assert _wait_farm_gone(data_dir, 20) == []


def _start_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([str(BIN / "binder-build"), "up"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({exc})"


def _store_answer(data_dir: Path, mongo_url: str) -> str:
    """Whether the farm's store answers a ping of this process's own (with the run's
    credentials): tells a hung store from an API that cannot reach a live one."""
    from common.service_credentials import read_credentials

    credentials = read_credentials(data_dir / "credentials.json")
    auth = {} if credentials is None else {
        "username": credentials.mongo_username, "password": credentials.mongo_password,
        "authSource": "admin"}
    started = time.monotonic()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=5000, timeoutMS=5000, **auth)
    try:
        client.admin.command("ping")
        return f"answered in {time.monotonic() - started:.2f} s"
    except pymongo.errors.PyMongoError as exc:
        return f"no answer after {time.monotonic() - started:.2f} s: {exc}"
    finally:
        client.close()


def _why_not_healthy(data_dir: Path, log: Path, last: str, mongo_url: str = "") -> str:
    """What a failure needs to say: the last health answer (with each component's
    reason), a ping of the store from here, ``up``'s output with the farm's log
    lines, and each service's own log, the Mongo server's last (a report cut in
    the middle keeps its end)."""
    services = sorted((data_dir / "logs").glob("*.log"),
                      key=lambda path: (path.name == "mongo.log", path.name))
    store = f"the store, pinged from the test: {_store_answer(data_dir, mongo_url)}" \
        if mongo_url else ""
    return "\n".join([f"last health answer: {last}", store, f"--- {log} (tail):", _tail(log),
                      *(f"--- {path} (tail):\n{_tail(path, 1500)}" for path in services),
                      f"last health answer: {last}", store])


def _wait_healthy(port: int, up: subprocess.Popen[bytes], data_dir: Path, log: Path,
                  timeout: float, mongo_url: str = "") -> float:
    """Seconds until every component of the farm answers; fails past ``timeout``,
    saying why (see ``_why_not_healthy``)."""
    started = time.monotonic()
    last = "none"
    while time.monotonic() - started < timeout:
        assert up.poll() is None, _why_not_healthy(data_dir, log, last, mongo_url)
        key = data_dir / "api-key"  # health names each failing component's reason to a key
        headers = {"Authorization": key.read_text().strip()} if key.exists() else {}
        try:
            response = requests.get(f"http://127.0.0.1:{port}/health/", headers=headers,
                                    timeout=5)
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    raise AssertionError(f"not healthy after {timeout} s\n"
                         f"{_why_not_healthy(data_dir, log, last, mongo_url)}")


def test_up_again_after_sigkill_of_its_process_group_starts_cleanly(
        farm_env: dict[str, str], services: None) -> None:
    """Every service is the run's own (nothing answers where it points), so
    ``up`` starts them all, and a killed run leaves pid files, sockets and
    processes still stopping for the next one to deal with."""
    run = uuid.uuid4().hex[:6]
    data_dir = Path(tempfile.mkdtemp(prefix=f"bup-{run}-"))  # short: it holds a socket
    port = free_port()
    env = {**os.environ, **farm_env, "BINDER_DATA_DIR": str(data_dir), "BINDER_PORT": str(port),
           "BINDER_FLOWER_PORT": str(free_port()), "BINDER_WORKER_ID": f"up-{run}",
           "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "MONGO_URL": f"mongodb://127.0.0.1:{free_port()}", "BINDER_MONGO_DB": "farm",
           "BINDER_REGISTRY": f"127.0.0.1:{free_port()}",
           "DOCKER_HOST": f"unix://{data_dir}/docker.sock",
           # Its services' credentials are its own, not those of the shared ones.
           "BINDER_CREDENTIALS_FILE": str(data_dir / "credentials.json"),
           "BINDER_BASE_IMAGE": "127.0.0.1:5000/binder-base:latest"}
    env.pop("BINDER_API_KEY")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    log = data_dir / "up.log"
    try:
        for attempt in range(3):
            up = _start_up(env, log)
            _wait_healthy(port, up, data_dir, log, 120, env["MONGO_URL"])
            if attempt == 2:
                break
            os.killpg(up.pid, signal.SIGKILL)  # make's process group: make, up
            if attempt == 1:  # and then every process of the farm: pid files, sockets stay
                for pid in farm_processes(str(data_dir)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                assert (data_dir / "run" / "dockerd.pid").exists()
            up.wait(10)
            assert (data_dir / "run" / "up.pid").exists()  # left behind
        text = log.read_text()
        assert "previous run | the previous run (pid" in text
        assert "ended without stopping" in text
        assert "farm processes of the previous run are still there" in text
        assert "stale pid file of redis" in text
        assert f"stale pid file {data_dir}/run/dockerd.pid" in text
        up.send_signal(signal.SIGTERM)
        up.wait(90)
        deadline = time.monotonic() + 30
        while farm_processes(str(data_dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert farm_processes(str(data_dir)) == []
        assert sorted(path.name for path in (data_dir / "run").glob("*.pid")) == []
    finally:
        for pid in farm_processes(str(data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_below(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
