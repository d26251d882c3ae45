"""Dedicated service instances a test may stop, kill or freeze.

The shared Docker engine, registry, Redis and Mongo wire server serve every
test run on the machine; a test that must kill, freeze (SIGSTOP) or
reconfigure one starts its OWN instance here, on a free loopback port or a
socket and data dir of its own, and points its farm at it:

    with DedicatedServices(tmp_root) as services:       # all four, or pick
        services.seed_base_image("127.0.0.1:5000")     # the farm's base image, copied
        farm = Farm({**farm_env, **services.env()}, log_dir)
        with services.mongo.frozen():                  # SIGSTOP ... SIGCONT
            ...
        services.redis.kill(); services.redis.start()  # killed and restarted

Each instance is a child of the test process (it gets SIGKILL if the test
process dies) and logs to ``<root>/<name>.log``. Start, restart and stop
them from the test's main thread: the death signal follows the thread that
started the process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import docker
import pymongo
import requests

from common.config import load_config
from tests.support.farm import BIN, free_port
from workers.docker_engine import ENGINE_ENVIRONMENT, dockerd_command
from workers.leftovers import clear_pid_file, read_pid, runs, wait_gone
from workers.orphans import die_with_parent
from workers.registry import pull


def _die_with_test() -> None:
    die_with_parent(signal.SIGKILL)


def wait_for(predicate: object, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():  # type: ignore[operator]
                return True
        time.sleep(interval)
    return False


class ServiceProcess:
    """One server process: start, stop, kill, freeze and thaw it."""

    name = "service"
    start_timeout = 30.0
    #: Added to the test's environment for the server process.
    environment: dict[str, str] = {}

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_path = root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    # What a subclass says.
    def argv(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        """True when the service answers a request (not just accepts a connection)."""
        raise NotImplementedError

    # What every service does.
    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServiceProcess:
        """Start the server and wait until it answers."""
        assert not self.running(), f"{self.name} is already running"
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, **self.environment},
                                            preexec_fn=_die_with_test)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if self.answers():
                    return self
            if not self.running():
                break
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.kill()
        raise RuntimeError(f"dedicated {self.name} did not start; its log ends:\n{tail}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (thawing it first), then SIGKILL if it takes longer than ``timeout``."""
        if not self.running():
            return
        self.thaw()
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the service ends without a chance to clean up."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections are still accepted, nothing is answered. Returns once
        the process is stopped (on a loaded machine a thread may answer one more
        request between the signal and the stop)."""
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not _stopped(self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)

    def thaw(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisInstance(ServiceProcess):
    """redis-server without persistence: a kill loses its queues, as a crash would."""

    name = "redis"

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]

    def answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


class MongoInstance(ServiceProcess):
    """The Mongo wire server with on-disk storage, so data outlives a kill."""

    name = "mongo"
    start_timeout = 60.0

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root)
        self.port = port or free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self.storage = root / "mongo-data"

    def argv(self) -> list[str]:
        self.storage.mkdir(parents=True, exist_ok=True)
        return [str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", str(self.storage), "--log-level", "WARNING"]

    def answers(self) -> bool:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500, timeoutMS=1000)
        try:
            client.admin.command("ping")
            return True
        finally:
            client.close()

    def client(self) -> pymongo.MongoClient[dict[str, object]]:
        """A client for the test's own reads, bounded like the farm's."""
        return pymongo.MongoClient(self.url, tz_aware=True, timeoutMS=2000)


class RegistryInstance(ServiceProcess):
    """A registry with filesystem storage; its log records each request, so a
    test can count pushes (``manifest_puts``)."""

    name = "registry"

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root)
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.storage = root / "registry-data"
        self.config_path = root / "registry.yml"

    def argv(self) -> list[str]:
        self.config_path.write_text(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n")
        return ["docker-registry", "serve", str(self.config_path)]

    def answers(self) -> bool:
        return requests.get(f"http://{self.address}/v2/", timeout=1).status_code == 200

    def tags(self, repository: str) -> list[str]:
        response = requests.get(f"http://{self.address}/v2/{repository}/tags/list", timeout=5)
        if response.status_code == 404:
            return []
        return list(response.json().get("tags") or [])

    def manifest_puts(self, repository: str) -> int:
        """How many manifests were pushed to ``repository`` (one per completed push)."""
        needle = f'"PUT /v2/{repository}/manifests/'
        return sum(1 for line in self.log_text().splitlines()
                   if needle in line and '" 201 ' in line)


class DockerEngine(ServiceProcess):
    """A second dockerd: its own socket, data root, exec root and pid file, no
    bridge and no iptables (builds use the host's loopback network)."""

    name = "docker"
    start_timeout = 60.0
    environment = ENGINE_ENVIRONMENT

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        # The exec root holds containerd's sockets: keep its path short.
        self.exec_root = Path(f"/tmp/bbx-{uuid.uuid4().hex[:8]}")
        self.data_root = root / "docker-data"
        self.socket = root / "docker.sock"
        self.pidfile = root / "docker.pid"
        self.url = f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return dockerd_command(self.url, data_root=str(self.data_root),
                               exec_root=str(self.exec_root), pidfile=str(self.pidfile))

    @property
    def containerd_pidfile(self) -> Path:
        return self.exec_root / "containerd" / "containerd.pid"

    def start(self) -> DockerEngine:
        # A containerd of a killed engine may still be going, or its pid reused.
        clear_pid_file(self.containerd_pidfile, "containerd", say=lambda line: None, wait=30)
        clear_pid_file(self.pidfile, "dockerd", say=lambda line: None, wait=30)
        super().start()
        return self

    def kill(self) -> None:
        """SIGKILL the engine and its containerd, as a crash of the host's engine would."""
        containerd = read_pid(self.containerd_pidfile)
        super().kill()
        if containerd is not None and runs(containerd, "containerd"):
            os.kill(containerd, signal.SIGKILL)
            wait_gone(containerd, "containerd", 30)

    def answers(self) -> bool:
        client = self.client(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def client(self, timeout: int = 300) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def remove_files(self) -> None:
        """After ``stop``: the data root (unmounting anything left in it) and exec
        root, removed by a process of their own (images take a while to delete)."""
        for path in (self.exec_root, self.data_root):
            unmount_below(path)
            if path.exists():
                subprocess.Popen(["rm", "-rf", "--one-file-system", str(path)],
                                 start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)


def unmount_below(root: Path) -> None:
    """Lazily unmount anything a Docker engine left mounted at or under ``root``."""
    prefix = str(root.resolve())
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1] == prefix or line.split()[1].startswith(prefix + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


class DedicatedServices:
    """Redis, the Mongo wire server, a registry and a Docker engine of a test's own."""

    def __init__(self, root: Path, docker_engine: bool = True) -> None:
        self.root = root
        self.redis = RedisInstance(root)
        self.mongo = MongoInstance(root)
        self.registry = RegistryInstance(root)
        self.docker = DockerEngine(root) if docker_engine else None
        #: The base image a farm on this registry uses by default.
        self.base_image = load_config(environ={}, registry=self.registry.address).base_image_name

    @property
    def all(self) -> list[ServiceProcess]:
        return [s for s in (self.docker, self.redis, self.mongo, self.registry) if s is not None]

    def start(self) -> DedicatedServices:
        try:
            for service in self.all:
                service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every instance and remove its data (logs stay under ``root``)."""
        for service in reversed(self.all):
            with contextlib.suppress(Exception):
                service.stop()
        if self.docker is not None:
            self.docker.remove_files()
        for data in (self.mongo.storage, self.registry.storage):
            shutil.rmtree(data, ignore_errors=True)

    def __enter__(self) -> DedicatedServices:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Settings that point a farm at these instances."""
        env = {"REDIS_URL": self.redis.url, "MONGO_URL": self.mongo.url,
               "BINDER_REGISTRY": self.registry.address, "BINDER_BASE_IMAGE": self.base_image}
        if self.docker is not None:
            env["DOCKER_HOST"] = self.docker.url
        return env

    def seed_base_image(self, source_registry: str, image: str | None = None,
                        auth: tuple[str, str] | None = None) -> str:
        """Copy ``image`` (``repository:tag``; the farm's base image by default) from
        ``source_registry`` (e.g. the shared one) into this registry blob by blob (no
        recompression), then pull it into this engine. It is the base image of
        farms on these services from then on (``env``); returns its name here."""
        image = image or self.base_image.partition("/")[2]
        repository, _, tag = image.rpartition(":")
        copy_image(f"http://{source_registry}", f"http://{self.registry.address}",
                   repository, tag, auth)
        if self.docker is not None:
            client = self.docker.client()
            try:
                pull(client, f"{self.registry.address}/{image}")
            finally:
                client.close()
        self.base_image = f"{self.registry.address}/{image}"
        return self.base_image


MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def copy_image(source: str, target: str, repository: str, tag: str,
               auth: tuple[str, str] | None = None) -> None:
    """Copy one single-platform image between registries (base URLs) over the
    registry API: each blob that the target lacks, then the manifest."""
    manifest = requests.get(f"{source}/v2/{repository}/manifests/{tag}", auth=auth, timeout=30,
                            headers={"Accept": MANIFEST_V2})
    manifest.raise_for_status()
    media_type = manifest.headers.get("Content-Type", MANIFEST_V2)
    body = manifest.json()
    for digest in [body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]:
        if requests.head(f"{target}/v2/{repository}/blobs/{digest}", timeout=30).ok:
            continue
        upload = requests.post(f"{target}/v2/{repository}/blobs/uploads/", timeout=30)
        upload.raise_for_status()
        location = upload.headers["Location"]
        if location.startswith("/"):
            location = f"{target}{location}"
        with requests.get(f"{source}/v2/{repository}/blobs/{digest}", auth=auth, stream=True,
                          timeout=60) as blob:
            blob.raise_for_status()
            separator = "&" if "?" in location else "?"
            requests.put(f"{location}{separator}digest={digest}",
                         data=blob.iter_content(1 << 20), timeout=300).raise_for_status()
    requests.put(f"{target}/v2/{repository}/manifests/{tag}", data=manifest.content,
                 headers={"Content-Type": media_type}, timeout=30).raise_for_status()


def _stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state ``T``)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(stat.read_text().rpartition(")")[2].split()[0])
        except OSError:
            continue  # a thread that ended meanwhile
    return bool(states) and all(state in ("T", "t") for state in states)
