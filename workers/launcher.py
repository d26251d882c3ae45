"""The embedded farm: start on this machine whatever the config does not point elsewhere.

Each ``ensure_*`` reuses a component that already answers and otherwise
starts it as a child process (logs under ``DATA_DIR/logs``), returning the
``Service`` it started (or ``None`` when it reused one) so the caller stops
exactly what it started and nothing else. Redis, the Mongo wire server and
the registry it starts require the credentials of
``common/service_credentials.py`` (see ``workers/service_auth.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common.config import Config
from common.probes import check_docker, check_mongo, check_redis, check_registry
from common.service_credentials import (
    EMBEDDED_MONGO_URL,
    ServiceCredentials,
    as_configured,
    ensure_credentials,
    is_loopback,
    mongo_address,
    record_address,
    redis_address,
    registry_address,
    with_service_credentials,
)
from workers import service_auth
from workers.docker_engine import ENGINE_ENVIRONMENT, dockerd_command

log = logging.getLogger(__name__)

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


def _problem(check: Callable[[Config], None], config: Config) -> str | None:
    """Why ``check`` fails, or ``None`` when the component answers."""
    try:
        check(config)
        return None
    except Exception as exc:
        return str(exc) or type(exc).__name__


def _answers(check: Callable[[Config], None], config: Config) -> bool:
    return _problem(check, config) is None


def _refuse_if_taken(name: str, address: str, problem: str | None, setting: str) -> None:
    """Something listens at ``address`` but did not answer the farm: say what to do."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except OSError:
        return  # nothing there: the caller starts it
    raise ServiceError(
        f"{name} at {address} answers, but not to this farm ({problem}). If another farm "
        "started it, point BINDER_CREDENTIALS_FILE at that farm's credentials.json (or put "
        f"its credentials in {setting}); otherwise stop it and the farm starts its own.")


def _program(name: str, component: str) -> str:
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    program = shutil.which(name, path=search)
    if program is None:
        raise ServiceError(f"{name} is not installed; run `make install` (needs root) "
                           f"or point the farm at an existing {component}.")
    return program


def _spawn(name: str, argv: list[str], config: Config, detach: bool,
           env: dict[str, str] | None = None) -> Service:
    log_path = _log_path(config, name)
    argv = [_program(argv[0], name), *argv[1:]]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=detach,
                                   env={**os.environ, **(env or {})})
    log.info("started %s (pid %s), log %s", name, process.pid, log_path)
    return Service(name, process, log_path)


def _log_path(config: Config, name: str) -> Path:
    logs = config.data_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"


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


def ensure_redis(config: Config, credentials: ServiceCredentials,
                 detach: bool = False) -> Service | None:
    problem = _problem(check_redis, config)
    if problem is None:
        return None
    address = redis_address(config.redis_url)
    if not is_loopback(urlsplit(config.redis_url).hostname):
        raise ServiceError(f"Redis at {address} does not answer ({problem}); check REDIS_URL.")
    _refuse_if_taken("Redis", address, problem, "REDIS_URL")
    port = int(address.rpartition(":")[2])
    conf = service_auth.write_private(config.data_path / "redis.conf",
                                      service_auth.redis_config_text(port, credentials))
    service = _spawn("redis", ["redis-server", str(conf)], config, detach)
    record_address(config, "redis")
    return _wait(service, check_redis, with_service_credentials(config), 20)


def ensure_mongo(config: Config, credentials: ServiceCredentials,
                 detach: bool = False) -> Service | None:
    problem = _problem(check_mongo, config)
    if problem is None:
        return None
    url = config.mongo_url or EMBEDDED_MONGO_URL
    address = mongo_address(url)
    if not is_loopback(urlsplit(url).hostname):
        raise ServiceError(f"MongoDB at {address} does not answer ({problem}); "
                           "check MONGO_URL.")
    _refuse_if_taken("MongoDB", address, problem, "MONGO_URL")
    storage = config.data_path / "mongo"
    storage.mkdir(parents=True, exist_ok=True)
    marker = config.data_path / "mongo.provisioned"
    if not service_auth.mongo_user_provisioned(marker, credentials):
        try:
            service_auth.provision_mongo_user(_program("secantusd-py", "MongoDB"), storage,
                                              credentials, _log_path(config, "mongo"), marker)
        except RuntimeError as exc:
            raise ServiceError(str(exc)) from exc
    argv = ["secantusd-py", "--host", "127.0.0.1", "--port", address.rpartition(":")[2],
            "--storage-path", str(storage), "--log-level", "WARNING", "--auth"]
    service = _spawn("mongo", argv, config, detach)
    record_address(config, "mongo")
    return _wait(service, check_mongo, with_service_credentials(config), 60)


def ensure_docker(config: Config, credentials: ServiceCredentials,
                  detach: bool = False) -> Service | None:
    if _answers(check_docker, config):
        return None
    if config.docker_host != DEFAULT_DOCKER_SOCKET or os.geteuid() != 0:
        raise ServiceError(f"No Docker engine answers at {config.docker_host}; start one "
                           "or set DOCKER_HOST (the farm starts one only as root).")
    service = _spawn("docker", dockerd_command(DEFAULT_DOCKER_SOCKET), config, detach,
                     ENGINE_ENVIRONMENT)
    return _wait(service, check_docker, config, 60)


def ensure_registry(config: Config, credentials: ServiceCredentials,
                    detach: bool = False) -> Service | None:
    problem = _problem(check_registry, config)
    if problem is None:
        return None
    address = registry_address(config.registry)
    if not is_loopback(address.rpartition(":")[0]):
        raise ServiceError(f"The registry {config.registry} does not answer ({problem}); "
                           "check BINDER_REGISTRY.")
    _refuse_if_taken("The registry", address, problem,
                     "BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD")
    htpasswd = service_auth.write_private(
        config.data_path / "registry.htpasswd",
        service_auth.htpasswd_line(credentials.registry_username,
                                   credentials.registry_password))
    conf = service_auth.write_private(
        config.data_path / "registry.yml",
        service_auth.registry_config_text(address, config.data_path / "registry", htpasswd,
                                          credentials))
    service = _spawn("registry", ["docker-registry", "serve", str(conf)], config, detach)
    record_address(config, "registry")
    return _wait(service, check_registry, with_service_credentials(config), 30)


STARTERS: dict[str, Callable[[Config, ServiceCredentials, bool], Service | None]] = {
    "docker": ensure_docker,
    "redis": ensure_redis,
    "mongo": ensure_mongo,
    "registry": ensure_registry,
}


def ensure_services(config: Config, detach: bool = False) -> list[Service]:
    """Start every missing component; on failure stop what was started and raise.

    Nothing is made when every component answers. Otherwise the local
    services' credentials are made first (when there are none), and the
    services started here require them: afterwards
    ``with_service_credentials(config)`` reaches every component.
    """
    config = with_service_credentials(config)
    checks = {"docker": check_docker, "redis": check_redis, "mongo": check_mongo,
              "registry": check_registry}
    if all(_answers(check, config) for check in checks.values()):
        return []
    made = ensure_credentials(config)
    config = with_service_credentials(config)
    credentials = as_configured(config, made)
    started: list[Service] = []
    try:
        for starter in STARTERS.values():
            service = starter(config, credentials, detach)
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
