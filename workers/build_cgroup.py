"""The build limits under BuildKit: the cgroup the engine's build containers run under.

The engine's BuildKit ignores ``--memory`` (and the CPU flags) and takes no
per-build cgroup; it runs every ``RUN`` step container in
``/<cgroup parent>/buildkit/<id>`` (the engine's ``--cgroup-parent``,
``/docker`` by default, with the cgroupfs driver). Limits on that
``buildkit`` cgroup hold for all of them together: a step that allocates
past the memory limit is killed by the kernel (exit code 137) and the build
fails saying so; one that forks past the pids limit gets ``EAGAIN`` from
``fork`` or ``clone`` (a fork bomb ends there, not at the host's
``pid_max``, which every other process on the host shares).

The worker sets that limit through the engine itself, so it works wherever
the worker runs: a short container (root, no network, the host's cgroup
namespace, the host's cgroup tree mounted) finds the engine's cgroup parent
from its own cgroup and writes the limit, with swap included (a build that
outgrows its memory fails instead of swapping). The limits are
``BINDER_BUILD_MEMORY`` and ``BINDER_BUILD_PIDS`` for the builds an engine
runs at once; engines with the systemd cgroup driver put build containers in
scopes with no common parent, and the worker says the limits cannot be
enforced there.
"""

from __future__ import annotations

import logging
import threading

import docker
import docker.errors

from common.config import Config
from common.sizes import parse_size
from workers.docker_engine import docker_client
from workers.registry import ensure_image

log = logging.getLogger(__name__)

#: Runs as root in the host's cgroup namespace with the host's /sys/fs/cgroup at
#: /host; prints the (memory) cgroup it limited. memory+swap (v1) must stay >= memory:
#: the first write may fail when lowering, the last one then succeeds.
LIMIT_SCRIPT = r"""
set -eu
if [ -d /host/memory ]; then
    if [ -d /host/pids ]; then
        own=$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup)
        mkdir -p "/host/pids$(dirname "$own")/buildkit"
        echo "$PIDS" > "/host/pids$(dirname "$own")/buildkit/pids.max"
    fi
    own=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
    dir=/host/memory$(dirname "$own")/buildkit
    mkdir -p "$dir"
    if [ -e "$dir/memory.memsw.limit_in_bytes" ]; then
        echo "$LIMIT" > "$dir/memory.memsw.limit_in_bytes" 2>/dev/null || true
        echo "$LIMIT" > "$dir/memory.limit_in_bytes"
        echo "$LIMIT" > "$dir/memory.memsw.limit_in_bytes"
    else
        echo "$LIMIT" > "$dir/memory.limit_in_bytes"
    fi
    echo "${dir#/host}"
else
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    dir=/host$(dirname "$own")/buildkit
    mkdir -p "$dir"
    echo "$LIMIT" > "$dir/memory.max"
    if [ -e "$dir/memory.swap.max" ]; then echo 0 > "$dir/memory.swap.max"; fi
    echo "$PIDS" > "$dir/pids.max"
    echo "${dir#/host}"
fi
"""

_done: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


class LimitNotSet(RuntimeError):
    """The engine's build cgroup could not be limited; the message says why."""


def limit_builds(config: Config) -> str:
    """Make sure the engine's build containers run under the memory and pids limits;
    return the (memory) cgroup.

    Done once per process and engine (the limits outlive the worker: they are a
    property of the host's cgroup tree). Raises ``LimitNotSet``.
    """
    memory = parse_size(config.build_memory)
    key = (config.docker_host, memory, config.build_pids)
    with _lock:
        if key not in _done:
            _done[key] = _set_limits(config, memory, config.build_pids)
        return _done[key]


def _set_limits(config: Config, memory: int, pids: int) -> str:
    client = docker_client(config, timeout=120)
    try:
        if client.info().get("CgroupDriver") == "systemd":
            raise LimitNotSet("the engine uses the systemd cgroup driver, which gives each "
                              "BuildKit step a scope of its own; run it with "
                              "--exec-opt native.cgroupdriver=cgroupfs")
        # The base image: every build starts from it, so the engine has or can pull it.
        image = str(config.base_image_name)
        ensure_image(client, config, image)
        output = client.containers.run(
            image, ["sh", "-c", LIMIT_SCRIPT], user="0", network_mode="none",
            cgroupns="host", environment={"LIMIT": str(memory), "PIDS": str(pids or "max")},
            remove=True,
            volumes={"/sys/fs/cgroup": {"bind": "/host", "mode": "rw"}},
            labels={"org.binder-build.role": "build-cgroup"})
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr.decode(errors="replace").strip() if exc.stderr else str(exc)
        raise LimitNotSet(f"the engine could not write its build cgroup: {stderr[-300:]}") from exc
    except docker.errors.DockerException as exc:
        raise LimitNotSet(f"the engine refused the cgroup helper: {exc}") from exc
    finally:
        client.close()
    cgroup = output.decode().strip().splitlines()[-1]
    log.info("build containers of %s are limited to %s bytes and %s processes in %s",
             config.docker_host, memory, pids or "unlimited", cgroup)
    return cgroup
