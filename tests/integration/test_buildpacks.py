"""Repositories as Binder users write them, built by the farm and checked in the image.

Each repository is served by the loopback Git server; packages come from
the loopback index, conda channel and CRAN-like repository (conftest), and
Debian packages from Debian's mirror (apt.txt, R). Every image is started
and checked for the effect of each file, and for the Binder conventions.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from common.config import get_config
from tests.integration.conftest import TEST_PACKAGE, Served, package_wheel, unique
from tests.support.conda_channel import (
    CondaPackage,
    interpreter_package,
    make_channel,
    script_package,
)
from tests.support.cran_repo import RPackage, make_cran
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.images import run_in_image
from tests.support.pypi_index import make_index, make_wheel
from tests.support.service_clients import base_image

PYTHON_INSTALL = Path("/root/.pyenv/versions/3.12.1")
R_SNAPSHOT = "2024-01-01"
BUILD_TIMEOUT = 900  # R from a CRAN snapshot and conda environments build slowly
IMAGE_TIMEOUT = 600  # an image with R or conda environments takes a while to start


def built(api: ApiClient, url: str) -> dict:
    record = api.start_and_wait(url, BUILD_TIMEOUT)
    assert record["status"] == "completed", (record, api.logs(record["name"])[-6000:])
    return record


def assert_binder_conventions(image: str) -> None:
    """What launchers and user code assume of every Binder image."""
    output = run_in_image(image, "id; echo HOME=$HOME; jupyterhub-singleuser --version "
                                 "&& jupyter lab --version && echo versions-ok",
                          timeout=IMAGE_TIMEOUT)
    assert output.splitlines()[0].startswith("uid=1000(jovyan)"), output
    assert "HOME=/home/jovyan" in output.splitlines()
    assert output.strip().endswith("versions-ok"), output


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=600)
    yield client
    client.close()


def kernel_environment(client: docker.DockerClient, image: str, command: str) -> dict[str, str]:
    """Start ``image`` as a launcher would (its entrypoint, the template's command), start
    a kernel through the server's REST API, and read that kernel process's environment."""
    # The API asks an anonymous POST for an XSRF cookie: a token is simpler.
    command = command.replace("--IdentityProvider.token=", "--IdentityProvider.token=probe")
    container = client.containers.run(image, ["sh", "-c", f"exec {command}"], detach=True,
                                      network_mode="none")
    probe = ("import json, urllib.request as u, time\n"
             "for _ in range(180):\n"
             "    try:\n"
             "        u.urlopen('http://127.0.0.1:8888/api'); break\n"
             "    except OSError: time.sleep(1)\n"
             "r = u.Request('http://127.0.0.1:8888/api/kernels', data=b'{}', method='POST',"
             " headers={'Content-Type': 'application/json', 'Authorization': 'token probe'})\n"
             "print(json.load(u.urlopen(r))['id'])\n")
    try:
        result = container.exec_run(["python3", "-c", probe])
        assert result.exit_code == 0, (result.output, container.logs()[-3000:])
        environ = b""
        for _ in range(120):
            found = container.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do "
                                        "grep -q ipykernel_launcher $p/cmdline 2>/dev/null && "
                                        "cat $p/environ && break; done"])
            environ = found.output
            if environ:
                break
            time.sleep(1)
        assert environ, container.logs()[-3000:]
        return dict(item.split("=", 1) for item in environ.decode().split("\0") if "=" in item)
    finally:
        container.remove(force=True)


def test_a_start_without_a_shebang_runs_with_bash(api: ApiClient, git_server: GitServer,
                                                 repo_url: str) -> None:
    """repo2docker's entrypoint runs ``start`` with bash's exec, which runs a script
    without a shebang with bash: its ``[[`` and ``source`` work there, and so here."""
    repo = unique("start-bash")
    git_server.make_repo(f"github/kim/{repo}", {
        "start": "[[ -n $HOME ]] && source /dev/null && export BINDER_START_VAR=bash\n"
                 "exec \"$@\"\n",
    })
    record = built(api, f"{repo_url}/kim/{repo}")
    output = run_in_image(record["image-name"], "echo start-var=$BINDER_START_VAR",
                          timeout=IMAGE_TIMEOUT)
    assert "start-var=bash" in output.splitlines(), output


def test_apt_requirements_postbuild_start_compose(api: ApiClient, git_server: GitServer,
                                                  repo_url: str,
                                                  docker_client: docker.DockerClient) -> None:
    repo = unique("compose")
    git_server.make_repo(f"github/kim/{repo}", {
        "binder/apt.txt": "# a game and nothing else\ncowsay\n",
        "binder/requirements.txt": f"{TEST_PACKAGE}==1.0\n",
        "binder/postBuild": "#!/bin/bash\nset -e\necho \"written by postBuild\" > "
                            "$HOME/.postbuild-marker\necho postBuild ran\n",
        "binder/start": "#!/bin/bash\nexport BINDER_START_VAR=set-by-start\nexec \"$@\"\n",
        "analysis.py": "print(1)\n",
    })
    record = built(api, f"{repo_url}/kim/{repo}")
    image = record["image-name"]
    log = api.logs(record["name"])
    assert ("applying, in order: binder/apt.txt, binder/requirements.txt, binder/postBuild, "
            "binder/start") in log
    assert "generated Dockerfile:" in log and "ENTRYPOINT" in log
    assert "installing requirements.txt with uv pip" in log
    assert "postBuild ran" in log

    output = run_in_image(image, "/usr/games/cowsay moo | grep -c moo; "
                                 "python -c 'import binder_test_pkg as p; print(p.VERSION)'; "
                                 "cat $HOME/.postbuild-marker; echo $REPO_DIR; ls $REPO_DIR",
                          timeout=IMAGE_TIMEOUT)
    lines = output.splitlines()
    assert lines[:4] == ["1", "1.0", "written by postBuild", "/home/jovyan"], output
    assert "analysis.py" in lines[4:] and "binder" in lines[4:]
    assert_binder_conventions(image)

    tmpl = api.template(record["name"])
    assert tmpl["port"] == 8888
    assert tmpl["command"].startswith("jupyter lab --ip=0.0.0.0 --port=8888")
    assert tmpl["interfaces"] == ["lab", "notebook"]
    environ = kernel_environment(docker_client, image, tmpl["command"])
    assert environ.get("BINDER_START_VAR") == "set-by-start"
    assert environ.get("NB_USER") == "jovyan" and environ.get("NB_UID") == "1000"


def test_postbuild_failure_names_the_script_and_line(api: ApiClient, git_server: GitServer,
                                                     repo_url: str) -> None:
    repo = unique("postfail")
    git_server.make_repo(f"github/kim/{repo}", {
        "postBuild": "#!/bin/bash\necho preparing\ncp /no/such/file $HOME/\necho done\n"
                     "exit 4\n",
    })
    record = api.start_and_wait(f"{repo_url}/kim/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "failed", record
    assert record["error"] == ("postBuild failed with exit code 4 at line 3: "
                               "cp /no/such/file $HOME/"), record["error"]
    assert "preparing" in api.logs(record["name"])


def test_postbuild_shebang_options_stop_the_build(api: ApiClient, git_server: GitServer,
                                                 repo_url: str) -> None:
    repo = unique("poste")
    git_server.make_repo(f"github/kim/{repo}", {
        "postBuild": "#!/bin/bash -e\necho step1\nfalse\necho after > ~/after.txt\n",
    })
    record = api.start_and_wait(f"{repo_url}/kim/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "failed", record
    assert record["error"] == "postBuild failed with exit code 1 at line 3: false", record
    assert "step1" in api.logs(record["name"])


def test_scripts_with_windows_line_endings_fail_before_docker(api: ApiClient,
                                                             git_server: GitServer,
                                                             repo_url: str) -> None:
    repo = unique("crlf")
    git_server.make_repo(f"github/kim/{repo}", {
        "binder/start": "#!/bin/bash\r\nexec \"$@\"\r\n",
    })
    record = api.start_and_wait(f"{repo_url}/kim/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "failed", record
    assert record["error"].startswith("binder/start has Windows (CRLF) line endings"), record
    assert "generated Dockerfile:" not in api.logs(record["name"])


def test_postbuild_installs_from_the_farms_index(api: ApiClient, git_server: GitServer,
                                                repo_url: str, package_index: Served) -> None:
    # binder-test-pkg exists only on the loopback index: from anywhere else both fail.
    repo = unique("postpip")
    git_server.make_repo(f"github/kim/{repo}", {
        "postBuild": "#!/bin/bash -e\n"
                     f"pip install {TEST_PACKAGE}==1.0\n"
                     "python -c 'import binder_test_pkg as p; print(\"pip gave\", p.VERSION)'\n"
                     f"uv pip install --python \"$(command -v python)\" {TEST_PACKAGE}==2.0\n",
    })
    record = built(api, f"{repo_url}/kim/{repo}")
    assert "pip gave 1.0" in api.logs(record["name"])
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'; "
                          "env | grep -c -e '^PIP_' -e '^UV_'",
                          timeout=IMAGE_TIMEOUT)
    # uv's 2.0 replaced pip's 1.0, and the index was not left in the image's environment
    assert output.splitlines() == ["2.0", "0"], output


def test_postbuild_installs_with_the_repo2docker_python_prefixes(
        api: ApiClient, git_server: GitServer, repo_url: str, package_index: Served) -> None:
    """repo2docker's scripts name the environment by ${NB_PYTHON_PREFIX} and
    ${KERNEL_PYTHON_PREFIX}; a pip of another Python would refuse or miss the kernel's."""
    repo = unique("postprefix")
    git_server.make_repo(f"github/kim/{repo}", {
        "postBuild": "#!/bin/bash -e\n"
                     f"${{NB_PYTHON_PREFIX}}/bin/pip install {TEST_PACKAGE}==1.0\n"
                     "${KERNEL_PYTHON_PREFIX}/bin/python -c "
                     "'import binder_test_pkg as p; print(\"prefix gave\", p.VERSION)'\n",
    })
    record = built(api, f"{repo_url}/kim/{repo}")
    assert "prefix gave 1.0" in api.logs(record["name"])
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "1.0", output


def test_binder_documentation_dockerfile_from_binder_root(api: ApiClient, git_server: GitServer,
                                                         repo_url: str,
                                                         package_index: Served) -> None:
    """The Dockerfile form the Binder documentation shows, FROM the farm's Debian root by
    its short name."""
    root = get_config().root_image_name
    repo = unique("docs-dockerfile")
    git_server.make_repo(f"github/lee/{repo}", {
        "Dockerfile": "FROM binder-root\n"
                      "ARG NB_USER\nARG NB_UID\n"
                      "ENV USER ${NB_USER}\nENV HOME /home/${NB_USER}\n"
                      'RUN adduser --disabled-password --gecos "Default user" '
                      "--uid ${NB_UID} ${NB_USER}\n"
                      f"RUN pip install --no-cache-dir --index-url {package_index.url} "
                      "notebook jupyterlab jupyterhub\n"
                      "COPY . ${HOME}\nUSER root\nRUN chown -R ${NB_UID} ${HOME}\n"
                      "USER ${NB_USER}\nWORKDIR ${HOME}\n",
        "apt.txt": "cowsay\n",
        "notes.md": "hello\n",
    })
    record = built(api, f"{repo_url}/lee/{repo}")
    log = api.logs(record["name"])
    assert "ignoring apt.txt: Dockerfile builds the image by itself" in log
    assert f"Dockerfile: FROM binder-root is this farm's Debian root, {root}" in log
    assert "verified: the image serves on port 8888" in log
    assert_binder_conventions(record["image-name"])
    assert run_in_image(record["image-name"], "cat notes.md",
                        timeout=IMAGE_TIMEOUT).strip() == "hello"
    assert api.template(record["name"])["command"].startswith("jupyter lab ")


def test_a_containerfile_builds_as_the_repositorys_dockerfile(api: ApiClient,
                                                             git_server: GitServer,
                                                             repo_url: str) -> None:
    """Podman's name for a Dockerfile: built as one, not replaced by the default image."""
    repo = unique("containerfile")
    git_server.make_repo(f"github/lee/{repo}", {
        "Containerfile": f"FROM {base_image()}\nRUN echo {repo} > /tmp/built-from\n",
        "apt.txt": "cowsay\n",
    })
    record = built(api, f"{repo_url}/lee/{repo}")
    log = api.logs(record["name"])
    assert "building with the Dockerfile buildpack; applying, in order: Containerfile" in log
    assert "ignoring apt.txt: Containerfile builds the image by itself" in log
    assert record["config"] == "Containerfile", record
    assert run_in_image(record["image-name"], "cat /tmp/built-from",
                        timeout=IMAGE_TIMEOUT).strip() == repo


def test_python_packages_and_pipfile_lock(api: ApiClient, git_server: GitServer, repo_url: str,
                                          package_index: Served) -> None:
    setup_py = unique("setup-py")
    git_server.make_repo(f"github/max/{setup_py}", {
        "setup.py": "from setuptools import setup\n"
                    "setup(name='setup-demo', version='0.3', py_modules=['setup_demo'])\n",
        "setup_demo.py": "WHO = 'setup.py'\n",
    })
    pyproject = unique("pyproject")
    git_server.make_repo(f"github/max/{pyproject}", {
        "pyproject.toml": "[build-system]\nrequires = ['setuptools>=70']\n"
                          "build-backend = 'setuptools.build_meta'\n\n"
                          "[project]\nname = 'pyproject-demo'\nversion = '0.4'\n",
        "pyproject_demo.py": "WHO = 'pyproject.toml'\n",
    })
    # A project that names no build backend: pip and uv build it with setuptools.
    project_only = unique("project-only")
    git_server.make_repo(f"github/max/{project_only}", {
        "pyproject.toml": "[project]\nname = 'project-only-demo'\nversion = '0.5'\n",
        "project_only_demo.py": "WHO = 'pyproject.toml'\n",
    })
    wheel = package_wheel("1.0")
    digest = hashlib.sha256(wheel.data).hexdigest()
    pipfile = unique("pipfile")
    git_server.make_repo(f"github/max/{pipfile}", {
        "Pipfile": f'[packages]\n{TEST_PACKAGE} = "*"\n',
        "Pipfile.lock": json.dumps({
            "_meta": {"sources": [{"name": "elsewhere", "url": "https://elsewhere.example/"}]},
            "default": {TEST_PACKAGE: {"version": "==1.0", "hashes": [f"sha256:{digest}"]}},
            "develop": {}}),
    })
    for name, module in ((setup_py, "setup_demo"), (pyproject, "pyproject_demo"),
                         (project_only, "project_only_demo")):
        record = built(api, f"{repo_url}/max/{name}")
        output = run_in_image(record["image-name"],
                              f"cd /tmp && python -c 'import {module}; print({module}.WHO)'",
                              timeout=IMAGE_TIMEOUT)
        assert output.strip() == record["config"], output
    record = built(api, f"{repo_url}/max/{pipfile}")
    assert record["config"] == "Pipfile.lock"
    # The Pipfile says any version (2.0 is the newest): the lock's pin is what is installed.
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "1.0"
    assert "ignoring Pipfile" not in api.logs(record["name"])


def test_a_windows_only_package_of_a_pipfile_is_left_out(api: ApiClient, git_server: GitServer,
                                                         repo_url: str) -> None:
    """pipenv reads an entry's marker keys: the index has no such package, and a build
    that tried to install it would fail."""
    repo = unique("pipfile-markers")
    git_server.make_repo(f"github/max/{repo}", {
        "Pipfile": f'[packages]\n{TEST_PACKAGE} = "==1.0"\n'
                   'windows-only-helper = {version = "*", sys_platform = "== \'win32\'"}\n',
    })
    record = built(api, f"{repo_url}/max/{repo}")
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "1.0", output


def test_requirements_then_the_package_beside_them(api: ApiClient, git_server: GitServer,
                                                    repo_url: str, package_index: Served) -> None:
    """repo2docker installs requirements.txt, then the package at the root: both import."""
    repo = unique("requirements-package")
    git_server.make_repo(f"github/max/{repo}", {
        "requirements.txt": f"{TEST_PACKAGE}==1.0\n",
        "setup.py": "from setuptools import setup\n"
                    "setup(name='beside-demo', version='0.5', py_modules=['beside_demo'])\n",
        "beside_demo.py": "import binder_test_pkg\nWHO = 'setup.py'\n",
    })
    record = built(api, f"{repo_url}/max/{repo}")
    assert "applying, in order: requirements.txt, setup.py" in api.logs(record["name"])
    output = run_in_image(record["image-name"],
                          "cd /tmp && python -c 'import beside_demo as d, binder_test_pkg as p; "
                          "print(d.WHO, p.VERSION)'", timeout=IMAGE_TIMEOUT)
    assert output.strip() == "setup.py 1.0", output


def test_a_utf16_requirements_file_with_a_local_wheel(api: ApiClient, git_server: GitServer,
                                                      repo_url: str,
                                                      package_index: Served) -> None:
    """Windows PowerShell's `pip freeze > requirements.txt` writes UTF-16 with a byte-order
    mark; pip and uv read it, and so does the farm: a line naming a wheel of the
    repository is installed once the repository is copied."""
    wheel = package_wheel("2.0")
    repo = unique("utf16-requirements")
    git_server.make_repo(f"github/max/{repo}", {
        "requirements.txt": f"{wheel.file_name}\r\n".encode("utf-16"),
        wheel.file_name: wheel.data,
    })
    record = built(api, f"{repo_url}/max/{repo}")
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "2.0", output


def test_a_pipfile_in_binder_installs_the_package_it_names_from_its_folder(
        api: ApiClient, git_server: GitServer, repo_url: str, package_index: Served) -> None:
    """pipenv (run by repo2docker in binder/) reads `path = ".."` as the repository."""
    repo = unique("pipfile-path")
    git_server.make_repo(f"github/max/{repo}", {
        "binder/Pipfile": '[packages]\npipfile-demo = {path = "..", editable = true}\n',
        "setup.py": "from setuptools import setup\n"
                    "setup(name='pipfile-demo', version='0.6', py_modules=['pipfile_demo'])\n",
        "pipfile_demo.py": "WHO = 'binder/Pipfile'\n",
    })
    record = built(api, f"{repo_url}/max/{repo}")
    output = run_in_image(record["image-name"],
                          "cd /tmp && python -c 'import pipfile_demo as d; print(d.WHO)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "binder/Pipfile", output


@pytest.fixture(scope="module")
def python_channel(conda_channel: Served) -> Served:
    """The farm's channel, now holding this machine's CPython 3.12 as a conda package, and
    stand-ins of R and its kernel's package (which registers the kernel, as conda-forge's
    r-irkernel does)."""
    if not (PYTHON_INSTALL / "bin" / "python3.12").exists():
        pytest.fail(f"no CPython installation at {PYTHON_INSTALL} to package")
    make_channel(conda_channel.root, [
        interpreter_package(PYTHON_INSTALL, "3.12.1"),
        script_package("hello-conda", "hello from conda"),
        script_package("r-base", "R would start"),
        CondaPackage("r-irkernel", files={"share/jupyter/kernels/ir/kernel.json": json.dumps(
            {"argv": ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"],
             "display_name": "R", "language": "R"}).encode()})])
    return conda_channel


def test_r_packages_in_environment_yml_bring_the_r_kernel(
        api: ApiClient, git_server: GitServer, repo_url: str, python_channel: Served) -> None:
    """repo2docker adds the R kernel to an environment that installs R packages."""
    repo = unique("conda-r")
    git_server.make_repo(f"github/ned/{repo}", {
        "environment.yml": "dependencies:\n  - python=3.12\n  - r-base\n"})
    record = built(api, f"{repo_url}/ned/{repo}")
    assert "adding r-irkernel, so that notebooks run R" in api.logs(record["name"])
    output = run_in_image(record["image-name"], "jupyter kernelspec list",
                          timeout=IMAGE_TIMEOUT)
    assert any(line.split()[:2] == ["ir", "/srv/env/share/jupyter/kernels/ir"]
               for line in output.splitlines()), output


def test_runtime_python_from_the_conda_channel(api: ApiClient, git_server: GitServer,
                                               repo_url: str, python_channel: Served) -> None:
    repo = unique("runtime-py")
    git_server.make_repo(f"github/ned/{repo}", {
        "runtime.txt": "python-3.12\n",
        "requirements.txt": f"{TEST_PACKAGE}==2.0\n",
    })
    record = built(api, f"{repo_url}/ned/{repo}")
    output = run_in_image(record["image-name"],
                          "python -c 'import sys, binder_test_pkg as p; "
                          "print(sys.version_info[:2], sys.prefix, p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "(3, 12) /srv/env 2.0", output
    log = api.logs(record["name"])
    assert "applying, in order: runtime.txt, requirements.txt" in log
    # This index has ipykernel only for the base image's Python (its dependencies hold
    # compiled code): the farm tries, then says that notebooks keep the base kernel.
    assert "installing ipykernel into /srv/env, so that notebooks run its Python" in log
    assert "WARNING: ipykernel could not be installed for /srv/env/bin/python" in log
    # The channel was asked; the package itself may come from the host's package cache,
    # which an earlier build from a channel like this one filled.
    assert "GET /linux-64/repodata.json 200" in python_channel.access_log
    assert_binder_conventions(record["image-name"])

    missing = unique("runtime-py39")
    git_server.make_repo(f"github/ned/{missing}", {"runtime.txt": "python-3.9\n"})
    record = api.start_and_wait(f"{repo_url}/ned/{missing}", BUILD_TIMEOUT)
    assert record["status"] == "failed"
    assert record["error"].startswith(
        f"runtime.txt asks for Python 3.9, which the conda channels ({python_channel.url}) "
        "do not have"), record["error"]


@pytest.fixture(scope="module")
def r_repository(cran: Served) -> Served:
    make_cran(cran.root, R_SNAPSHOT, [
        RPackage("binderhello", "0.1.0", {"hello": "'hello from the CRAN snapshot'"})])
    return cran


def test_r_runtime_with_install_r(api: ApiClient, git_server: GitServer, repo_url: str,
                                  r_repository: Served) -> None:
    repo = unique("r-runtime")
    git_server.make_repo(f"github/ola/{repo}", {
        "runtime.txt": f"r-{R_SNAPSHOT}\n",
        # The farm's repository replaces the one named here (nothing answers there).
        "install.R": 'install.packages("binderhello", repos = "http://127.0.0.1:9/cran")\n',
    })
    record = built(api, f"{repo_url}/ola/{repo}")
    assert ("install.R names its own package sources (http://127.0.0.1:9/cran); this farm uses "
            f"its configured sources instead: {r_repository.url}/{R_SNAPSHOT}.") \
        in api.logs(record["name"])
    image = record["image-name"]
    output = run_in_image(image, "Rscript -e 'cat(binderhello::hello(), \"\\n\")'; "
                                 "jupyter kernelspec list", timeout=IMAGE_TIMEOUT)
    assert output.splitlines()[0].strip() == "hello from the CRAN snapshot", output
    assert any(line.split()[:1] == ["ir"] for line in output.splitlines()), output
    assert any(f"/{R_SNAPSHOT}/src/contrib/binderhello_0.1.0.tar.gz" in line
               for line in r_repository.access_log), r_repository.access_log
    assert_binder_conventions(image)


def test_install_r_that_needs_the_repository_runs_again_once_it_is_copied(
        api: ApiClient, git_server: GitServer, repo_url: str, r_repository: Served) -> None:
    """repo2docker reruns install.R from REPO_DIR when it fails before the copy."""
    repo = unique("r-install-sources")
    git_server.make_repo(f"github/ola/{repo}", {
        "binder/runtime.txt": f"r-{R_SNAPSHOT}\n",
        "binder/install.R": 'source("R/packages.R")\n',
        "R/packages.R": 'install.packages("binderhello")\n',
    })
    record = built(api, f"{repo_url}/ola/{repo}")
    output = run_in_image(record["image-name"], "Rscript -e 'cat(binderhello::hello())'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "hello from the CRAN snapshot", output


def test_an_r_package_with_requirements_txt_beside_it(api: ApiClient, git_server: GitServer,
                                                      repo_url: str, r_repository: Served,
                                                      package_index: Served) -> None:
    """repo2docker installs the R package and the Python requirements beside it."""
    repo = unique("r-and-python")
    git_server.make_repo(f"github/ola/{repo}", {
        "runtime.txt": f"r-{R_SNAPSHOT}\n",
        "DESCRIPTION": "Package: besidedemo\nVersion: 0.1\nTitle: Demo\n"
                       "Description: Demo.\nLicense: MIT\nImports: binderhello\n",
        "NAMESPACE": "export(who)\n",
        "R/who.R": "who <- function() 'the R package'\n",
        "requirements.txt": f"{TEST_PACKAGE}==1.0\n",
    })
    record = built(api, f"{repo_url}/ola/{repo}")
    assert "applying, in order: runtime.txt, requirements.txt, DESCRIPTION" in \
        api.logs(record["name"])
    output = run_in_image(record["image-name"],
                          "Rscript -e 'cat(besidedemo::who(), binderhello::hello(), sep=\"\\n\")'"
                          "; python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.splitlines() == ["the R package", "hello from the CRAN snapshot", "1.0"], output


def test_install_r_alone_does_not_choose_r(api: ApiClient, git_server: GitServer,
                                           repo_url: str) -> None:
    repo = unique("install-r-only")
    git_server.make_repo(f"github/ola/{repo}", {
        "install.R": 'install.packages("binderhello")\n',
        "requirements.txt": f"{TEST_PACKAGE}\n",
    })
    record = built(api, f"{repo_url}/ola/{repo}")
    log = api.logs(record["name"])
    assert ("ignoring install.R: R is chosen by runtime.txt r-YYYY-MM-DD or a DESCRIPTION "
            "file") in log
    assert run_in_image(record["image-name"], "command -v R || echo no-R",
                        timeout=IMAGE_TIMEOUT).strip() == "no-R"


def test_unsupported_files_fail_with_a_sentence(api: ApiClient, git_server: GitServer,
                                                repo_url: str) -> None:
    repo = unique("julia")
    git_server.make_repo(f"github/pat/{repo}", {"Project.toml": "[deps]\n"})
    record = api.start_and_wait(f"{repo_url}/pat/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "failed"
    assert record["error"].startswith(
        "Project.toml asks for a Julia environment, which this farm cannot build; it builds "
        "requirements.txt, environment.yml, a Dockerfile"), record["error"]
    repo = unique("runtime-julia")
    git_server.make_repo(f"github/pat/{repo}", {"runtime.txt": "julia-1.9\n"})
    record = api.start_and_wait(f"{repo_url}/pat/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "failed"
    assert record["error"].startswith("runtime.txt says `julia-1.9`, which this farm cannot "
                                      "build"), record["error"]


def test_a_second_repository_downloads_no_wheel_again(api: ApiClient, git_server: GitServer,
                                                      repo_url: str,
                                                      package_index: Served) -> None:
    """Wheels live in a BuildKit cache shared by every build on the host."""
    # A project no build of this run has asked the index for yet.
    wheel = make_wheel("binder-cache-probe", "3.0", {"binder_cache_probe.py": "VERSION = '3.0'\n"})
    make_index(package_index.root, [wheel])
    first, second = unique("wheels-a"), unique("wheels-b")
    git_server.make_repo(f"github/quinn/{first}", {"requirements.txt": "binder-cache-probe==3.0\n"})
    git_server.make_repo(f"github/quinn/{second}", {"requirements.txt": "binder-cache-probe==3.0\n",
                                                    "other.txt": "a different repository\n"})
    built(api, f"{repo_url}/quinn/{first}")
    downloads = [line for line in package_index.access_log if wheel.file_name in line]
    assert downloads, package_index.access_log[-20:]
    record = built(api, f"{repo_url}/quinn/{second}")
    assert [line for line in package_index.access_log if wheel.file_name in line] == downloads
    assert run_in_image(record["image-name"],
                        "python -c 'import binder_cache_probe as p; print(p.VERSION)'",
                        timeout=IMAGE_TIMEOUT).strip() == "3.0"


def test_dockerignore_leaves_files_out_of_a_generated_image(
        api: ApiClient, git_server: GitServer, repo_url: str, package_index: Served) -> None:
    """``*.txt`` matches requirements.txt too: the build file is copied all the same."""
    name = unique("dockerignore")
    git_server.make_repo(f"github/max/{name}", {
        "requirements.txt": f"{TEST_PACKAGE}==1.0\n",
        ".dockerignore": "*.txt\n*.csv\nbig/\n",
        "secret.txt": "secret\n",
        "table.csv": "a,b\n",
        "big/data.bin": "0" * 64,
        "notes.md": "kept\n",
        "src/app.py": "print('kept')\n",
    })
    record = built(api, f"{repo_url}/max/{name}")
    output = run_in_image(record["image-name"],
                          "ls -A; cat requirements.txt; "
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    listing = output.split()
    assert not {"secret.txt", "table.csv", "big"} & set(listing), output
    assert {"notes.md", "src", "requirements.txt", ".dockerignore"} <= set(listing), output
    assert output.strip().endswith(f"{TEST_PACKAGE}==1.0\n1.0"), output
    assert ("the ignore file matches requirements.txt, which this build is made from: "
            "it is copied all the same") in api.logs(record["name"])


def test_a_build_file_linking_into_an_ignored_folder_builds_what_the_farm_read(
        api: ApiClient, git_server: GitServer, repo_url: str, package_index: Served) -> None:
    """requirements.txt links into a folder the ignore file leaves out: the engine gets
    the file the farm checked, not a link that leads nowhere."""
    name = unique("ignored-link")
    git_server.make_repo(f"github/max/{name}", {
        "hidden/reqs.txt": f"{TEST_PACKAGE}==1.0\n", "hidden/other.md": "left out\n",
        ".dockerignore": "hidden/\n"}, symlinks={"requirements.txt": "hidden/reqs.txt"})
    record = built(api, f"{repo_url}/max/{name}")
    output = run_in_image(record["image-name"],
                          "ls -A hidden; python -c 'import binder_test_pkg as p; "
                          "print(p.VERSION)'", timeout=IMAGE_TIMEOUT)
    assert output.split() == ["reqs.txt", "1.0"], output


def test_a_requirements_file_pulled_in_from_an_ignored_folder_is_installed(
        api: ApiClient, git_server: GitServer, repo_url: str, package_index: Served) -> None:
    """``-r`` names a file the ignore file leaves out: pip reads the one the farm checked."""
    name = unique("ignored-r")
    git_server.make_repo(f"github/max/{name}", {
        "requirements.txt": "-r hidden/reqs.txt\n",
        "hidden/reqs.txt": f"{TEST_PACKAGE}==1.0\n", ".dockerignore": "hidden/\n"})
    record = built(api, f"{repo_url}/max/{name}")
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "1.0", output


def test_a_wheel_committed_at_the_root_is_installed_from_the_repository(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    wheel = package_wheel("1.0")
    name = unique("wheel-in-repo")
    git_server.make_repo(f"github/max/{name}", {
        "requirements.txt": f"{wheel.file_name}\n", wheel.file_name: wheel.data})
    record = built(api, f"{repo_url}/max/{name}")
    output = run_in_image(record["image-name"],
                          "cd /tmp && python -c 'import binder_test_pkg as p; print(p.VERSION)'",
                          timeout=IMAGE_TIMEOUT)
    assert output.strip() == "1.0"


def test_requirements_written_for_pip_install_with_pip(api: ApiClient, git_server: GitServer,
                                                       repo_url: str,
                                                       package_index: Served) -> None:
    """``--pre`` asks for a pre-release where the index has one: uv ignores the line
    (it would install 1.0), pip honours it, as on mybinder.org."""
    wheels = [make_wheel("binder-pre-probe", version,
                         {"binder_pre_probe.py": f"VERSION = '{version}'\n"})
              for version in ("1.0", "1.1rc1")]
    make_index(package_index.root, wheels)
    repo = unique("pre")
    git_server.make_repo(f"github/quinn/{repo}", {"requirements.txt": "--pre\nbinder-pre-probe\n"})
    record = built(api, f"{repo_url}/quinn/{repo}")
    assert ("installing requirements.txt (uv does not read --pre as pip does) with pip"
            in api.logs(record["name"]))
    assert run_in_image(record["image-name"],
                        "python -c 'import binder_pre_probe as p; print(p.VERSION)'",
                        timeout=IMAGE_TIMEOUT).strip() == "1.1rc1"
