"""Verification: start the built image as the template says and wait for its port.

The container runs with no network and is probed from inside its own
namespace with a ``docker exec`` that tries the port every 10 ms until it
answers (a refused connection costs microseconds: the start is seen at once
for no CPU worth naming), so verification needs no free host port, sends
nothing off the container and ends the moment the image serves. It is
repository code, so it runs bounded: memory (no swap), CPUs and processes
limited, every capability dropped and no privilege gained through setuid
programs, and its disk as a fetch's is (``workers/git.py``): no file may
grow past ``VERIFY_DISK`` (``RLIMIT_FSIZE``), and between probes, each at
most ``DISK_CHECK_EVERY`` long, the container's own layer is measured and
the verification fails once it holds more than that. What it prints, which
the engine writes to its own disk, is kept to its last MiB (``VERIFY_LOG``),
whatever log driver the engine uses by default. (An image's ``VOLUME``
gets an anonymous volume, outside that layer: bounded by the time the
verification takes, and removed with the container.)

Once the image has served, its container is removed in the background: the
phase has its answer and need not wait for the engine. A worker that dies
meanwhile (or mid-verification) leaves a container behind; the next worker
on that engine removes those whose builds no longer run (``remove_leftovers``),
of its own farm only: another farm may share the engine, with builds this
farm's store does not know.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import docker.types
from docker.utils.socket import frames_iter

from common.config import Config
from common.db import mongo_url
from common.errors import BuildFailure
from common.lazy_pool import LazyPool
from common.models import FailureCause
from common.service_credentials import mongo_address
from common.sizes import format_size, parse_size
from workers.docker_engine import docker_client
from workers.guard import PhaseGuard

log = logging.getLogger(__name__)

#: The label naming the build a verification container belongs to.
VERIFY_LABEL = "binder-build.verify"
#: The label naming the farm whose build it is (see ``farm_of``).
FARM_LABEL = "binder-build.farm"
#: Processes the image may start while it is verified.
VERIFY_PIDS = 256
#: CPUs it may use.
VERIFY_CPUS = 1.0
#: Bytes it may write to its container's own layer (each file, and all together).
VERIFY_DISK = 1024**3
#: Seconds between two looks at what it wrote (one probe's longest wait).
DISK_CHECK_EVERY = 2.0
#: What one probe may print: nothing, unless the image's own sh or python3 does.
PROBE_OUTPUT = 64 * 1024
#: Its output the engine keeps on its disk (the last of it tells why an image exited).
VERIFY_LOG = docker.types.LogConfig(type="json-file",
                                    config={"max-size": "1m", "max-file": "1"})

#: Waits inside the container until PORT answers (exit 0) or SECONDS pass (exit 1):
#: with Python when the image has it, else with bash's /dev/tcp.
WAIT_FOR_PORT = r"""
if command -v python3 >/dev/null 2>&1; then
    exec python3 -c 'import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit(1)' "$PORT" "$SECONDS_LEFT"
fi
end=$(( $(date +%s) + ${SECONDS_LEFT%.*} + 1 ))
while [ "$(date +%s)" -lt "$end" ]; do
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && exit 0
    sleep 0.1
done
exit 1
"""


def farm_of(config: Config) -> str:
    """The farm a container belongs to, by the store that knows its builds
    (``HOST:PORT/DATABASE``, without credentials)."""
    return f"{mongo_address(mongo_url(config))}/{config.mongo_db}"


def verify_image(config: Config, image: str, port: int, command: str | None, label: str,
                 say: Callable[[str], None], guard: PhaseGuard) -> None:
    """Raise ``BuildFailure`` unless ``image`` serves on ``port`` in time."""
    # The exec waits up to the whole verification time: reads must outlast it.
    client = docker_client(config, timeout=config.verify_timeout + 60)
    say(f"verifying: starting {image} and waiting for port {port}")
    memory = parse_size(config.build_memory)
    container = client.containers.run(
        image, command=shlex.split(command) if command else None, detach=True,
        network_mode="none", mem_limit=memory, memswap_limit=memory,
        pids_limit=VERIFY_PIDS, nano_cpus=int(VERIFY_CPUS * 1e9), cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        ulimits=[docker.types.Ulimit(name="fsize", soft=VERIFY_DISK, hard=VERIFY_DISK)],
        log_config=VERIFY_LOG,
        labels={VERIFY_LABEL: label, FARM_LABEL: farm_of(config)})
    remove = guard.on_abort(lambda: discard(container))
    served = False
    try:
        deadline = time.monotonic() + config.verify_timeout
        while True:
            guard.check()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BuildFailure(
                    f"The image did not serve on port {port} within {config.verify_timeout} s.",
                    suggestions=["Set the right port in .binder.yml, or fix the command."],
                    cause=FailureCause.VERIFICATION)
            probe = probe_port(client, container, port, min(left, DISK_CHECK_EVERY))
            guard.check()
            if probe == 0:
                say(f"verified: the image serves on port {port}")
                served = True
                return
            check_written(client, container)
            container.reload()
            if container.status != "running":
                output = container.logs(tail=15).decode(errors="replace").strip()
                raise BuildFailure(
                    f"The image exited (status {container.attrs['State']['ExitCode']}) instead "
                    f"of serving on port {port}. Its last output: {output[-500:] or 'none'}",
                    suggestions=["Check the command in .binder.yml or the Dockerfile's CMD."],
                    cause=FailureCause.VERIFICATION)
            if probe != 1:
                time.sleep(0.1)  # the exec could not run yet: try again shortly
    finally:
        remove()
        if served:
            _removals.submit(discard, container)
        else:
            discard(container)


_removals = LazyPool(1, "verify-removal")


def probe_port(client: docker.DockerClient, container: Any, port: int,
               seconds: float) -> int | None:
    """Wait inside ``container`` up to ``seconds`` for ``port`` to answer: the probe's
    exit code (0: it answered, 1: not yet), or ``None`` when it could not run (the
    container stopped meanwhile).

    The probe runs the image's own ``sh`` (and ``python3``): what they print is read
    and dropped as it comes, never held, and past ``PROBE_OUTPUT`` the verification
    fails, so an image cannot fill the worker's memory through it.
    """
    try:
        probe = client.api.exec_create(container.id, ["sh", "-c", WAIT_FOR_PORT], environment={
            "PORT": str(port), "SECONDS_LEFT": f"{seconds:.1f}"})["Id"]
        output = client.api.exec_start(probe, socket=True)
        try:
            printed = 0
            for _, chunk in frames_iter(output, tty=False):
                printed += len(chunk)
                if printed > PROBE_OUTPUT:
                    raise BuildFailure(
                        f"Probing port {port} inside the image printed more than "
                        f"{format_size(PROBE_OUTPUT)}: the image's sh or python3 does not "
                        "behave as Debian's do.",
                        suggestions=["Keep the shell and Python of the base image."],
                        cause=FailureCause.VERIFICATION)
        finally:
            # An exec whose output nobody reads blocks the engine's removal of its
            # container: the connection is let go before anything else is asked.
            output.close()
        code = client.api.exec_inspect(probe)["ExitCode"]
    except docker.errors.APIError:
        return None
    return code if isinstance(code, int) else None


def check_written(client: docker.DockerClient, container: Any) -> None:
    """``BuildFailure`` when ``container`` wrote more than ``VERIFY_DISK`` to its own layer."""
    listed = client.api.containers(all=True, size=True, filters={"id": container.id})
    written = int((listed[0].get("SizeRw") if listed else None) or 0)
    if written > VERIFY_DISK:
        raise BuildFailure(
            f"The image wrote more than {format_size(VERIFY_DISK)} to its disk while it was "
            "verified, which this farm does not allow.",
            suggestions=["Write large files when the image is built, or when a user asks for "
                         "them, not when it starts."], cause=FailureCause.VERIFICATION)


def discard(container: Any) -> None:
    """Remove a verification container, running or not, with the anonymous volumes its
    image's ``VOLUME`` lines gave it; say why when the engine refuses."""
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as exc:
        log.warning("could not remove verification container %s: %s", container.short_id, exc)


def remove_leftovers(config: Config, running: Callable[[str], bool]) -> int:
    """Remove this farm's verification containers on this host's engine whose build
    does not run (``running(build_id)`` is false); how many were removed."""
    client = docker_client(config, timeout=60)
    removed = 0
    ours = {"label": [VERIFY_LABEL, f"{FARM_LABEL}={farm_of(config)}"]}
    try:
        for container in client.containers.list(all=True, filters=ours):
            if not running(container.labels.get(VERIFY_LABEL, "")):
                discard(container)
                removed += 1
    finally:
        client.close()
    return removed
