"""The farm's own image (``deploy/Dockerfile``) builds without Docker Hub or an index in
the build, from the Debian root the farm makes, and serves the API from its plain install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from common.config import environment_for, get_config
from tests.integration.conftest import DATA_DIR, RUN_ID
from tests.support.farm import free_port
from workers.base_image import WHEEL_TARGET
from workers.docker_engine import docker_client

CHECKOUT = Path(__file__).resolve().parents[2]


def build_context(target: Path) -> Path:
    """The checkout's tracked files, plus the farm's wheels (made here with pip)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=CHECKOUT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = CHECKOUT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    wheels = target / "deploy" / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                    str(target)], check=True, timeout=600)
    [farm] = wheels.glob("binder_build-*.whl")
    # Its dependencies for the image's interpreter (Debian's Python 3.11, x86-64), and
    # the build backend, for installing the farm from its sources without an index.
    # pip judges markers by the interpreter running it: redis needs async-timeout below
    # Python 3.11.3 (Debian's is 3.11.2), which a newer host would leave out.
    subprocess.run([*pip, "download", "--quiet", *WHEEL_TARGET, "--dest", str(wheels),
                    str(farm), "setuptools>=77", "async-timeout>=4.0.3"],
                   check=True, timeout=900)
    return target


@pytest.fixture(scope="module")
def farm_image(services: None) -> Iterator[str]:
    config = get_config()
    client = docker_client(config, timeout=1800)
    tag = f"test-{RUN_ID}-farm:latest"
    context = build_context(DATA_DIR / "farm-image")
    try:
        client.images.build(
            path=str(context), dockerfile="deploy/Dockerfile", tag=tag, rm=True, forcerm=True,
            network_mode=config.build_network,
            buildargs={"ROOT": config.root_image_name,
                       "PIP_ARGS": "--no-index --find-links /src/deploy/wheels"})
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)
        raise AssertionError(f"the farm image did not build:\n{log[-4000:]}") from exc
    finally:
        shutil.rmtree(context, ignore_errors=True)
    yield tag
    client.images.remove(tag, force=True)


def test_the_farm_image_serves_the_api(farm_image: str) -> None:
    config = get_config()
    client = docker_client(config)
    port = free_port()
    env = {**environment_for(config), "BINDER_HOST": "127.0.0.1", "BINDER_PORT": str(port),
           "BINDER_DATA_DIR": "/var/lib/binder-build", "BINDER_CREDENTIALS_FILE": ""}
    container = client.containers.run(farm_image, ["binder-build", "api"], detach=True,
                                      network_mode="host", environment=env)
    try:
        answer = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and answer is None:
            container.reload()
            assert container.status in ("created", "running"), container.logs()[-3000:]
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/health/",
                                      headers={"Authorization": config.api_key}, timeout=5)
            except requests.ConnectionError:
                time.sleep(1)
        assert answer is not None, container.logs()[-3000:]
        health = {component["name"]: component for component in answer.json()}
        # The container has no Docker engine: the stores and the registry must answer.
        for name in ("mongo", "redis", "registry"):
            assert health[name]["status"] == "ok", health
        user = container.exec_run(["id", "-un"]).output.decode().strip()
        assert user == "binder"
        # A plain install: the package lives in the venv, no checkout beside it.
        where = container.exec_run(["python", "-c", "import api; print(api.__file__)"])
        assert where.output.decode().startswith("/opt/binder-build/lib/"), where.output
        assert container.exec_run(["test", "-e", "/src"]).exit_code != 0
    finally:
        container.remove(force=True)
