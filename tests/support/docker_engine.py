"""A Docker engine of a test's own, beside the shared one (a second Docker host).

``DockerEngine(root).start()`` runs ``dockerd`` as the farm starts engines
(``workers.docker_engine``), with its own socket, data root, exec root,
pidfile and cgroup parent under ``root``, so a test may limit, stop or
reconfigure it without touching the engine other tests share. ``stop()``
ends it and removes what it made. Needs root, as dockerd does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import docker
import docker.errors

from workers.docker_engine import ENGINE_ENVIRONMENT, dockerd_command
from workers.registry import pull

PR_SET_PDEATHSIG = 1
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _die_with_test() -> None:
    ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class DockerEngine:
    """One extra ``dockerd``; see the module docstring."""

    def __init__(self, root: Path, name: str = "engine",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.name = name
        #: More dockerd flags, e.g. a TLS listener on loopback (``tls_listener``).
        self.extra_args = extra_args
        # Unix socket paths are short (108 bytes): keep them near the root.
        self.socket = root / "docker.sock"
        self.cgroup_parent = f"/binder-test-{name}-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def client(self, timeout: int = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def start(self, timeout: float = 60) -> DockerEngine:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = dockerd_command(self.host, data_root=str(self.root / "data"),
                               exec_root=str(self.root / "exec"),
                               pidfile=str(self.root / "docker.pid"),
                               cgroup_parent=self.cgroup_parent) + list(self.extra_args)
        env = {**os.environ, **ENGINE_ENVIRONMENT}
        env.pop("DOCKER_HOST", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True, preexec_fn=_die_with_test)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(docker.errors.DockerException, OSError):
                client = self.client(timeout=5)
                client.ping()
                client.close()
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dockerd {self.name} did not start:\n"
                           f"{self.log_path.read_text(errors='replace')[-2000:]}")

    def pull(self, image: str, auth_config: dict[str, str] | None = None) -> None:
        """Fetch ``image`` from its registry (loopback registries need no TLS)."""
        client = self.client(timeout=600)
        try:
            pull(client, image, auth_config)
        finally:
            client.close()

    def stop(self, remove: bool = True) -> None:
        """Stop dockerd (it ends its containers) and remove its cgroups, and its data
        unless ``remove`` is false (a later start of the same root reuses its images)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._remove_cgroups()
        _unmount_below(self.root)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_cgroups(self) -> None:
        relative = self.cgroup_parent.lstrip("/")
        for controller in CGROUP_ROOT.glob("*"):
            top = controller / relative
            if not top.is_dir():
                continue
            # Deepest first: a cgroup directory goes only once it is empty.
            for directory in sorted(top.rglob("*"), key=lambda p: -len(p.parts)):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _unmount_below(root: Path) -> None:
    """Lazily unmount anything the engine left mounted under ``root``."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
