"""deploy/ holds together: every command a real ``binder-build`` command, every
variable a real setting, every secret the compose file needs in ``.env.example``.

Docker Hub cannot be reached here, so the compose file is read, not run
(``tests/integration/test_deploy.py`` has docker-compose check it too).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from common.config import SETTINGS, load_config
from common.docker_connection import check_engine_address, check_engine_reaches_registry
from workers.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTING_NAMES = {setting.env for setting in SETTINGS}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


EXAMPLE = env_file(DEPLOY / ".env.example")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """What docker-compose makes of ``value`` with .env.example (or ``env`` over it)
    filled in."""
    filled = {**EXAMPLE, **(env or {})}

    def one(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        given = filled.get(name) or ("secret-for-" + name.lower() if kind == "?" else "")
        return given or (default if kind == "-" else "")
    return INTERPOLATION.sub(one, value.replace("$$", "$"))


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def farm_services() -> dict[str, dict[str, Any]]:
    """The services running the farm's own image (the rest are MongoDB, Redis, registry)."""
    return {name: service for name, service in compose()["services"].items()
            if "build" in service}


def check_command(argv: list[str]) -> click.Context:
    """``argv`` is a real ``binder-build`` command whose options parse."""
    assert argv[0] == "binder-build", argv
    command = main.commands.get(argv[1])
    assert command is not None, f"binder-build has no command {argv[1]!r}"
    return command.make_context(argv[1], [interpolate(arg) for arg in argv[2:]])


def test_compose_runs_every_process_of_the_farm() -> None:
    services = farm_services()
    commands = {service["command"][1] for service in services.values()}
    assert commands == {"api", "worker", "beat", "flower"}
    assert {"mongo", "redis", "registry"} <= set(compose()["services"])
    for service in services.values():
        check_command(service["command"])


@pytest.mark.parametrize("name", sorted(farm_services()))
def test_every_variable_of_a_farm_service_is_a_setting(name: str) -> None:
    environment = farm_services()[name]["environment"]
    assert set(environment) <= SETTING_NAMES, set(environment) - SETTING_NAMES
    # ... and the values parse as those settings.
    config = load_config(environ={key: interpolate(str(value))
                                  for key, value in environment.items()})
    assert config.flower_password and config.registry_password and config.api_key


def test_the_services_require_credentials() -> None:
    services = compose()["services"]
    assert "MONGO_INITDB_ROOT_PASSWORD" in services["mongo"]["environment"]
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert services["registry"]["environment"]["REGISTRY_AUTH"] == "htpasswd"
    assert services["registry"]["environment"]["REGISTRY_STORAGE_DELETE_ENABLED"] == "true"
    for service in farm_services().values():
        environment = service["environment"]
        assert "${MONGO_PASSWORD" in environment["MONGO_URL"]
        assert "${REDIS_PASSWORD" in environment["REDIS_URL"]
        assert environment["BINDER_FLOWER_PASSWORD"].startswith("${FLOWER_PASSWORD:?")
    for port in [p for s in services.values() for p in s.get("ports", [])]:
        assert port.startswith("127.0.0.1:"), f"{port} is open beyond this machine"


def test_env_example_names_exactly_what_compose_interpolates() -> None:
    used = set(INTERPOLATION.findall((DEPLOY / "docker-compose.yml").read_text()))
    names = {name for name, _, _ in used}
    assert names == set(EXAMPLE), (names ^ set(EXAMPLE))
    required = {name for name, kind, _ in used if kind == "?"}
    assert required == {"MONGO_PASSWORD", "REDIS_PASSWORD", "REGISTRY_PASSWORD",
                        "BINDER_API_KEY", "FLOWER_PASSWORD"}
    assert all(not EXAMPLE[name] for name in required), "no secret is shipped"


def test_one_worker_per_docker_host(tmp_path: Path) -> None:
    workers = {name: s for name, s in farm_services().items() if s["command"][1] == "worker"}
    hosts = [interpolate(s["environment"]["BINDER_WORKER_ID"]) for s in workers.values()]
    assert len(hosts) >= 2 and len(set(hosts)) == len(hosts)
    for name, service in workers.items():
        environment = {key: interpolate(str(value))
                       for key, value in service["environment"].items()}
        if environment["DOCKER_HOST"] == "unix:///var/run/docker.sock":
            assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
            continue
        # A remote engine: TCP with every TLS file, mounted where the settings say.
        assert environment["DOCKER_HOST"].startswith("tcp://"), name
        mounted = {volume.split(":")[1] for volume in service["volumes"]}
        tls = {key: value for key, value in environment.items()
               if key.startswith("BINDER_DOCKER_TLS_")}
        assert len(tls) == 3 and all(str(Path(v).parent) in mounted for v in tls.values())
        files = {key: tmp_path / Path(value).name for key, value in tls.items()}
        for file in files.values():
            file.write_text("PEM")
        config = load_config(environ={**environment, **{k: str(v) for k, v in files.items()}})
        check_engine_address(config)  # the worker's own check: never plain TCP


def test_a_remote_engines_worker_and_the_farm_share_the_registry_named_in_env(
        tmp_path: Path) -> None:
    """Profile host-2 works once .env names the registry as every host reaches it: the
    remote engine pushes by that name, and every process must call it the same."""
    named = {"REGISTRY": "registry.example.org", "REGISTRY_INSECURE": "false"}
    configs = {}
    for name, service in farm_services().items():
        environment = {key: interpolate(str(value), named)
                       for key, value in service["environment"].items()}
        for key in [key for key in environment if key.startswith("BINDER_DOCKER_TLS_")]:
            environment[key] = str(tmp_path / key)
            (tmp_path / key).write_text("PEM")
        configs[name] = load_config(environ=environment)
    assert {(c.registry, c.registry_insecure) for c in configs.values()} == \
        {("registry.example.org", False)}
    remote = [c for c in configs.values() if c.docker_host.startswith("tcp://")]
    assert remote
    for config in remote:
        check_engine_reaches_registry(config)


def test_systemd_worker_unit() -> None:
    unit = (DEPLOY / "systemd" / "binder-build-worker.service").read_text()
    [exec_start] = re.findall(r"^ExecStart=(.+)$", unit, re.MULTILINE)
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/binder-build/bin/binder-build"
    assert check_command(["binder-build", *argv[1:]]).command.name == "worker"
    assert "EnvironmentFile=/etc/binder-build/worker.env" in unit
    assert re.search(r"^User=binder$", unit, re.MULTILINE)
    settings = env_file(DEPLOY / "systemd" / "worker.env.example")
    assert set(settings) <= SETTING_NAMES, set(settings) - SETTING_NAMES
    assert load_config(environ=settings).worker_id == "docker-host-2"


def test_systemd_units_point_at_no_documentation_the_install_does_not_put_there() -> None:
    # The install is a wheel in a virtualenv: it puts no document on the host, and the
    # project publishes no documentation address for a unit to name.
    for unit in (DEPLOY / "systemd").rglob("*"):
        if unit.is_file():
            assert not re.findall(r"^Documentation=.*$", unit.read_text(), re.MULTILINE), unit


def test_dockerfile_installs_the_farm_without_a_checkout() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    install = [line for line in dockerfile.splitlines() if "pip install" in line
               and not line.startswith("#")]
    assert install and all(" -e " not in line and "--editable" not in line for line in install)
    assert "rm -rf /src" in dockerfile
    [cmd] = re.findall(r"^CMD (.+)$", dockerfile, re.MULTILINE)
    check_command(yaml.safe_load(cmd))
    assert re.search(r"^USER binder$", dockerfile, re.MULTILINE)


@pytest.mark.parametrize("procfile", [ROOT / "Procfile", ROOT / "workers" / "cli" / "Procfile"])
def test_procfile_runs_the_four_processes(procfile: Path) -> None:
    processes = dict(line.split(": ", 1) for line in procfile.read_text().splitlines() if line)
    assert set(processes) == {"api", "worker", "beat", "flower"}
    for name, command in processes.items():
        assert check_command(shlex.split(command)).command.name == name


def test_installing_missing_packages_stops_only_the_services_it_installed(
        tmp_path: Path) -> None:
    """On a Docker host whose engine runs, installing a missing package must not stop
    the engine (and every build and container on it)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    stubs = {"id": "echo 0", "apt-get": f'echo "apt-get $*" >> {calls}',
             "systemctl": f'echo "systemctl $*" >> {calls}',
             **{present: "true" for present in ("dockerd", "docker-registry", "git",
                                                "debootstrap")}}
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(["/bin/sh", str(DEPLOY / "install-system.sh")],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert "apt-get install -y -qq redis-server" in lines
    assert [line for line in lines if line.startswith("systemctl")] == \
        ["systemctl disable --now redis-server"]
