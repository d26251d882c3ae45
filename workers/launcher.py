"""The embedded farm: start on this machine whatever the config does not point elsewhere.

Each ``ensure_*`` reuses a component that already answers and otherwise
starts it as a child process (logs under ``DATA_DIR/logs``), returning the
``Service`` it started (or ``None`` when it reused one) so the caller stops
exactly what it started and nothing else. Redis, the Mongo wire server and
the registry it starts require the credentials of
``common/service_credentials.py`` (see ``workers/service_auth.py``). With
the run files of ``up`` (``workers/previous_run.py``), what a killed run
left of a service is stopped (or waited for) first, what is started is
recorded and ends with ``up`` (it gets SIGTERM when ``up`` dies), and stale
pid files and sockets of the Docker engine are removed before it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    credentials_path,
    ensure_credentials,
    is_loopback,
    mongo_address,
    read_credentials,
    record_address,
    redis_address,
    registry_address,
    with_service_credentials,
)
from workers import service_auth
from workers.docker_engine import ENGINE_ENVIRONMENT, dockerd_command
from workers.leftovers import clear_pid_file, clear_socket
from workers.orphans import die_with_parent
from workers.previous_run import STOP_WAIT, RunFiles

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

    @property
    def pid(self) -> int:
        return self.process.pid

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
           env: dict[str, str] | None = None, run: RunFiles | None = None) -> Service:
    log_path = _log_path(config, name)
    argv = [_program(argv[0], name), *argv[1:]]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=detach,
                                   env={**os.environ, **(env or {})},
                                   preexec_fn=die_with_parent if run is not None else None)
    log.info("started %s (pid %s), log %s", name, process.pid, log_path)
    service = Service(name, process, log_path)
    if run is not None:
        run.record_service(name, process.pid)
        service.cleanup.append(lambda: run.forget(f"{name}.pid"))
    return service


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


def ensure_redis(config: Config, credentials: ServiceCredentials, detach: bool = False,
                 run: RunFiles | None = None) -> Service | None:
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
    service = _spawn("redis", ["redis-server", str(conf)], config, detach, run=run)
    record_address(config, "redis")
    return _wait(service, check_redis, with_service_credentials(config), 20)


def ensure_mongo(config: Config, credentials: ServiceCredentials, detach: bool = False,
                 run: RunFiles | None = None) -> Service | None:
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
    service = _spawn("mongo", argv, config, detach, run=run)
    record_address(config, "mongo")
    return _wait(service, check_mongo, with_service_credentials(config), 60)


def ensure_docker(config: Config, credentials: ServiceCredentials, detach: bool = False,
                  run: RunFiles | None = None) -> Service | None:
    if _answers(check_docker, config):
        return None
    if not config.docker_host.startswith("unix://") or os.geteuid() != 0:
        raise ServiceError(f"No Docker engine answers at {config.docker_host}; start one "
                           "or set DOCKER_HOST (the farm starts one only as root, on a "
                           "unix socket).")
    socket_path = Path(config.docker_host.removeprefix("unix://"))
    if config.docker_host == DEFAULT_DOCKER_SOCKET:
        pidfile, exec_root = Path("/var/run/docker.pid"), Path("/var/run/docker")
        argv = dockerd_command(config.docker_host)
    else:  # an engine of this farm's own, beside the machine's
        pidfile = config.data_path / "run" / "dockerd.pid"
        # containerd's sockets live in the exec root: keep its path short.
        digest = hashlib.sha256(str(socket_path).encode()).hexdigest()[:12]
        exec_root = Path(f"/run/binder-docker-{digest}")
        argv = dockerd_command(config.docker_host, data_root=str(config.data_path / "docker"),
                               exec_root=str(exec_root), pidfile=str(pidfile),
                               cgroup_parent=f"/binder-docker-{digest}")
    _clear_engine_leftovers(config, pidfile, exec_root, socket_path,
                            run.say if run is not None else log.info)
    service = _spawn("docker", argv, config, detach, ENGINE_ENVIRONMENT, run)
    return _wait(service, check_docker, config, 60)


def _clear_engine_leftovers(config: Config, pidfile: Path, exec_root: Path, socket_path: Path,
                            say: Callable[[str], None]) -> None:
    """What a killed engine leaves makes the next one refuse to start ("pid file
    found") or hang on a dead containerd: clear it, waiting for an engine that
    is still stopping."""
    left = clear_pid_file(pidfile, "dockerd", say, wait=STOP_WAIT)
    if left is not None:
        raise ServiceError(f"A Docker engine (pid {left}) still runs but does not answer at "
                           f"{config.docker_host}; stop it (kill {left}) and try again.")
    clear_pid_file(exec_root / "containerd" / "containerd.pid", "containerd", say, wait=30)
    clear_socket(socket_path, say)


def ensure_registry(config: Config, credentials: ServiceCredentials, detach: bool = False,
                    run: RunFiles | None = None) -> Service | None:
    problem = _problem(check_registry, config)
    if problem is None:
        return None
    address = registry_address(config.registry)
    if not is_loopback(address.rpartition(":")[0]):
        raise ServiceError(f"The registry {config.registry} does not answer ({problem}); "
                           "check BINDER_REGISTRY.")
    _refuse_if_taken("The registry", address, problem,
                     "BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD")
    # The password the launcher generated, unless the operator gave their own.
    made = read_credentials(credentials_path(config))
    htpasswd = service_auth.write_private(
        config.data_path / "registry.htpasswd",
        service_auth.htpasswd_line(
            credentials.registry_username, credentials.registry_password,
            generated=made is not None and made.registry_password == credentials.registry_password))
    conf = service_auth.write_private(
        config.data_path / "registry.yml",
        service_auth.registry_config_text(address, config.data_path / "registry", htpasswd,
                                          credentials))
    service = _spawn("registry", ["docker-registry", "serve", str(conf)], config, detach,
                     run=run)
    record_address(config, "registry")
    return _wait(service, check_registry, with_service_credentials(config), 30)


STARTERS: dict[str, Callable[[Config, ServiceCredentials, bool, RunFiles | None],
                              Service | None]] = {
    "docker": ensure_docker,
    "redis": ensure_redis,
    "mongo": ensure_mongo,
    "registry": ensure_registry,
}


def ensure_services(config: Config, detach: bool = False,
                    run: RunFiles | None = None) -> list[Service]:
    """Start every missing component; on failure stop what was started and raise.

    Nothing is made when every component answers. Otherwise the local
    services' credentials are made first (when there are none), and the
    services started here require them: afterwards
    ``with_service_credentials(config)`` reaches every component. With
    ``run`` (``up``), first stop what a killed run left of each service, and
    tie what starts to this process (see the module docstring).
    """
    if run is not None:
        for name in STARTERS:
            run.stop_leftover_service(name)
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
            service = starter(config, credentials, detach, run)
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
