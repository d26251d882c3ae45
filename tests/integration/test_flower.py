"""Flower, as ``binder-build flower`` runs it: behind basic auth, listing a build's
tasks by the build's name, every line of its log in the farm's format."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from common.models import STEPS
from tests.support.api_cases import plain_repo
from tests.support.farm import ApiClient, Farm, Process, free_port, wait_http
from tests.support.git_server import GitServer

USER, PASSWORD = "operator", "flower-test-password-0123"


@pytest.fixture(scope="module")
def flower(api: ApiClient, farm: Farm) -> Iterator[str]:
    """Flower on a port of its own, watching the test farm's broker."""
    port = free_port()
    process: Process = farm.start("flower", ["flower"], {
        "BINDER_FLOWER_PORT": str(port), "BINDER_FLOWER_USER": USER,
        "BINDER_FLOWER_PASSWORD": PASSWORD})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthcheck", process.alive, 90)
    except RuntimeError as exc:
        raise RuntimeError(f"Flower did not start ({exc}):\n{process.log_tail()}") from exc
    yield url
    process.stop()


def tasks(url: str, search: str) -> dict[str, dict]:
    response = requests.get(f"{url}/api/tasks", params={"search": search},
                            auth=(USER, PASSWORD), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_flower_lists_a_builds_tasks_by_its_name(flower: str, api: ApiClient,
                                                 git_server: GitServer, repo_url: str) -> None:
    name = api.start(plain_repo(git_server, repo_url, owner="flower")).json()["name"]
    assert api.wait(name)["status"] == "completed"
    expected = {f"binder.{step.name}:{name}" for step in STEPS}
    # Flower keeps one entry per task id; a step may hand its id on to the step that
    # replaces it (Celery's replace), so the first step's entry can become a later one's.
    must = expected - {f"binder.{STEPS[0].name}:{name}"}
    deadline = time.monotonic() + 30
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:  # Flower learns of tasks from the workers' events
        found = tasks(flower, name)
        names = {task["name"] for task in found.values()}
        if names >= must and all(task["state"] == "SUCCESS" for task in found.values()):
            break
        time.sleep(0.5)
    names = {task["name"] for task in found.values()}
    assert must <= names <= expected, sorted(names)
    assert {task["state"] for task in found.values()} == {"SUCCESS"}, found
    assert {task["worker"].split("@")[0] for task in found.values()} == {"test-a"}


@pytest.mark.parametrize("auth", [None, (USER, "wrong-password"), ("someone", PASSWORD)],
                         ids=["no-password", "wrong-password", "wrong-user"])
def test_flower_refuses_without_its_password(flower: str, auth: tuple[str, str] | None) -> None:
    for path in ("/api/tasks", "/api/workers", "/"):
        response = requests.get(f"{flower}{path}", auth=auth, timeout=10)
        assert response.status_code == 401, (path, response.status_code)
        assert "binder." not in response.text  # nothing of the queue shows


def test_flowers_own_lines_are_logfmt(flower: str, farm: Farm) -> None:
    """Flower's, tornado's and Celery's lines and Python warnings in the farm's format."""
    [log] = [p.log_path for p in farm.processes if p.name == "flower"]
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    assert lines and all(line.startswith("time=") for line in lines), lines[:20]
    assert any("logger=flower.command" in line for line in lines), lines[:20]
