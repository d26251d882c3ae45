"""Verification: start the built image as the template says and wait for its port.

The container runs with no network and is probed from inside its own
namespace with ``docker exec``, so verification needs no free host port and
sends nothing off the container. It is repository code, so it runs bounded:
memory (no swap), CPUs and processes limited, every capability dropped and
no privilege gained through setuid programs.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable

import docker.errors

from common.config import Config
from common.errors import BuildFailure
from common.sizes import parse_size
from workers.docker_engine import docker_client
from workers.guard import PhaseGuard

#: Processes the image may start while it is verified.
VERIFY_PIDS = 256
#: CPUs it may use.
VERIFY_CPUS = 1.0

PROBE = ("python3 -c 'import socket,sys; socket.create_connection((\"127.0.0.1\", {port}), 2)' "
         "2>/dev/null || bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null")


def verify_image(config: Config, image: str, port: int, command: str | None, label: str,
                 say: Callable[[str], None], guard: PhaseGuard) -> None:
    """Raise ``BuildFailure`` unless ``image`` serves on ``port`` in time."""
    client = docker_client(config, timeout=60)
    say(f"verifying: starting {image} and waiting for port {port}")
    memory = parse_size(config.build_memory)
    container = client.containers.run(
        image, command=shlex.split(command) if command else None, detach=True,
        network_mode="none", mem_limit=memory, memswap_limit=memory,
        pids_limit=VERIFY_PIDS, nano_cpus=int(VERIFY_CPUS * 1e9), cap_drop=["ALL"],
        security_opt=["no-new-privileges"], labels={"binder-build.verify": label})
    remove = guard.on_abort(lambda: container.remove(force=True))
    try:
        deadline = time.monotonic() + config.verify_timeout
        while time.monotonic() < deadline:
            guard.check()
            container.reload()
            if container.status != "running":
                output = container.logs(tail=15).decode(errors="replace").strip()
                raise BuildFailure(
                    f"The image exited (status {container.attrs['State']['ExitCode']}) instead "
                    f"of serving on port {port}. Its last output: {output[-500:] or 'none'}",
                    suggestions=["Check the command in .binder.yml or the Dockerfile's CMD."])
            try:
                probe = container.exec_run(["sh", "-c", PROBE.format(port=port)])
            except docker.errors.APIError:
                container.reload()
                if container.status != "running":
                    continue  # it exited meanwhile: the check above says how
                raise
            if probe.exit_code == 0:
                say(f"verified: the image serves on port {port}")
                return
            time.sleep(1)
        raise BuildFailure(f"The image did not serve on port {port} within "
                           f"{config.verify_timeout} s.",
                           suggestions=["Set the right port in .binder.yml, or fix the command."])
    finally:
        remove()
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
