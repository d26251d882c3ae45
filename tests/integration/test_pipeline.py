"""Builds end to end: repository to image in the registry, with a template."""

from __future__ import annotations

import docker
import requests

from tests.integration.conftest import API_KEY, TEST_PACKAGE, unique
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer

REGISTRY = "127.0.0.1:5000"


def in_registry(image: str) -> bool:
    repository, _, tag = image.partition("/")[2].rpartition(":")
    response = requests.head(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}, timeout=5)
    return response.status_code == 200


def run_in_image(image: str, command: str) -> str:
    container = docker.from_env().containers.run(image, ["sh", "-c", command], detach=True,
                                                 network_mode="none")
    try:
        container.wait(timeout=60)
        return str(container.logs().decode())
    finally:
        container.remove(force=True)


def template(api: ApiClient, name: str) -> dict:
    response = api.request("GET", f"/templates/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def start_and_wait(api: ApiClient, url: str, timeout: float = 600) -> dict:
    response = api.start(url)
    assert response.status_code == 200, response.text
    return api.wait(response.json()["name"], timeout)


def test_repo_without_config_builds_base_image_plus_repo(api: ApiClient, git_server: GitServer,
                                                         repo_url: str) -> None:
    repo = unique("plain")
    shas = git_server.make_repo(f"github/alice/{repo}", {"notebook.ipynb": "{}",
                                                         "README.md": "hi"})
    record = start_and_wait(api, f"{repo_url}/alice/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["name"] == f"alice-{repo}"
    assert record["commit"] == shas["main"]
    assert record["config"] is None
    image = record["image-name"]
    assert image.endswith(f":{shas['main']}")
    assert in_registry(image)
    tmpl = template(api, record["name"])
    assert tmpl["image-name"] == image and tmpl["port"] == 8888
    assert "jupyter" in tmpl["command"]
    assert run_in_image(image, "id -u; cat /home/main/README.md") == "1000\nhi"
    log = api.logs(record["name"])
    assert "verified: the image serves on port 8888" in log
    phases = record["phases"]
    assert {p["worker"] for p in phases.values()} == {"test-a"}


def test_requirements_repo_installs_from_local_index(api: ApiClient, git_server: GitServer,
                                                     repo_url: str) -> None:
    repo = unique("reqs")
    git_server.make_repo(f"github/bob/{repo}", {"requirements.txt": f"{TEST_PACKAGE}==1.0\n",
                                                 "analysis.py": "print(1)\n"})
    record = start_and_wait(api, f"{repo_url}/bob/{repo}")
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["config"] == "requirements.txt"
    output = run_in_image(record["image-name"],
                          "python -c 'import binder_test_pkg as p; print(p.GREETING)'")
    assert output.strip() == "hello from the local index"
    _ = API_KEY
