"""The embedded farm: start on this machine whatever the config does not point elsewhere.

Each ``ensure_*`` reuses a component that already answers and otherwise
starts it as a child process (logs under ``DATA_DIR/logs``), returning the
``Service`` it started (or ``None`` when it reused one) so the caller stops
exactly what it started and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common.config import Config
from common.probes import check_docker, check_mongo, check_redis, check_registry

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


class ServiceError(RuntimeError):
    """A component could not be started; the message says what to do."""


@dataclass
class Service:
    """A child process this launcher started."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for action in self.cleanup:
            action()


def _answers(check: Callable[[Config], None], config: Config) -> bool:
    try:
        check(config)
        return True
    except Exception:
        return False


def _spawn(name: str, argv: list[str], config: Config, detach: bool) -> Service:
    logs = config.data_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    program = shutil.which(argv[0], path=search)
    if program is None:
        raise ServiceError(f"{argv[0]} is not installed; run `make install` (needs root) "
                           f"or point the farm at an existing {name}.")
    argv = [program, *argv[1:]]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=detach)
    log.info("started %s (pid %s), log %s", name, process.pid, log_path)
    return Service(name, process, log_path)


def _wait(service: Service, check: Callable[[Config], None], config: Config,
          seconds: float) -> Service:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(check, config):
            return service
        if service.process.poll() is not None:
            break
        time.sleep(0.3)
    service.stop()
    tail = service.log_path.read_text(errors="replace")[-800:]
    raise ServiceError(f"{service.name} did not come up; its log ends:\n{tail}")


def ensure_redis(config: Config, detach: bool = False) -> Service | None:
    if _answers(check_redis, config):
        return None
    url = urlsplit(config.redis_url)
    if url.hostname not in LOOPBACK:
        raise ServiceError(f"Redis at {config.redis_url} does not answer; check REDIS_URL.")
    argv = ["redis-server", "--port", str(url.port or 6379), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no"]
    return _wait(_spawn("redis", argv, config, detach), check_redis, config, 20)


def ensure_mongo(config: Config, detach: bool = False) -> Service | None:
    if _answers(check_mongo, config):
        return None
    if config.mongo_url:
        raise ServiceError(f"MongoDB at {config.mongo_url} does not answer; check MONGO_URL.")
    storage = config.data_path / "mongo"
    storage.mkdir(parents=True, exist_ok=True)
    argv = ["secantusd-py", "--host", "127.0.0.1", "--port", "27017",
            "--storage-path", str(storage), "--log-level", "WARNING"]
    return _wait(_spawn("mongo", argv, config, detach), check_mongo, config, 60)


def ensure_docker(config: Config, detach: bool = False) -> Service | None:
    if _answers(check_docker, config):
        return None
    if config.docker_host != DEFAULT_DOCKER_SOCKET or os.geteuid() != 0:
        raise ServiceError(f"No Docker engine answers at {config.docker_host}; start one "
                           "or set DOCKER_HOST (the farm starts one only as root).")
    argv = ["dockerd", "--host", DEFAULT_DOCKER_SOCKET, "--bridge=none",
            "--iptables=false", "--ip-masq=false"]
    return _wait(_spawn("docker", argv, config, detach), check_docker, config, 60)


def registry_config_text(config: Config) -> str:
    storage = config.data_path / "registry"
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {config.registry}\n"
    )


def ensure_registry(config: Config, detach: bool = False) -> Service | None:
    if _answers(check_registry, config):
        return None
    host = config.registry.rsplit(":", 1)[0]
    if host not in LOOPBACK:
        raise ServiceError(f"The registry {config.registry} does not answer; check "
                           "BINDER_REGISTRY.")
    config.data_path.mkdir(parents=True, exist_ok=True)
    conf = config.data_path / "registry.yml"
    conf.write_text(registry_config_text(config))
    service = _spawn("registry", ["docker-registry", "serve", str(conf)], config, detach)
    return _wait(service, check_registry, config, 30)


STARTERS: dict[str, Callable[[Config, bool], Service | None]] = {
    "docker": ensure_docker,
    "redis": ensure_redis,
    "mongo": ensure_mongo,
    "registry": ensure_registry,
}


def ensure_services(config: Config, detach: bool = False) -> list[Service]:
    """Start every missing component; on failure stop what was started and raise."""
    started: list[Service] = []
    try:
        for starter in STARTERS.values():
            service = starter(config, detach)
            if service is not None:
                started.append(service)
    except BaseException:
        stop_services(started)
        raise
    return started


def stop_services(services: list[Service]) -> None:
    for service in reversed(services):
        with contextlib.suppress(Exception):
            service.stop()
