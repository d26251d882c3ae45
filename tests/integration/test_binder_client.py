"""The Binder command-line client (npm ``binder-client`` 1.0.3) against the API, unchanged.

The client is installed from the npm registry into a temporary directory;
the test is skipped only when ``npm`` is not on PATH. Its commands are the
protocol's endpoints in kebab case: ``build start|status|status-all`` and
``registry fetch|fetch-all``; it prints ``Error: <error>`` plus the
protocol's suggestions on failure, and exits 0 either way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import API_KEY
from tests.support.api_cases import plain_repo, slow_repo
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer

CLIENT = "binder-client@1.0.3"


@pytest.fixture(scope="module")
def binder_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot install the Binder CLI")
    prefix = tmp_path_factory.mktemp("binder-client")
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                    "--loglevel=error", CLIENT], check=True, timeout=300,
                   capture_output=True)
    return prefix / "node_modules" / ".bin" / "binder"


class Cli:
    def __init__(self, binary: Path, api: ApiClient) -> None:
        self.binary = binary
        url = urlsplit(api.url)
        self.target = ["--host", str(url.hostname), "--port", str(url.port)]

    def __call__(self, *args: str, key: str | None = API_KEY) -> str:
        argv = [str(self.binary), *args, *self.target]
        if key is not None:
            argv += ["--api-key", key]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr


def printed_json(output: str) -> Any:
    """The JSON the client printed after its message line."""
    start = min(i for i in (output.find("{"), output.find("[")) if i >= 0)
    end = max(output.rfind("}"), output.rfind("]")) + 1
    return json.loads(output[start:end])


@pytest.fixture(scope="module")
def cli(binder_cli: Path, api: ApiClient) -> Cli:
    return Cli(binder_cli, api)


def test_build_and_registry_commands(cli: Cli, api: ApiClient, git_server: GitServer,
                                     repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="cli")
    # The client requires the <force> argument and sends it as a string.
    output = cli("build", "start", url, "false")
    assert f"Build succesfully started for repository: {url}" in output, output
    started = printed_json(output)
    assert isinstance(started, dict)
    name = started["name"]

    output = cli("build", "status", name, key=None)
    assert f"Getting status of build for image: {name}" in output, output
    status = printed_json(output)
    assert isinstance(status, dict) and status["name"] == name
    assert {"start-time", "status", "phase", "repository"} <= set(status)

    assert api.wait(name, timeout=300)["status"] == "completed"
    listed = printed_json(cli("build", "status-all"))
    assert isinstance(listed, list) and name in {entry["name"] for entry in listed}

    template = printed_json(cli("registry", "fetch", name))
    assert isinstance(template, dict)
    assert template["name"] == name and template["port"] == 8888 and template["image-name"]
    templates = printed_json(cli("registry", "fetch-all"))
    assert isinstance(templates, list) and name in {entry["name"] for entry in templates}


def test_start_while_building_prints_already_building(cli: Cli, api: ApiClient,
                                                      git_server: GitServer,
                                                      repo_url: str) -> None:
    url = slow_repo(git_server, repo_url, owner="cli")
    name = printed_json(cli("build", "start", url, "false"))["name"]
    try:
        output = cli("build", "start", url, "false")
        assert f"Error: Already building the image {name}" in output, output
        assert "Possible fix: wait until the current build has completed" in output
        output = cli("build", "start", url, "true")
        assert "Build succesfully started" in output, output
    finally:
        api.request("DELETE", f"/builds/{name}")
    assert api.wait(name, timeout=30)["status"] == "cancelled"


def test_wrong_key_prints_unauthorized(cli: Cli) -> None:
    for command in (["build", "start", "https://github.com/a/b", "false"],
                    ["registry", "fetch", "anything"], ["registry", "fetch-all"]):
        output = cli(*command, key="not-the-key")
        assert "Error: Unauthorized request" in output, (command, output)
        assert "Possible fix: make sure to include a valid API token" in output
    # the build list is a public read (BINDER_PUBLIC_READS): any key, or none, reads it
    output = cli("build", "status-all", key="not-the-key")
    assert "Getting status of all builds" in output and "Unauthorized" not in output, output


def test_errors_print_the_protocol_messages(cli: Cli) -> None:
    output = cli("registry", "fetch", "no-such-template")
    assert "Error: The requested resource does not exist: no template named " \
           "no-such-template." in output, output
    assert "Possible fix: is the resource name spelled correctly?" in output
    output = cli("build", "status", "no-such-build")
    assert "Error: Could not get build information for requested image" in output, output
    output = cli("build", "start", "ftp://example.org/a/b", "false")
    assert 'Error: "ftp://example.org/a/b" is not an allowed repository URL.' in output, output
    assert "Possible fix: host your binder on a supported repository source" in output
