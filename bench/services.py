"""The services a benchmark run owns: Redis, a Mongo wire server, a registry, Docker engines.

The benchmark measures builds from a cold cache, so it prunes its engines'
build caches; it must never do that to an engine, registry or database it
shares. Each ``Daemon`` runs one program on a free loopback port under the
run's directory and is stopped (and its data removed, unless kept) at the
end; the engines come from ``tests.support.docker_engine``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.farm import free_port


@dataclass
class Daemon:
    """One server process on ``127.0.0.1:port``."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    data: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Daemon:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), 0.5):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n"
                           f"{self.log_path.read_text(errors='replace')[-1500:]}")

    def stop(self, remove: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if remove and self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)


def redis_daemon(run_dir: Path) -> Daemon:
    port = free_port()
    return Daemon("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], port, run_dir / "redis.log")


def mongo_daemon(run_dir: Path) -> Daemon:
    """The embedded default's Mongo wire server, on disk as a farm runs it."""
    port, data = free_port(), run_dir / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    program = str(Path(sys.executable).parent / "secantusd-py")
    return Daemon("mongo", [program, "--host", "127.0.0.1", "--port", str(port),
                            "--storage-path", str(data), "--log-level", "WARNING"],
                  port, run_dir / "mongo.log", data)


def registry_daemon(run_dir: Path, storage: Path) -> Daemon:
    """A registry whose storage outlives the run (the base image stays in it).

    It keeps its port from run to run when that port is free: an engine
    knows which layers a registry holds by the registry's address, so on a
    new port the first push of a run would upload the base image's layers
    again, and that time would land on whichever build pushed first.
    """
    storage.mkdir(parents=True, exist_ok=True)
    port = _kept_port(storage.parent / "registry.port")
    config = run_dir / "registry.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\n"
                      f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      "  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    return Daemon("registry", ["docker-registry", "serve", str(config)], port,
                  run_dir / "registry.log")


def _kept_port(path: Path) -> int:
    """The port saved in ``path`` if nothing listens on it now, else a new free one (saved)."""
    with contextlib.suppress(OSError, ValueError):
        port = int(path.read_text())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
        return port
    port = free_port()
    path.write_text(str(port))
    return port


#: Registry repositories a run leaves for the next one: the base image and the Debian root.
KEPT_REPOSITORIES = ("binder-base", "binder-root")


def forget_pushed_images(config: Path, storage: Path) -> None:
    """Delete from a stopped registry's storage every image but the kept ones.

    Each round pushes new gigabytes (hand-built and farm-built images); a run
    keeps only what the next one reuses.
    """
    repositories = storage / "docker" / "registry" / "v2" / "repositories"
    if not repositories.is_dir():
        return
    for repository in repositories.iterdir():
        if repository.name not in KEPT_REPOSITORIES:
            shutil.rmtree(repository, ignore_errors=True)
    subprocess.run(["docker-registry", "garbage-collect", "--delete-untagged", str(config)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                   check=False)
