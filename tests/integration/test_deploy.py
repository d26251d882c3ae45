"""docker-compose itself checks deploy/docker-compose.yml (its images come from Docker
Hub, which cannot be reached here, so it is checked, not run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.test_deploy import DEPLOY, EXAMPLE

SECRETS = ("MONGO_PASSWORD", "REDIS_PASSWORD", "REGISTRY_PASSWORD", "BINDER_API_KEY",
           "FLOWER_PASSWORD")


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: make system-test installs it"
    return subprocess.run([docker_compose, "--project-directory", str(DEPLOY),
                           "-f", str(DEPLOY / "docker-compose.yml"), "--env-file",
                           str(env_file), "config"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_compose_config_accepts_the_file_with_its_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    filled = {**EXAMPLE, **{name: f"{name.lower()}-value" for name in SECRETS}}
    env.write_text("".join(f"{name}={value}\n" for name, value in filled.items()))
    result = compose_config(env)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    flower = resolved["services"]["flower"]["environment"]
    assert flower["BINDER_FLOWER_PASSWORD"] == "flower_password-value"
    worker = resolved["services"]["worker-host-1"]["environment"]
    assert worker["BINDER_WORKER_CONCURRENCY"] == "2"


def test_compose_config_refuses_to_run_without_secrets(tmp_path: Path) -> None:
    result = compose_config(DEPLOY / ".env.example")
    assert result.returncode != 0
    assert "set " in result.stderr and any(name in result.stderr for name in SECRETS)
