"""The worker's Docker engine: the SDK client, and how the farm starts an engine.

Wherever the farm starts an engine (``make up``, CI, tests) it runs
``dockerd_command`` with ``ENGINE_ENVIRONMENT``; the operations guide asks
the same of production engines.
"""

from __future__ import annotations

import docker

from common.config import Config
from common.docker_connection import engine_client

#: Long reads: a build step may print nothing for minutes.
API_TIMEOUT = 3600

#: The engine's BuildKit clips each step's log at 1 MiB and at 100 KiB/s
#: (cumulative from the step's start) unless dockerd starts with these. It
#: reads them as 32-bit integers and has no working "unlimited" (-1 clips
#: everything, a larger number is ignored). The rate stays bounded: when a
#: step prints faster than the engine's progress stream drains (about
#: 2-4 MB/s through the client), the stream stalls for good once more than
#: 1 MiB waits at once, so output beyond the rate is clipped, with a marker
#: in the log, rather than risk a build that never ends.
ENGINE_ENVIRONMENT = {
    "BUILDKIT_STEP_LOG_MAX_SIZE": str(2**31 - 1),
    "BUILDKIT_STEP_LOG_MAX_SPEED": str(2 * 1024**2),
}


def dockerd_command(host: str, data_root: str | None = None, exec_root: str | None = None,
                    pidfile: str | None = None, cgroup_parent: str | None = None) -> list[str]:
    """``dockerd`` serving ``host`` (``unix:///path``), with no bridge network.

    Builds and verification runs use the host network or none, so the engine
    needs no bridge or NAT rules. Another engine on the same machine needs
    its own data root, exec root and pidfile, and an absolute cgroup parent
    of its own (its BuildKit step containers run under ``<parent>/buildkit``,
    see ``workers/build_cgroup.py``).
    """
    argv = ["dockerd", "--host", host, "--bridge=none", "--iptables=false", "--ip-masq=false"]
    for flag, value in (("--data-root", data_root), ("--exec-root", exec_root),
                        ("--pidfile", pidfile), ("--cgroup-parent", cgroup_parent)):
        if value:
            argv += [flag, value]
    return argv


def docker_client(config: Config, timeout: int = API_TIMEOUT) -> docker.DockerClient:
    """The SDK client of this worker's engine (TLS for tcp://; see common/docker_connection)."""
    return engine_client(config, timeout)
