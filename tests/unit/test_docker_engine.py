"""How the farm starts Docker engines, and the drop-in that documents it for operators."""

from __future__ import annotations

import re
from pathlib import Path

from workers.docker_engine import ENGINE_ENVIRONMENT, dockerd_command

DROP_IN = Path(__file__).resolve().parents[2] / "deploy/systemd/docker.service.d/binder-build.conf"


def test_step_logs_are_neither_clipped_at_1_mib_nor_unbounded() -> None:
    size = int(ENGINE_ENVIRONMENT["BUILDKIT_STEP_LOG_MAX_SIZE"])
    speed = int(ENGINE_ENVIRONMENT["BUILDKIT_STEP_LOG_MAX_SPEED"])
    assert size == 2**31 - 1  # the engine reads 32-bit values; larger ones are ignored
    assert 1024**2 < speed < size


def test_the_operators_drop_in_sets_the_same_environment() -> None:
    text = DROP_IN.read_text()
    found = dict(re.findall(r"^Environment=(\w+)=(\S+)$", text, re.M))
    assert found == ENGINE_ENVIRONMENT
    assert "native.cgroupdriver=cgroupfs" in text


def test_a_second_engine_gets_its_own_paths_and_no_bridge() -> None:
    argv = dockerd_command("unix:///r/docker.sock", data_root="/r/data", exec_root="/r/exec",
                           pidfile="/r/docker.pid", cgroup_parent="/binder-b")
    assert argv[:3] == ["dockerd", "--host", "unix:///r/docker.sock"]
    for flag in ("--bridge=none", "--iptables=false", "--ip-masq=false"):
        assert flag in argv
    pairs = dict(zip(argv[3::1], argv[4::1], strict=False))
    assert pairs["--data-root"] == "/r/data" and pairs["--exec-root"] == "/r/exec"
    assert pairs["--pidfile"] == "/r/docker.pid" and pairs["--cgroup-parent"] == "/binder-b"
    assert "--data-root" not in dockerd_command("unix:///var/run/docker.sock")
