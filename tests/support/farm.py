"""Running the farm's real processes for integration tests.

``Farm`` starts the API under gunicorn and Celery workers/beat as the
``binder-build`` console script would, each with the test run's
environment and a log file, and stops them at the end. ``ApiClient`` talks
to the API over HTTP the way a launcher does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
import requests
from urllib3.exceptions import ProtocolError

from common.db import PREPARE_TIMEOUT_S, create_collections
from workers.orphans import die_with_parent

BIN = Path(sys.executable).parent


def wait_http(url: str, alive: Callable[[], bool], timeout: float = 60) -> requests.Response:
    """The first answer of ``url`` (any status), while ``alive()`` says its server runs.

    Raises ``RuntimeError`` when the server dies or never answers in ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=10)
        except (requests.ConnectionError, requests.Timeout):
            if not alive():
                raise RuntimeError(f"the server of {url} exited") from None
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class Farm:
    env: dict[str, str]
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        env = {**os.environ, **self.env, **(extra_env or {})}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen([str(BIN / "binder-build"), *args], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=die_with_parent)
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def start_worker(self, host: str, **extra_env: str) -> Process:
        process = self.start(f"worker-{host}", ["worker"],
                             {"BINDER_WORKER_ID": host, **extra_env})
        self.wait_worker(host, process)
        return process

    def stop_workers(self, host: str) -> None:
        """Stop every worker process of ``host`` this farm started and forget them, the
        ones that already ended too (a later test looks for the live one by name)."""
        for process in [p for p in self.processes if p.name == f"worker-{host}"]:
            process.stop()
            self.processes.remove(process)

    def start_recorded_worker(self, host: str, workers: Any, timeout: float = 90,
                              **extra_env: str) -> Process:
        """Start a worker of ``host`` and wait until it records itself ``up`` in
        ``workers`` (the farm's ``workers`` collection): from then on the reaper
        counts the host as live. For farms whose broker a test may stop, where a
        ping would fail for reasons of its own."""
        since = time.time()
        process = self.start(f"worker-{host}", ["worker"],
                             {"BINDER_WORKER_ID": host, **extra_env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                break
            doc = workers.find_one({"host": host, "state": "up"}, sort=[("started", -1)])
            if doc and doc["started"].timestamp() >= since - 1:
                return process
            time.sleep(0.3)
        raise RuntimeError(f"worker {host} did not start:\n{process.log_tail()}")

    def control_app(self) -> Any:
        """A Celery app speaking to this farm's broker (its own database and key prefix)."""
        from common.config import load_config
        from common.service_credentials import with_service_credentials
        from workers.celery_app import create_celery

        return create_celery(with_service_credentials(load_config(environ=self.env)))

    def wait_worker(self, host: str, process: Process, timeout: float = 60) -> None:
        app = self.control_app()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"worker {host} died:\n{process.log_tail()}")
            replies = app.control.ping(destination=[f"{host}@{socket.gethostname()}"],
                                       timeout=0.5)
            if replies:
                return
        raise RuntimeError(f"worker {host} did not answer:\n{process.log_tail()}")

    def start_api(self) -> tuple[Process, str]:
        port = free_port()
        process = self.start("api", ["api"], {"BINDER_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/openapi.json", process.alive, 90)  # a loaded machine imports slowly
        except RuntimeError as exc:
            raise RuntimeError(f"API did not start ({exc}):\n{process.log_tail()}") from exc
        return process, url

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@dataclass
class HostWorkers:
    """One worker per host of ``farm``, each started once its record in ``records``
    (the farm's ``workers`` collection) says it is up; ``ensure`` starts again
    the ones a test killed or stopped."""

    farm: Farm
    records: Any
    hosts: tuple[str, ...]
    timeout: float = 90
    processes: dict[str, Process] = field(default_factory=dict)

    def __getitem__(self, host: str) -> Process:
        return self.processes[host]

    def start(self, host: str, **extra_env: str) -> Process:
        process = self.farm.start_recorded_worker(host, self.records, self.timeout, **extra_env)
        self.processes[host] = process
        return process

    def ensure(self) -> None:
        for host in self.hosts:
            process = self.processes.get(host)
            if process is None or not process.alive():
                if process is not None and process in self.farm.processes:
                    self.farm.processes.remove(process)
                self.start(host)


def start_whole_farm(farm: Farm, records: Any, hosts: tuple[str, ...],
                     timeout: float = 90) -> tuple[str, HostWorkers]:
    """The API, beat and one worker per host of ``farm`` (see ``HostWorkers``);
    returns the API's URL and the workers."""
    # The collections and their indexes first, as ``up`` does (see common.db.prepare_store).
    with pymongo.timeout(PREPARE_TIMEOUT_S):
        create_collections(records.database)
    _, url = farm.start_api()
    farm.start("beat", ["beat"])
    workers = HostWorkers(farm, records, hosts, timeout)
    workers.ensure()
    return url, workers


class ApiClient:
    """The farm's HTTP API, as a launcher calls it."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.session = requests.Session()

    def request(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if auth:
            headers.setdefault("Authorization", self.key)
        for attempt in range(3):
            try:
                return self.session.request(method, f"{self.url}{path}", headers=headers,
                                            timeout=30, **kwargs)
            except requests.ConnectionError as exc:
                # A kept-alive connection the API closed as idle just as this request went
                # out on it ends with no answer at all ("connection aborted"): the API never
                # read the request, so a launcher sends it again, and so do the tests.
                if attempt == 2 or not isinstance(exc.args[0], ProtocolError):
                    raise
        raise AssertionError("unreachable")

    def start(self, repository: str, force: bool = False) -> Any:
        return self.request("POST", "/builds/repo",
                            json={"repository": repository, "force": force})

    def build(self, name: str) -> dict[str, Any]:
        response = self.request("GET", f"/builds/{name}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait(self, name: str, timeout: float = 600, until: tuple[str, ...] = (
            "completed", "failed", "cancelled")) -> dict[str, Any]:
        """Poll until the build's status is one of ``until``; return the record."""
        deadline = time.monotonic() + timeout
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            record = self.build(name)
            if record["status"] in until:
                return record
            time.sleep(0.1)
        raise AssertionError(f"{name} still {record.get('status')}/{record.get('phase')} "
                             f"after {timeout} s: {record}")

    def start_and_wait(self, repository: str, timeout: float = 600) -> dict[str, Any]:
        """Start a build of ``repository`` (accepted, or the test fails) and wait for its end."""
        response = self.start(repository)
        assert response.status_code == 200, response.text
        return self.wait(response.json()["name"], timeout)

    def template(self, name: str) -> dict[str, Any]:
        """The template of build ``name`` (it must have one)."""
        response = self.request("GET", f"/templates/{name}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_phase(self, name: str, phase: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            record = self.build(name)
            if record["phase"] == phase or record["status"] != "running":
                return record
            time.sleep(0.2)
        raise AssertionError(f"{name} never reached {phase}: {record}")

    def logs(self, name: str) -> str:
        response = self.request("GET", f"/builds/{name}/logs")
        response.raise_for_status()
        return str(response.text)
