"""Every endpoint's scope, public reads, health details, bans, start and follower limits,
in-process.

The store is replaced: a request that gets past the checks meets a stub
that answers 409 (a start) or 404 (anything else), so "not 403" below
means the key was enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits.storage import MemoryStorage
from prometheus_client.registry import CollectorRegistry

import api.binderhub
import api.builds
import api.health
import api.log_follow
import api.logs
import api.metrics
import api.templates
import common.config
from api import create_app
from api.admission import ADMISSION_EXTENSION, Admission
from common.config import load_config
from common.errors import AlreadyBuilding, DoesNotExist, NoBuildInfo

KEYS = {"read": "reader-key-0123456789", "build": "launcher-key-0123456789",
        "build2": "rotated-launcher-key-01", "admin": "ops-key-0123456789"}
ENTRIES = (f"dashboard:read:{KEYS['read']},launcher:build:{KEYS['build']},"
           f"launcher-next:build:{KEYS['build2']}")
SCOPES = ("read", "build", "admin")
#: (method, path, scope it needs; "public" for the public reads)
ENDPOINTS = [
    ("post", "/builds/repo", "build"), ("post", "/builds/", "build"),
    ("delete", "/builds/o-r", "build"),
    ("get", "/templates/", "read"), ("get", "/templates/o-r", "read"),
    ("get", "/metrics", "public"), ("get", "/builds/", "public"), ("get", "/builds/o-r", "public"),
    ("get", "/builds/o-r/history", "public"), ("get", "/builds/o-r/logs", "public"),
]
BODY = {"repository": "https://github.com/owner/repo"}


def _no_build(*args: object, **kwargs: object) -> Any:
    raise NoBuildInfo("no such build")


def _already(*args: object, **kwargs: object) -> Any:
    raise AlreadyBuilding("already building")


def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **environ: str) -> Flask:
    monkeypatch.setattr(common.config, "_current", common.config._current)
    for name in ("list_builds", "get_build", "history", "find_attempt"):
        monkeypatch.setattr(api.builds.build_store, name, _no_build)
    monkeypatch.setattr(api.builds.leases, "cancel", _no_build)
    monkeypatch.setattr(api.builds.build_store, "create_build", _already)
    monkeypatch.setattr(api.builds.build_store, "check_startable", _already)
    monkeypatch.setattr(api.builds.name_store, "claim_name", lambda preferred, *rest: preferred)
    monkeypatch.setattr(api.logs.build_store, "get_build", _no_build)
    monkeypatch.setattr(api.templates.template_store, "list_templates", lambda: [])
    monkeypatch.setattr(api.templates.template_store, "get_template",
                        lambda name: (_ for _ in ()).throw(DoesNotExist("no template")))
    monkeypatch.setattr(api.metrics, "_registry", lambda: CollectorRegistry())
    config = load_config(environ={
        "BINDER_API_KEY": KEYS["admin"], "BINDER_API_KEYS": ENTRIES,
        "BINDER_DATA_DIR": str(tmp_path), "BINDER_START_RATE_PER_KEY": "",
        "BINDER_START_RATE_PER_REPO": "", **environ})
    app = create_app(config)
    app.extensions[ADMISSION_EXTENSION] = Admission(config, MemoryStorage())
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    yield make_app(tmp_path, monkeypatch).test_client()


def call(client: FlaskClient, method: str, path: str, key: str | None) -> Any:
    headers = {"Authorization": key} if key else {}
    return getattr(client, method)(path, headers=headers,
                                   json=BODY if method == "post" else None)


@pytest.mark.parametrize(("method", "path", "needs"), ENDPOINTS)
@pytest.mark.parametrize("scope", SCOPES)
def test_each_endpoint_refuses_a_key_of_too_small_a_scope(
        client: FlaskClient, method: str, path: str, needs: str, scope: str) -> None:
    response = call(client, method, path, KEYS[scope])
    enough = needs == "public" or SCOPES.index(scope) >= SCOPES.index(needs)
    if enough:
        assert response.status_code != 403, response.get_json()
    else:
        assert response.status_code == 403
        body = response.get_json()
        assert body["type"] == "insufficientScope"
        assert f"has the scope {scope}; this request needs {needs}" in body["error"]


@pytest.mark.parametrize(("method", "path", "needs"), ENDPOINTS)
def test_no_key_or_an_unknown_one_is_unauthorized_except_for_public_reads(
        client: FlaskClient, method: str, path: str, needs: str) -> None:
    for key in (None, "not-a-key-of-this-farm"):
        response = call(client, method, path, key)
        if needs == "public":
            assert response.status_code in (200, 404), (key, response.get_json())
        else:
            assert response.status_code == 403
            assert response.get_json()["type"] == "unauthorized"


def test_reads_need_a_key_when_public_reads_are_off(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(tmp_path, monkeypatch, BINDER_PUBLIC_READS="false").test_client()
    for method, path, needs in ENDPOINTS:
        if needs != "public":
            continue
        response = call(client, method, path, None)
        assert response.status_code == 403 and response.get_json()["type"] == "unauthorized"
        assert call(client, method, path, KEYS["read"]).status_code in (200, 404)


def test_two_keys_of_one_client_are_valid_at_once(client: FlaskClient) -> None:
    for key in (KEYS["build"], KEYS["build2"]):
        assert call(client, "post", "/builds/repo", key).status_code == 409


def test_every_route_declares_who_may_call_it(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "security" in operation, f"{method.upper()} {path} says nothing about keys"


def test_health_details_only_with_a_key(client: FlaskClient,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(config: object) -> None:
        raise RuntimeError("Error 111 connecting to 10.20.30.40:6379. Connection refused.")

    monkeypatch.setattr(api.health, "CHECKS", {"redis": refused, "ok": lambda config: None})
    monkeypatch.setattr(api.health, "check_workers", lambda config, celery: None)
    anonymous = client.get("/health/")
    assert anonymous.status_code == 503
    assert {entry["name"]: entry["status"] for entry in anonymous.get_json()} == \
        {"redis": "failing", "ok": "ok", "workers": "ok"}
    assert "10.20.30.40" not in anonymous.get_data(as_text=True)
    assert "10.20.30.40" not in client.get(
        "/health/", headers={"Authorization": "unknown"}).get_data(as_text=True)
    detailed = client.get("/health/", headers={"Authorization": KEYS["read"]})
    assert detailed.status_code == 503
    errors = {entry["name"]: entry["error"] for entry in detailed.get_json()}
    assert "10.20.30.40:6379" in errors["redis"] and errors["ok"] is None


def test_a_banned_repository_is_refused_with_a_sentence(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(tmp_path, monkeypatch,
                      BINDER_BANNED_REPOS=r"github\.com/owner/").test_client()
    response = call(client, "post", "/builds/repo", KEYS["admin"])
    assert response.status_code == 403
    body = response.get_json()
    assert body["type"] == "repositoryBanned"
    assert body["error"] == ("Building https://github.com/owner/repo is not allowed on this "
                             "farm: its operators banned it.")
    other = client.post("/builds/repo", headers={"Authorization": KEYS["admin"]},
                        json={"repository": "https://github.com/someone/else"})
    assert other.status_code == 409


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/builds/repo"), ("post", "/builds/"),
    ("get", "/build/gh/owner/repo/HEAD?build_only=true")])
def test_a_banned_start_claims_no_build_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             method: str, path: str) -> None:
    client = make_app(tmp_path, monkeypatch,
                      BINDER_BANNED_REPOS=r"github\.com/owner/").test_client()
    claimed: list[str] = []
    monkeypatch.setattr(api.builds.name_store, "claim_name",
                        lambda preferred, *rest: claimed.append(preferred) or preferred)
    response = call(client, method, path, KEYS["build"])
    assert "banned it" in response.get_data(as_text=True)
    assert claimed == []  # a banned repository leaves nothing in the store


@pytest.mark.parametrize("status", ["completed", "running"])
def test_a_banned_repository_is_refused_on_binderhubs_stream_even_when_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    client = make_app(tmp_path, monkeypatch,
                      BINDER_BANNED_REPOS=r"github\.com/owner/").test_client()
    # Built (or building) before the ban: the stream must not hand its image out.
    record = {"name": "owner-repo", "build_id": "b1", "status": status,
              "image_name": "reg/owner-repo:abc", "content_id": "a" * 40}
    monkeypatch.setattr(api.builds.build_store, "get_build", lambda name: record)
    monkeypatch.setattr(api.binderhub, "_still_current", lambda *args: True)
    response = client.get("/build/gh/owner/repo/HEAD?build_only=true",
                          headers={"Authorization": KEYS["build"]})
    events = [json.loads(line.removeprefix("data: "))
              for line in response.get_data(as_text=True).splitlines()
              if line.startswith("data: ")]
    assert events == [{"phase": "failed", "status_code": 403, "message": (
        "Building https://github.com/owner/repo is not allowed on this farm: its operators "
        "banned it. Ask the farm's operators if you think this is a mistake.\n")}]


def test_starts_past_the_rate_answer_429_with_retry_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_app(tmp_path, monkeypatch, BINDER_START_RATE_PER_KEY="2/hour",
                      BINDER_START_RATE_PER_REPO="3/hour").test_client()
    for _ in range(2):
        assert call(client, "post", "/builds/repo", KEYS["build"]).status_code == 409
    refused = call(client, "post", "/builds/repo", KEYS["build"])
    assert refused.status_code == 429
    assert refused.get_json()["type"] == "rateLimited"
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    # another key may still start it once more; then the repository's own limit
    assert call(client, "post", "/builds/repo", KEYS["build2"]).status_code == 409
    by_repo = call(client, "post", "/builds/repo", KEYS["build2"])
    assert by_repo.status_code == 429
    assert "https://github.com/owner/repo" in by_repo.get_json()["error"]
    # admins are not limited
    assert call(client, "post", "/builds/repo", KEYS["admin"]).status_code == 409


def test_a_process_following_all_it_may_refuses_followers_before_any_build_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    app = make_app(tmp_path, monkeypatch, BINDER_API_THREADS="4")
    monkeypatch.setattr(api.builds.build_store, "create_build",
                        lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(api.log_follow, "_following", 2)  # 4 threads, 2 kept
    client = app.test_client()
    events = client.get("/build/gh/owner/repo/HEAD?build_only=true",
                        headers={"Authorization": KEYS["build"]}).get_data(as_text=True)
    failed = json.loads(events.removeprefix("data: "))
    assert (failed["phase"], failed["status_code"]) == ("failed", 503), failed
    assert "following 2 build logs" in failed["message"]
    assert started == [] and api.log_follow._following == 2
    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda *args: {"name": "o-r", "build_id": "b1"})
    logs = client.get("/builds/o-r/logs?follow=1", headers={"Authorization": KEYS["read"]})
    assert (logs.status_code, logs.get_json()["type"]) == (503, "tooManyFollowers")
    assert logs.headers["Retry-After"] == "5"
    assert api.log_follow._following == 2


def test_a_start_that_fails_unexpectedly_gives_its_follower_slot_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path, monkeypatch, BINDER_API_THREADS="4")

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("a bug in the start")

    monkeypatch.setattr(api.builds.name_store, "claim_name", broken)
    monkeypatch.setattr(api.log_follow, "_following", 0)
    client = app.test_client()
    for _ in range(3):  # more than the process may follow at once (4 threads, 2 kept)
        response = client.get("/build/gh/owner/repo/HEAD?build_only=true",
                              headers={"Authorization": KEYS["build"]})
        assert response.status_code == 500
        assert "a bug in the start" not in response.get_data(as_text=True)
    assert api.log_follow._following == 0
