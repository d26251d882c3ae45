"""environment.yml end to end: the rendered Dockerfile built by the real Docker engine.

A local conda channel and a local pip index are served on 127.0.0.1; builds
use the host network so they reach them, and nothing else. Images built
here are removed at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
import docker.errors
import pytest

from common.config import load_config
from tests.support.conda_channel import interpreter_package, make_channel, script_package
from tests.support.pypi_index import make_index, make_wheel
from tests.support.static_http import serve_directory
from workers.buildpacks.base import BuildInputs
from workers.buildpacks.conda import CondaBuildPack

DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
DOCKER_SOCKET = Path(DOCKER_URL.removeprefix("unix://"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(DOCKER_URL.startswith("unix://") and not DOCKER_SOCKET.exists(),
                       reason=f"no Docker engine socket at {DOCKER_SOCKET}"),
]


PYTHON_INSTALL = Path("/root/.pyenv/versions/3.12.1")

#: ipykernel's part the farm uses, for Python 3.12 only: ``python -m ipykernel install``
#: writes the kernelspec of the Python running it (the index has no real ipykernel for
#: Python 3.12, whose dependencies hold compiled code).
IPYKERNEL_MAIN = """import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("command", choices=["install"])
parser.add_argument("--sys-prefix", action="store_true")
parser.add_argument("--name", default="python3")
parser.add_argument("--display-name", default="Python 3")
args = parser.parse_args()
folder = os.path.join(sys.prefix, "share", "jupyter", "kernels", args.name)
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "kernel.json"), "w") as spec:
    json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
               "display_name": args.display_name, "language": "python"}, spec)
"""


@dataclass
class Servers:
    channel: str
    index: str


@dataclass
class BuildResult:
    ok: bool
    log: list[str]
    error: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not (PYTHON_INSTALL / "bin" / "python3.12").exists():
        pytest.fail(f"no CPython installation at {PYTHON_INSTALL} to package")
    channel = make_channel(tmp_path_factory.mktemp("channel"),
                           [script_package("hello-conda", "hello from conda"),
                            interpreter_package(PYTHON_INSTALL, "3.12.1")])
    ipykernel = make_wheel("ipykernel", "99.0", {"ipykernel/__init__.py": "",
                                                 "ipykernel/__main__.py": IPYKERNEL_MAIN},
                           requires_python=">=3.12")
    index = make_index(tmp_path_factory.mktemp("index"), [make_wheel("tinypkg", "0.1"),
                                                          ipykernel])
    with serve_directory(channel) as channel_url, serve_directory(index) as index_url:
        yield Servers(channel=channel_url, index=f"{index_url}/simple/")


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=DOCKER_URL, version="auto", timeout=600)
    yield client
    client.close()


@pytest.fixture
def images(docker_api: docker.APIClient) -> Iterator[list[str]]:
    """Tags to remove once the test is over."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.DockerException):  # the build may have failed
            docker_api.remove_image(tag, force=True)


def make_checkout(root: Path, environment_yml: str, files: dict[str, bytes] | None = None
                  ) -> Path:
    checkout = root / "checkout"
    checkout.mkdir()
    (checkout / "environment.yml").write_text(environment_yml)
    (checkout / "notebook.py").write_text("print('hello')\n")
    for name, data in (files or {}).items():
        (checkout / name).write_bytes(data)
    return checkout


def render_context(checkout: Path, index_url: str, channel: str) -> tuple[bytes, str]:
    """The build context tar (repo/, Dockerfile, .binder-build/) and the Dockerfile."""
    inputs = BuildInputs(checkout=checkout, config_path=PurePosixPath("environment.yml"),
                         config=load_config(environ={**os.environ,
                                                     "BINDER_PIP_INDEX_URL": index_url,
                                                     "BINDER_CONDA_CHANNELS": channel}))
    pack = CondaBuildPack()
    pack.check(inputs)
    dockerfile = pack.render(inputs)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(checkout, arcname="repo")
        files = {"Dockerfile": dockerfile.encode()}
        files.update({f".binder-build/{name}": data
                      for name, data in pack.extra_files(inputs).items()})
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), dockerfile


def build(docker_api: docker.APIClient, context: bytes, tag: str) -> BuildResult:
    """Build with the engine's BuildKit, as the farm does (the Dockerfile uses cache mounts)."""
    result = subprocess.run(
        ["/usr/bin/docker", "build", "--progress", "plain", "--network", "host", "-t", tag, "-"],
        input=context, capture_output=True, timeout=900, check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": DOCKER_URL})
    log = [re.sub(r"^#\d+ \d+\.\d+ ", "", line)
           for line in result.stderr.decode(errors="replace").splitlines()]
    error = log[-1] if result.returncode and log else ""
    return BuildResult(ok=result.returncode == 0, log=log, error=error)


def built(tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str],
          environment_yml: str, files: dict[str, bytes] | None = None) -> tuple[str, BuildResult]:
    """The image of a checkout holding ``environment_yml`` (and ``files``), built (the
    test fails if not)."""
    checkout = make_checkout(tmp_path, environment_yml, files)
    context, dockerfile = render_context(checkout, servers.index, servers.channel)
    tag = f"binder-test-conda-env:{uuid.uuid4().hex[:12]}"
    images.append(tag)
    result = build(docker_api, context, tag)
    assert result.ok, "\n".join([dockerfile, *result.log[-40:], result.error])
    return tag, result


def run(docker_api: docker.APIClient, image: str, *command: str) -> str:
    """Run ``command`` in a throw-away container without network; its output."""
    client = docker.DockerClient(base_url=DOCKER_URL, version="auto")
    try:
        output = client.containers.run(image, list(command), remove=True, network_mode="none",
                                       stderr=True)
    finally:
        client.close()
    return bytes(output).decode()


KERNELS = ("import json; from jupyter_client.kernelspec import KernelSpecManager; "
           "print(json.dumps(KernelSpecManager().get_all_specs()))")


def test_environment_yml_builds_a_conda_env_with_pip_packages(
        tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str]) -> None:
    checkout = make_checkout(tmp_path, (
        f"name: demo\nchannels:\n  - {servers.channel}\n"
        "dependencies:\n  - hello-conda\n  - pip:\n    - tinypkg\n"))
    context, dockerfile = render_context(checkout, servers.index, servers.channel)
    tag = f"binder-test-conda-env:{uuid.uuid4().hex[:12]}"
    images.append(tag)

    result = build(docker_api, context, tag)
    assert result.ok, "\n".join([dockerfile, *result.log[-40:], result.error])
    log = "\n".join(result.log)
    assert "installing 1 conda packages into /srv/env:" in log
    assert "+ tinypkg==0.1" in log  # uv pip's report

    assert run(docker_api, tag, "hello-conda").strip() == "hello from conda"
    found = run(docker_api, tag, "sh", "-c", "command -v hello-conda; command -v python")
    assert found.split() == ["/srv/env/bin/hello-conda", "/srv/env/bin/python"]
    assert run(docker_api, tag, "python", "-c", "import tinypkg; print(tinypkg.VALUE)"
               ).strip() == "tinypkg 0.1"
    # (the last line: debugpy may warn about frozen modules before it)
    kernels = run(docker_api, tag, "/usr/bin/python3", "-c", KERNELS).strip().splitlines()[-1]
    specs = json.loads(kernels)
    assert specs["python3"]["spec"]["argv"][0] == "/srv/env/bin/python"
    assert run(docker_api, tag, "id", "-un").strip() == "jovyan"

    # A code-only change reuses the dependency layer.
    (checkout / "notebook.py").write_text("print('changed')\n")
    context, _ = render_context(checkout, servers.index, servers.channel)
    again = build(docker_api, context, tag)
    assert again.ok, "\n".join(again.log[-40:] + [again.error])
    step = next(line.split()[0] for line in again.log
                if "conda_env.py" in line and " RUN " in line and line.startswith("#"))
    assert f"{step} CACHED" in again.log, "\n".join(again.log)


def test_a_pip_entry_naming_a_wheel_of_the_repository_installs_it(
        tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str]) -> None:
    """A bare file name is a path to pip, beside environment.yml: the install runs
    after the repository is copied in."""
    wheel = make_wheel("repowheel", "1.0")
    tag, _ = built(tmp_path, servers, docker_api, images,
                   f"dependencies:\n  - pip:\n    - {wheel.file_name}\n",
                   {wheel.file_name: wheel.data})
    assert run(docker_api, tag, "python", "-c", "import repowheel; print(repowheel.VALUE)"
               ).strip() == "repowheel 1.0"


def test_an_environment_python_without_ipykernel_gets_it_and_is_the_kernel(
        tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str]) -> None:
    """Notebooks run the environment's own Python, with its packages, though the file
    does not name ipykernel (few do): the farm installs it from its index."""
    tag, result = built(tmp_path, servers, docker_api, images, (
        f"channels: [{servers.channel}]\ndependencies:\n  - python=3.12\n"))
    assert "installing ipykernel into /srv/env, so that notebooks run its Python" in result.log
    kernels = run(docker_api, tag, "/usr/bin/python3", "-c", KERNELS).strip().splitlines()[-1]
    python = json.loads(kernels)["python3"]["spec"]["argv"][0]
    assert python.startswith("/srv/env/bin/python"), kernels
    assert run(docker_api, tag, python, "-c", "import sys, ipykernel; "
               "print(sys.prefix, sys.version_info[:2])").strip() == "/srv/env (3, 12)"


def test_an_environment_without_python_still_has_python_pip_and_the_kernel(
        tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str]) -> None:
    """Conda packages only: the environment replaces the base image's, so it gets a
    Python (a venv over the system's) rather than leaving a terminal without one, and
    Jupyter's commands running that Python, as the base image's venv has them."""
    tag, _ = built(tmp_path, servers, docker_api, images,
                   f"channels: [{servers.channel}]\ndependencies: [hello-conda]\n")
    found = run(docker_api, tag, "sh", "-c",
                "for c in hello-conda python pip jupyter; do command -v $c; done; "
                "head -n 1 /srv/env/bin/jupyter-lab")
    assert found.split() == ["/srv/env/bin/hello-conda", "/srv/env/bin/python",
                             "/srv/env/bin/pip", "/srv/env/bin/jupyter",
                             "#!/srv/env/bin/python"]
    assert run(docker_api, tag, "hello-conda").strip() == "hello from conda"
    kernels = run(docker_api, tag, "/usr/bin/python3", "-c", KERNELS).strip().splitlines()[-1]
    assert json.loads(kernels)["python3"]["spec"]["argv"][0] == "/srv/env/bin/python"


def test_an_unsolvable_environment_fails_with_a_sentence(
        tmp_path: Path, servers: Servers, docker_api: docker.APIClient, images: list[str]) -> None:
    checkout = make_checkout(tmp_path, (
        f"channels: [{servers.channel}]\ndependencies: [hello-conda, no-such-package]\n"))
    context, _ = render_context(checkout, servers.index, servers.channel)
    tag = f"binder-test-conda-env:{uuid.uuid4().hex[:12]}"
    images.append(tag)

    result = build(docker_api, context, tag)
    assert not result.ok
    errors = [line for line in result.log if line.startswith("BINDER-ERROR: ")]
    assert errors == ["BINDER-ERROR: conda could not solve the environment: nothing provides "
                      f"no-such-package. Check the package names and versions in environment.yml "
                      f"against its channels ({servers.channel})."]
