"""The REST API over HTTP: the Binder protocol's shapes, auth and every error type.

Builds, cancel and history are in ``test_api_builds.py``; logs in
``test_api_logs.py``; the real Binder CLI in ``test_binder_client.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.conftest import API_KEY, STORE_BOUND
from tests.support.api_cases import plain_repo
from tests.support.farm import ApiClient, Farm, free_port, wait_http
from tests.support.git_server import GitServer

PROTOCOL_BUILD_FIELDS = {"name", "display-name", "repo", "repository", "phase", "status",
                         "start-time"}
TEMPLATE_FIELDS = {"name", "image-name", "image-source", "port", "command", "services",
                   "limits", "hardware", "time-created", "time-modified"}


def assert_error(response: requests.Response, status: int, kind: str, *words: str) -> dict:
    """``response`` is the protocol's error body of ``kind`` with ``status``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    # alreadyBuilding also names the build that runs, for a client to follow it.
    named = {"name"} if kind == "alreadyBuilding" else set()
    assert set(body) == {"type", "error", "suggestions", *named}, body
    assert body["type"] == kind, body
    assert isinstance(body["suggestions"], list) and body["error"], body
    for word in words:
        assert word in body["error"], (word, body)
    return dict(body)


def test_health_answers_without_a_key(api: ApiClient) -> None:
    response = api.request("GET", "/health/", auth=False)
    assert response.status_code == 200, response.text
    components = {entry["name"]: entry for entry in response.json()}
    assert set(components) == {"mongo", "redis", "docker", "registry", "workers"}
    for entry in components.values():
        assert entry["status"] == "ok" and entry["timestamp"], entry
    # The protocol's client sends its key to /health/; that is fine too.
    assert api.request("GET", "/health/").status_code == 200


def test_a_kept_alive_connection_is_answered_after_a_pause(api: ApiClient) -> None:
    """A client that reuses its connection a few seconds later gets its answer."""
    address = urlsplit(api.url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port,
                                            timeout=10)
    try:
        for pause in (0, 3):
            time.sleep(pause)
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            assert response.status in (200, 503)
            assert response.getheader("Connection", "").lower() != "close"
        assert connection.sock is not None  # one connection throughout
    finally:
        connection.close()


def test_openapi_document_and_docs_page(api: ApiClient) -> None:
    spec = api.request("GET", "/openapi.json", auth=False).json()
    assert spec["openapi"].startswith("3.")
    assert {"/builds/repo", "/builds/", "/builds/{name}", "/builds/{name}/history",
            "/builds/{name}/logs", "/templates/", "/templates/{name}",
            "/health/"} <= set(spec["paths"])
    assert set(spec["paths"]["/builds/{name}"]) >= {"get", "delete"}
    assert {"Build", "BuildRequest", "Template", "Error", "Health"} <= set(
        spec["components"]["schemas"])
    page = api.request("GET", "/docs", auth=False)
    assert page.status_code == 200 and "/openapi.json" in page.text


AUTHORIZED = [("POST", "/builds/repo"), ("POST", "/builds/"), ("DELETE", "/builds/anything"),
              ("GET", "/templates/"), ("GET", "/templates/anything")]


@pytest.mark.parametrize(("method", "path"), AUTHORIZED)
def test_authorized_endpoints_refuse_missing_or_wrong_key(api: ApiClient, method: str,
                                                         path: str) -> None:
    body = {"repository": "https://github.com/someone/something"}
    for headers in ({}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {API_KEY}x"},
                    {"Authorization": ""}):
        response = api.request(method, path, auth=False, headers=headers, json=body)
        assert_error(response, 403, "unauthorized", "Unauthorized request")


def test_key_raw_bearer_or_token(api: ApiClient) -> None:
    for value in (API_KEY, f"Bearer {API_KEY}", f"token {API_KEY}", f"bearer  {API_KEY} "):
        response = api.request("GET", "/templates/", auth=False,
                               headers={"Authorization": value})
        assert response.status_code == 200, (value, response.text)


def test_start_answers_the_protocol_fields_and_the_build_completes(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    url = plain_repo(git_server, repo_url, owner="Proto")
    # The protocol's own path, with no force, as the binder client sends it.
    response = api.request("POST", "/builds/", json={"repository": url})
    assert response.status_code == 200, response.text
    started = response.json()
    assert set(started) >= PROTOCOL_BUILD_FIELDS
    name = started["name"]
    assert name == f"proto-{url.rsplit('/', 1)[1]}"
    assert started["display-name"] == f"Proto/{url.rsplit('/', 1)[1]}"
    # The repository as the record keeps it: normalised (GitHub paths compare
    # case-insensitively), without a ref.
    assert started["repository"] == started["repo"] == url.lower()
    assert (started["provider"], started["ref"], started["spec"]) == ("github", None, url)
    assert started["status"] == "running" and started["phase"] == "queued"

    record = api.wait(name, timeout=300)
    assert record["status"] == "completed", (record, api.logs(name))
    assert PROTOCOL_BUILD_FIELDS | {"error", "commit", "image-source", "config", "worker",
                                    "phases", "cached"} <= set(record)
    assert record["phase"] == "finished" and record["error"] is None
    assert record["worker"] == "test-a" and record["image-source"]

    template = api.request("GET", f"/templates/{name}")
    assert template.status_code == 200, template.text
    assert set(template.json()) >= TEMPLATE_FIELDS
    assert template.json()["image-name"] == record["image-name"]
    assert template.json()["port"] == 8888
    everything = api.request("GET", "/templates/")
    assert everything.status_code == 200
    assert name in {entry["name"] for entry in everything.json()}

    # Status needs no key (the protocol's status is not authorized).
    assert api.request("GET", f"/builds/{name}", auth=False).json()["status"] == "completed"


@pytest.mark.parametrize(("body", "words"), [
    (b"not json", ["not JSON"]),
    (b"", ["not JSON"]),
    (b"\xff\xfe", ["not JSON"]),
    (b'["https://github.com/a/b"]', ["JSON object"]),
    (b'"https://github.com/a/b"', ["JSON object"]),
    (b'{"repository": "https://github.com/a/b", "color": "red"}', ["color", "Unknown field"]),
    (b'{"repository": 42}', ["repository", "Not a valid string"]),
    (b'{"repository": "https://github.com/a/b", "force": "maybe"}', ["force", "boolean"]),
    (b'{"force": true}', ["repository", "required"]),
    (b'{"repository": ""}', ["repository"]),
    (b'{"repository": "https://github.com/a/b", "repository": "https://github.com/c/d"}',
     ['"repository"', "more than once"]),
    (b"[" * 5000 + b"]" * 5000, ["JSON"]),
])
def test_malformed_request_bodies(api: ApiClient, body: bytes, words: list[str]) -> None:
    for path in ("/builds/repo", "/builds/"):
        response = api.request("POST", path, data=body,
                               headers={"Content-Type": "application/json"})
        assert_error(response, 422, "malformedRequest", *words)


def test_too_large_body_is_malformed(api: ApiClient) -> None:
    body = b'{"repository": "https://github.com/a/' + b"b" * 70_000 + b'"}'
    response = api.request("POST", "/builds/repo", data=body,
                           headers={"Content-Type": "application/json"})
    assert_error(response, 422, "malformedRequest", "too large")


@pytest.mark.parametrize("repository", [
    "ftp://github.com/a/b", "file:///etc/passwd", "ext::sh -c touch% /tmp/pwned",
    "-uhttps://github.com/a/b", "http://github.com/a/b", "https://github.com/only-owner",
    "https://github.com/a/b/tree/--upload-pack=touch", "https://user:pw@example.com/a/b",
    "not a url",
])
def test_bad_repo_sources(api: ApiClient, repository: str) -> None:
    response = api.start(repository)
    assert_error(response, 422, "badRepoSource")


def test_unknown_build_and_template(api: ApiClient) -> None:
    for method, path in (("GET", "/builds/no-such-build"), ("GET", "/builds/no-such/history"),
                         ("GET", "/builds/no-such-build/logs"),
                         ("GET", "/builds/no-such-build/logs?follow=1"),
                         ("DELETE", "/builds/no-such-build")):
        assert_error(api.request(method, path), 404, "noBuildInfo",
                     "Could not get build information for requested image")
    assert_error(api.request("GET", "/templates/no-such-template"), 404, "doesNotExist",
                 "The requested resource does not exist", "no-such-template")
    assert_error(api.request("GET", "/no/such/route"), 404, "doesNotExist")
    response = api.request("PUT", "/builds/anything")
    assert_error(response, 405, "malformedRequest")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("query", [
    "limit=abc", "limit=0", "limit=100000", "offset=-1", "offset=x", "status=bogus",
    "repository=", "colour=red", "limit=1&limit=2",
])
def test_bad_list_queries(api: ApiClient, query: str) -> None:
    response = api.request("GET", f"/builds/?{query}")
    assert_error(response, 422, "badQuery", query.split("=", 1)[0])


def test_bad_log_queries(api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    for query in ("follow=maybe", "after=-3", "shape=round"):
        assert_error(api.request("GET", f"/builds/whatever/logs?{query}"), 422, "badQuery",
                     query.split("=", 1)[0])
    response = api.request("GET", "/builds/whatever/logs?follow=1",
                           headers={"Last-Event-ID": "seven"})
    # Arguments, headers included, are checked before the build is looked up.
    assert_error(response, 422, "badQuery", "Last-Event-ID")


@contextlib.contextmanager
def second_api(farm: Farm, name: str, **env: str) -> Iterator[str]:
    """Another API process of the farm, with ``env`` changing its settings."""
    port = free_port()
    process = farm.start(name, ["api"], {"BINDER_PORT": str(port), **env})
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/openapi.json", process.alive)
    try:
        yield url
    finally:
        process.stop()
        farm.processes.remove(process)


def database_calls(repo_url: str) -> list[tuple[str, str, dict | None]]:
    return [("GET", "/builds/x", None), ("GET", "/builds/", None),
            ("GET", "/builds/x/history", None), ("GET", "/builds/x/logs", None),
            ("POST", "/builds/repo", {"repository": f"{repo_url}/nodb/anything"}),
            ("GET", "/templates/", None), ("GET", "/templates/x", None),
            ("DELETE", "/builds/x", None)]


def test_no_database_answers_503_quickly(api: ApiClient, farm: Farm, repo_url: str) -> None:
    """Every database-backed call fails fast; health names MongoDB alone (``api``
    brings the worker up, so the workers check passes)."""
    with second_api(farm, "api-nodb", MONGO_URL="mongodb://127.0.0.1:1", **STORE_BOUND) as url:
        for method, path, body in database_calls(repo_url):
            started = time.monotonic()
            response = requests.request(method, f"{url}{path}", json=body, timeout=10,
                                        headers={"Authorization": API_KEY})
            assert time.monotonic() - started < 3, (method, path)
            assert_error(response, 503, "noDatabase", "MongoDB")
        health = requests.get(f"{url}/health/", timeout=10)
    assert health.status_code == 503
    failing = {entry["name"] for entry in health.json() if entry["status"] != "ok"}
    assert failing == {"mongo"}, health.json()


def test_database_failure_is_bad_database(farm: Farm, repo_url: str) -> None:
    """MongoDB is there but the work fails (here: a database name it refuses)."""
    with second_api(farm, "api-baddb", BINDER_MONGO_DB="no such/db") as url:
        for method, path, body in database_calls(repo_url):
            response = requests.request(method, f"{url}{path}", json=body, timeout=10,
                                        headers={"Authorization": API_KEY})
            assert_error(response, 503, "badDatabase", "database")
