"""BinderHub's build-only API, driven by BinderHub's own npm client against a real farm.

``@jupyterhub/binderhub-client`` is installed from the npm registry into a
temporary directory (``make test`` installs Node and npm with the other
system packages) and run by ``tests/support/binderhub_client.mjs``, which
prints each event it yields as a JSON line. Error answers and the other
BinderHub endpoints are read with ``requests``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.integration.conftest import API_KEY
from tests.support.api_cases import BASE_IMAGE, plain_repo, read_sse, ticking_repo
from tests.support.farm import ApiClient, Farm, free_port, wait_http
from tests.support.git_server import GitServer

CLIENT = "@jupyterhub/binderhub-client@0.5.0"
SCRIPT = Path(__file__).resolve().parents[1] / "support" / "binderhub_client.mjs"
PHASES = {"waiting", "fetching", "building", "pushing", "ready"}


@pytest.fixture(scope="module")
def client_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "node and npm are needed (deploy/install-system.sh)"
    prefix = tmp_path_factory.mktemp("binderhub-client")
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                    "--loglevel=error", CLIENT], check=True, timeout=300, capture_output=True)
    return prefix / "node_modules" / "@jupyterhub" / "binderhub-client" / "lib" / "client.js"


def run_client(client_js: Path, api: ApiClient, spec: str,
               token: str | None = API_KEY) -> subprocess.Popen[str]:
    return subprocess.Popen(["node", str(SCRIPT), str(client_js), f"{api.url}/build/", spec,
                             token or ""], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def events_of(process: subprocess.Popen[str], timeout: float = 300) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=timeout)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events, f"the client printed no event:\n{out}\n{err}"
    return events


def stream(api: ApiClient, path: str, **headers: str) -> list[dict[str, Any]]:
    """The events of one request, read to the end with ``requests``."""
    response = requests.get(f"{api.url}{path}", headers=headers, stream=True, timeout=300)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return [json.loads(event.data) for event in read_sse(response)]


def build_of(api: ApiClient, repository: str) -> dict[str, Any]:
    listed = api.request("GET", "/builds/", params={"repository": repository}).json()
    assert len(listed) == 1, listed
    return dict(listed[0])


def test_gh_build_streams_to_ready_and_a_second_request_finds_it(
        client_js: Path, api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="bh")
    owner_repo = url.removeprefix(f"{repo_url}/")
    events = events_of(run_client(client_js, api, f"gh/{owner_repo}/HEAD"))

    assert events[0] == {"phase": "waiting", "message": "Waiting for build to start...\n"}
    assert {event["phase"] for event in events} <= PHASES, events
    assert all(event["message"].endswith("\n") for event in events)
    fetching = [e["message"] for e in events if e["phase"] == "fetching"]
    assert any("resolved" in message for message in fetching), events
    assert any(e["phase"] == "building" for e in events)
    ready = events[-1]
    assert ready["phase"] == "ready" and ready["message"] == "Done! Image built\n"

    # HEAD is a start without a ref: the same build as POST /builds/ of the bare URL.
    record = api.build(build_of(api, url)["name"])  # GET /builds/NAME
    assert record["status"] == "completed" and record["ref"] is None
    assert ready["imageName"] == record["image-name"]

    again = stream(api, f"/build/gh/{owner_repo}/HEAD?build_only=true",
                   Authorization=f"token {API_KEY}")
    assert again == [{"phase": "ready", "message": "Done! Found built image\n",
                      "imageName": record["image-name"]}]
    assert len(api.request("GET", f"/builds/{record['name']}/history").json()) == 1


def test_git_prefix_takes_an_escaped_url_and_a_ref(api: ApiClient,
                                                   git_server: GitServer) -> None:
    path = f"elsewhere/bh/plain-{uuid.uuid4().hex[:6]}"
    shas = git_server.make_repo(path, {"README.md": "hi\n"}, branches={"dev": {"a.txt": "a\n"}})
    url = f"{git_server.url}/{path}"
    events = stream(api, f"/build/git/{quote(url, safe='')}/dev?build_only=true",
                    Authorization=f"Bearer {API_KEY}")
    assert events[-1]["phase"] == "ready", events
    record = build_of(api, f"{url}@dev")
    assert record["ref"] == "dev" and record["commit"] == shas["dev"]
    assert events[-1]["imageName"] == record["image-name"]


def test_second_client_attaches_replays_the_log_and_sees_the_same_ready(
        client_js: Path, api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = ticking_repo(git_server, repo_url, ticks=8, owner="bh")
    spec = f"gh/{url.removeprefix(f'{repo_url}/')}/HEAD"
    first = run_client(client_js, api, spec)
    try:
        name = _wait_listed(api, url)
        api.wait_phase(name, "building")
        second = run_client(client_js, api, spec)
        first_events, second_events = events_of(first), events_of(second)
    finally:
        first.kill()
    assert first_events[-1]["phase"] == second_events[-1]["phase"] == "ready"
    assert first_events[-1] == second_events[-1]
    # The second client joined mid-build, yet read the log from its first line.
    assert [e for e in second_events if e["phase"] == "fetching"] == \
        [e for e in first_events if e["phase"] == "fetching"]
    assert any("tick-1" in e["message"] for e in second_events)
    assert len(api.request("GET", f"/builds/{name}/history").json()) == 1


def _wait_listed(api: ApiClient, repository: str, timeout: float = 30) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = api.request("GET", "/builds/", params={"repository": repository}).json()
        if listed:
            return str(listed[0]["name"])
        time.sleep(0.2)
    raise AssertionError(f"no build of {repository} appeared")


def test_failing_build_ends_failed_with_the_error(client_js: Path, api: ApiClient,
                                                  git_server: GitServer, repo_url: str) -> None:
    repo = f"broken-{uuid.uuid4().hex[:6]}"
    git_server.make_repo(f"github/bh/{repo}", {
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {repo} && exit 3\n"})
    events = events_of(run_client(client_js, api, f"gh/bh/{repo}/HEAD"))
    failed = events[-1]
    assert failed["phase"] == "failed", events
    record = build_of(api, f"{repo_url}/bh/{repo}")
    assert record["status"] == "failed" and record["error"]
    assert failed["message"] == record["error"] + "\n"
    # Nothing to launch: no event and no record names an image.
    assert not any("imageName" in event for event in events), events
    assert record["image-name"] is None and record["planned-image"], record


@pytest.mark.parametrize("path, headers, status, words", [
    ("/build/gh/a/b/HEAD?build_only=true", {}, 403, "Unauthorized request"),
    ("/build/gh/a/b/HEAD?build_only=true", {"Authorization": "Bearer wrong"}, 403,
     "Unauthorized request"),
    ("/build/gh/a/b/HEAD", {"Authorization": f"Bearer {API_KEY}"}, 400, "build_only=true"),
    ("/build/hg/a/b/HEAD?build_only=true", {"Authorization": f"Bearer {API_KEY}"}, 422,
     "No provider found for prefix hg"),
    ("/build/gh/only-owner?build_only=true", {"Authorization": f"Bearer {API_KEY}"}, 422,
     'Did you mean "only-owner/HEAD"?'),
    ("/build/git/no-ref?build_only=true", {"Authorization": f"Bearer {API_KEY}"}, 422,
     "url-escaped-url/ref"),
])
def test_refusals_are_failed_events(api: ApiClient, path: str, headers: dict[str, str],
                                    status: int, words: str) -> None:
    events = stream(api, path, **headers)
    assert len(events) == 1 and events[0]["phase"] == "failed", events
    assert events[0]["status_code"] == status
    assert words in events[0]["message"] and events[0]["message"].endswith("\n")


def test_wrong_key_through_the_npm_client_fails(client_js: Path, api: ApiClient) -> None:
    events = events_of(run_client(client_js, api, "gh/a/b/HEAD", token="not-the-key"))
    assert events[-1]["phase"] == "failed"
    assert "Unauthorized request" in events[-1]["message"]


def test_versions_health_and_repoproviders(api: ApiClient) -> None:
    versions = requests.get(f"{api.url}/versions", timeout=30).json()
    assert versions["binderhub"].startswith("binder-build ")
    assert "binder-build" in versions["builder_info"]

    response = requests.get(f"{api.url}/health", timeout=30)
    health = response.json()
    assert response.status_code == 200 and health["ok"] is True, health
    assert {check["service"] for check in health["checks"]} == {
        "MongoDB", "Redis", "Docker", "Docker registry", "Build workers"}
    assert all(set(check) == {"service", "ok"} for check in health["checks"])
    assert "127.0.0.1" not in response.text and "://" not in response.text
    # The farm's own /health/ keeps its per-component report.
    assert {entry["name"] for entry in api.request("GET", "/health/").json()} >= {"mongo"}

    providers = requests.get(f"{api.url}/api/repoproviders", timeout=30).json()
    assert [p["id"] for p in providers] == ["gh", "gist", "gl", "git", "zenodo", "figshare",
                                            "dataverse"]
    github = providers[0]
    assert github["ref"] == {"enabled": True, "default": "HEAD"}
    assert github["repo"]["urlEncode"] is False and github["spec"]["validateRegex"]
    assert github["detect"]["regex"].startswith("^(")


def test_cors_is_off_by_default(api: ApiClient) -> None:
    response = requests.options(f"{api.url}/build/gh/a/b/HEAD", timeout=30, headers={
        "Origin": "https://launcher.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_grants_the_configured_origin_the_build_stream(api: ApiClient, farm: Farm) -> None:
    origin = "https://launcher.example"
    port = free_port()
    process = farm.start("api-cors", ["api"], {"BINDER_PORT": str(port),
                                                "BINDER_CORS_ALLOW_ORIGIN": origin})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/openapi.json", process.alive)
        preflight = requests.options(f"{url}/build/gh/a/b/HEAD", timeout=30, headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        answer = requests.get(f"{url}/build/gh/a/b/HEAD", timeout=30,
                              headers={"Origin": origin})
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert '"status_code": 403' in answer.text
        other = requests.get(f"{url}/versions", timeout=30,
                             headers={"Origin": "https://elsewhere.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        process.stop()
