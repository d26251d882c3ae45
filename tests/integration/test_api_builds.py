"""Builds over HTTP: listing and paging, alreadyBuilding, cancel, and history."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from urllib.parse import urlencode, urljoin, urlsplit

import docker
from bson import ObjectId

from common import build_store, db
from common.clock import utcnow
from common.models import Status
from tests.integration.test_api import assert_error
from tests.support.api_cases import plain_repo, slow_repo
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer


def start(api: ApiClient, url: str, force: bool = False) -> dict:
    response = api.start(url, force=force)
    assert response.status_code == 200, response.text
    return dict(response.json())


def listing(api: ApiClient, query: str) -> list[dict]:
    response = api.request("GET", f"/builds/?{query}")
    assert response.status_code == 200, response.text
    return list(response.json())


def wait_cancelled(api: ApiClient, name: str, since: float, within: float = 10) -> dict:
    record = api.wait(name, timeout=within + 5)
    assert record["status"] == "cancelled", record
    assert time.monotonic() - since < within, f"cancelled after {time.monotonic() - since:.1f} s"
    return record


def test_list_filters_and_pages_newest_first(api: ApiClient, git_server: GitServer,
                                             repo_url: str) -> None:
    owner = f"pager{uuid.uuid4().hex[:6]}"
    urls = [plain_repo(git_server, repo_url, owner=owner) for _ in range(3)]
    names = [start(api, url)["name"] for url in urls]
    newest_first = names[::-1]
    try:
        # Builds of this test are the newest; paging walks them in order.
        assert [b["name"] for b in listing(api, "limit=3")] == newest_first
        page = api.request("GET", "/builds/?limit=2")
        assert [b["name"] for b in page.json()] == newest_first[:2]
        assert 'rel="next"' in page.headers["Link"] and "offset=2" in page.headers["Link"]
        assert [b["name"] for b in listing(api, "limit=2&offset=2")][:1] == newest_first[2:]
        assert [b["name"] for b in listing(api, "limit=1&offset=1")] == [names[1]]
        # The repository filter, by the URL as given or with a trailing .git.
        for url, name in zip(urls, names, strict=True):
            assert [b["name"] for b in listing(api, f"repository={url}")] == [name]
            assert [b["name"] for b in listing(api, f"repository={url}.git")] == [name]
        running = {b["name"] for b in listing(api, "status=running&limit=1000")}
        assert set(names) <= running
    finally:
        for name in names:
            assert api.request("DELETE", f"/builds/{name}").status_code == 200
    for name in names:
        assert api.wait(name, timeout=30)["status"] == "cancelled"
    cancelled = {b["name"] for b in listing(api, "status=cancelled&limit=1000")}
    assert set(names) <= cancelled
    assert not set(names) & {b["name"] for b in listing(api, "status=running&limit=1000")}
    # A queued build is cancelled at once, before any worker touches it.
    queued = [api.build(name) for name in names if not api.build(name)["phases"]]
    for record in queued:
        assert record["error"] == "Cancelled before it started.", record


def test_list_has_a_default_page_size(api: ApiClient) -> None:
    repository = f"https://example.org/paging/{uuid.uuid4().hex[:8]}"
    for index in range(105):
        record = build_store.create_build(f"paging-{uuid.uuid4().hex[:10]}-{index}", {
            "display_name": "paging/x", "repository": repository})
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test record")
    response = api.request("GET", f"/builds/?repository={repository}")
    assert response.status_code == 200
    page = response.json()
    assert len(page) == 100
    assert [b["name"].rsplit("-", 1)[1] for b in page[:3]] == ["104", "103", "102"]
    # The next page's link, resolved against the URL asked, as a client follows it.
    following = urlsplit(urljoin(response.url, response.links["next"]["url"]))
    assert following.query == urlencode({"repository": repository, "offset": 100})
    rest = api.request("GET", f"{following.path}?{following.query}").json()
    assert len(rest) == 5
    assert not {b["name"] for b in page} & {b["name"] for b in rest}


def test_pages_reach_builds_started_long_ago(api: ApiClient) -> None:
    """A page is read from the newest window of start times that holds it, then from
    every record: each page is whole and in order whatever the builds' ages."""
    repository = f"https://example.org/ages/{uuid.uuid4().hex[:8]}"
    ages = [dt.timedelta(minutes=30), dt.timedelta(hours=3), dt.timedelta(days=2),
            dt.timedelta(days=40), dt.timedelta(days=700), dt.timedelta(days=3650)]
    names = []
    for index, age in enumerate(ages):
        record = build_store.create_build(f"ages-{uuid.uuid4().hex[:10]}-{index}", {
            "display_name": "ages/x", "repository": repository})
        build_store.finish(record["build_id"], record["attempt"], Status.FAILED, "test record")
        db.builds().update_one({"build_id": record["build_id"]},
                               {"$set": {"start_time": utcnow() - age}})
        names.append(record["name"])
    assert [b["name"] for b in listing(api, f"repository={repository}")] == names
    for offset in range(len(ages)):
        assert [b["name"] for b in listing(api, f"repository={repository}&limit=2"
                                                f"&offset={offset}")] == names[offset:offset + 2]
    assert [b["name"] for b in listing(api, f"repository={repository}&status=failed"
                                            f"&limit=1&offset=5")] == names[5:]
    assert listing(api, f"repository={repository}&offset=6") == []


def test_a_record_stored_under_another_id_is_read_and_superseded_under_its_name(
        api: ApiClient) -> None:
    """Records are keyed by build name; one stored before (an ``ObjectId``) is still
    served, and the next attempt replaces it under the name, the old one archived."""
    name = f"legacy-{uuid.uuid4().hex[:10]}"
    fields = {"display_name": "legacy/x", "repository": f"https://example.org/legacy/{name}"}
    old = {**build_store.new_record(name, {**fields, "status": "failed", "phase": "finished",
                                           "error": "an old failure"}),
           "_id": ObjectId()}
    db.builds().insert_one(old)
    assert api.build(name)["error"] == "an old failure"
    new = build_store.create_build(name, fields)
    assert new["_id"] == name and new["build_id"] != old["build_id"]
    assert [r["_id"] for r in db.builds().find({"name": name})] == [name]
    history = api.request("GET", f"/builds/{name}/history").json()
    assert [a["build-id"] for a in history] == [new["build_id"], old["build_id"]]
    assert api.build(name)["build-id"] == new["build_id"]
    build_store.finish(new["build_id"], new["attempt"], Status.FAILED, "test record")


def build_containers(marker: str) -> list[str]:
    """Containers (e.g. a classic-builder step) whose command contains ``marker``.

    One listing, without inspecting each container: other builds on the engine
    remove theirs meanwhile."""
    client = docker.from_env()
    try:
        return [c["Id"] for c in client.api.containers(all=True)
                if marker in (c.get("Command") or "")]
    finally:
        client.close()


def test_already_building_then_cancel_stops_the_build(api: ApiClient, git_server: GitServer,
                                                      repo_url: str) -> None:
    seconds = 300 + uuid.uuid4().int % 500
    url = slow_repo(git_server, repo_url, seconds=seconds)
    name = start(api, url)["name"]
    try:
        assert assert_error(api.start(url), 409, "alreadyBuilding", "Already building",
                            name)["name"] == name
        assert api.wait_phase(name, "building", timeout=120)["status"] == "running"
        deadline = time.monotonic() + 60
        while not build_containers(f"sleep {seconds}") and time.monotonic() < deadline:
            time.sleep(0.5)  # the Docker build reached the sleeping step
        asked = time.monotonic()
        response = api.request("DELETE", f"/builds/{name}")
        assert response.status_code == 200, response.text
        assert response.json()["cancel-requested"] is True
    finally:
        api.request("DELETE", f"/builds/{name}")
    record = wait_cancelled(api, name, asked)
    assert record["error"], record
    # Cancelled in its build phase: it pushed nothing, so it names no image.
    assert record["image-name"] is None and record["planned-image"], record
    again = api.request("DELETE", f"/builds/{name}")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    deadline = time.monotonic() + 15
    while build_containers(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not build_containers(f"sleep {seconds}"), "the Docker build still runs"


def test_rebuilds_keep_every_attempt(api: ApiClient, git_server: GitServer,
                                     repo_url: str) -> None:
    url = plain_repo(git_server, repo_url)
    first = start(api, url)
    name = first["name"]
    assert api.wait(name, timeout=300)["status"] == "completed"
    second = start(api, url, force=True)
    assert second["build-id"] != first["build-id"]
    rebuilt = api.wait(name, timeout=300)
    log = api.logs(name)
    assert rebuilt["status"] == "completed", (rebuilt, log)
    # force rebuilds: a Docker build ran (BuildKit's step lines, then the image it made),
    # not the cache answer of an already-built commit.
    assert rebuilt["cached"] is False, rebuilt
    assert "is already built; reusing it" not in log
    assert re.search(r"^#\d+ \[", log, re.MULTILINE), log
    assert f"built {rebuilt['image-name']} (sha256:" in log, log

    attempts = api.request("GET", f"/builds/{name}/history")
    assert attempts.status_code == 200, attempts.text
    assert [a["build-id"] for a in attempts.json()] == [second["build-id"], first["build-id"]]
    assert [a["status"] for a in attempts.json()] == ["completed", "completed"]
    old_log = api.request("GET", f"/builds/{name}/logs?build-id={first['build-id']}")
    assert old_log.status_code == 200 and old_log.text.strip(), old_log.text
    assert api.logs(name).strip() and api.logs(name) != ""
    assert_error(api.request("GET", f"/builds/{name}/logs?build-id=nope"), 404, "noBuildInfo")


def test_forced_restart_of_a_running_build_archives_it(api: ApiClient, git_server: GitServer,
                                                       repo_url: str) -> None:
    url = slow_repo(git_server, repo_url)
    first = start(api, url)
    name = first["name"]
    try:
        second = start(api, url, force=True)
        assert second["status"] == "running" and second["build-id"] != first["build-id"]
        history = api.request("GET", f"/builds/{name}/history").json()
        assert [a["build-id"] for a in history] == [second["build-id"], first["build-id"]]
        assert history[1]["status"] == "cancelled"
        assert "forced rebuild" in history[1]["error"]
        assert history[1]["image-name"] is None, history[1]  # replaced before its push
    finally:
        asked = time.monotonic()
        api.request("DELETE", f"/builds/{name}")
    wait_cancelled(api, name, asked)


def test_a_failed_build_keeps_its_suggestions_in_its_record_history_and_log(
        api: ApiClient, git_server: GitServer, repo_url: str) -> None:
    repo = f"badyaml-{uuid.uuid4().hex[:8]}"
    git_server.make_repo(f"github/hank/{repo}", {".binder.yml": "port: [8888\n"})
    first = api.start_and_wait(f"{repo_url}/hank/{repo}", timeout=300)
    assert first["status"] == "failed", first
    assert first["suggestions"][0] == "Fix the YAML syntax.", first
    end = api.logs(first["name"]).rstrip("\n").splitlines()[-1]
    assert end == f"== build failed: {first['error']} Suggestions: " + " ".join(
        first["suggestions"]), end

    # The failed attempt is archived with its suggestions when the name is built again.
    again = start(api, f"{repo_url}/hank/{repo}", force=True)
    assert api.wait(again["name"], timeout=300)["status"] == "failed"
    attempts = api.request("GET", f"/builds/{first['name']}/history").json()
    assert [a["build-id"] for a in attempts] == [again["build-id"], first["build-id"]]
    assert [a["suggestions"] for a in attempts] == [first["suggestions"]] * 2
