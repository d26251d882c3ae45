"""The Flask API on paths that answer before MongoDB or Celery would be reached.

``common.build_store`` and the enqueueing are replaced by guards that fail the
test if a request gets that far, except where a test stubs them on purpose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import flask_smorest
import marshmallow
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.errors import OperationFailure

import api
import api.builds
import api.logs
import api.web
import common.config
import common.errors
from api import create_app
from api.docs import build_spec
from api.log_follow import Ended, Lines
from api.schemas.builds import MAX_LINE, MAX_OFFSET
from common.config import load_config
from common.db import translate_errors

KEY = "k"
AUTH = {"Authorization": KEY}
MAX_BYTES = 2048


def _must_not_run(*args: object, **kwargs: object) -> Any:
    raise AssertionError("this request must not reach the database or the queue")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    # create_app installs its config process-wide; put the previous one back afterwards.
    monkeypatch.setattr(common.config, "_current", common.config._current)
    for name in ("create_build", "list_builds", "get_build", "history",
                 "find_attempt"):
        monkeypatch.setattr(api.builds.build_store, name, _must_not_run, raising=False)
    monkeypatch.setattr(api.builds.name_store, "claim_name", _must_not_run)
    monkeypatch.setattr(api.builds.leases, "cancel", _must_not_run)
    monkeypatch.setattr(api.builds, "enqueue_build", _must_not_run)
    config = load_config(environ={"BINDER_API_KEY": KEY, "BINDER_DATA_DIR": str(tmp_path),
                                  "BINDER_MAX_REQUEST_BYTES": str(MAX_BYTES)})
    app = create_app(config)
    app.config["TESTING"] = True
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: object, headers: dict[str, str] | None = None,
         path: str = "/builds/repo") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = client.post(path, data=data, headers=headers if headers is not None else AUTH,
                           content_type="application/json")
    return response.status_code, response.get_json()


def assert_error_body(body: dict[str, Any], kind: str) -> None:
    assert set(body) == {"type", "error", "suggestions"}
    assert body["type"] == kind
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["suggestions"], list)


# authorization


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "wrong"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Basic k"},
    {"Authorization": "kk"},
    {"Authorization": ""},
])
def test_start_without_the_key_is_unauthorized(client: FlaskClient,
                                               headers: dict[str, str]) -> None:
    status, body = post(client, {"repository": "https://github.com/o/r"}, headers)
    assert status == 403
    assert_error_body(body, "unauthorized")
    assert body["suggestions"]


@pytest.mark.parametrize("header", ["k", "Bearer k", "bearer k", "token k", "TOKEN   k ", " k "])
def test_key_is_accepted_raw_bearer_or_token(client: FlaskClient, header: str) -> None:
    status, body = post(client, {}, {"Authorization": header})
    assert status == 422  # past the key check, stopped by validation
    assert_error_body(body, "malformedRequest")
    assert "repository" in body["error"]


def test_key_check_comes_before_reading_the_body(client: FlaskClient) -> None:
    status, body = post(client, "not json", {})
    assert status == 403
    assert body["type"] == "unauthorized"


def test_other_writes_need_the_key(client: FlaskClient) -> None:
    for method, path in [("delete", "/builds/o-r"),
                         ("get", "/templates/"), ("get", "/templates/o-r"),
                         ("post", "/builds/")]:
        response = getattr(client, method)(path)
        assert response.status_code == 403, (method, path)
        assert response.get_json()["type"] == "unauthorized"


# request bodies


@pytest.mark.parametrize(("data", "fragment"), [
    ("not json", "not JSON"),
    ("", "not JSON"),
    (b"\xff\xfe{", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('"https://github.com/o/r"', "JSON object"),
    ("null", "JSON object"),
])
def test_body_that_is_not_a_json_object(client: FlaskClient, data: str | bytes,
                                        fragment: str) -> None:
    status, body = post(client, data)
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert fragment in body["error"]


@pytest.mark.parametrize(("data", "reason"), [
    ('{"repository": "https://github.com/o/r", "force": 1' + "0" * 5000 + "}",
     "a number in it is too long"),
    ("[" * 1100, "it is nested too deeply"),
])
def test_a_body_python_cannot_read_is_refused_without_python_in_the_answer(
        app: Flask, data: str, reason: str) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1 << 16
    status, body = post(app.test_client(), data)
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert body["error"] == f"Request body is not JSON: {reason}."
    assert "sys." not in body["error"] and "recursion" not in body["error"]


def test_unknown_field_is_named(client: FlaskClient) -> None:
    status, body = post(client, {"repository": "https://github.com/o/r", "colour": "blue"})
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert "colour" in body["error"]


@pytest.mark.parametrize("force", ["maybe", [], {"a": 1}, 2])
def test_force_of_the_wrong_type(client: FlaskClient, force: object) -> None:
    status, body = post(client, {"repository": "https://github.com/o/r", "force": force})
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert "force" in body["error"]


@pytest.mark.parametrize("repository", ["", 42, None])
def test_repository_must_be_a_non_empty_string(client: FlaskClient, repository: object) -> None:
    status, body = post(client, {"repository": repository})
    assert status == 422
    assert "repository" in body["error"]


def test_oversized_body_is_malformed(client: FlaskClient) -> None:
    status, body = post(client, {"repository": "https://github.com/o/" + "r" * MAX_BYTES})
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert str(MAX_BYTES) in body["error"]


@pytest.mark.parametrize("repository", ["file:///etc", "ext::sh -c id", "git@github.com:o/r",
                                        "https://user:pw@gitlab.com/o/r"])
def test_bad_repository_url_is_bad_repo_source(client: FlaskClient, repository: str) -> None:
    status, body = post(client, {"repository": repository})
    assert status == 422
    assert_error_body(body, "badRepoSource")
    assert body["suggestions"]


@pytest.mark.parametrize(("repository", "error"), [
    ("ftp://example.org/a/b", '"ftp://example.org/a/b" is not an allowed repository URL.'),
    ("https://github.com/o", '"https://github.com/o" names no repository.'),
    ("https://github.com/o/r/tree/caf\u00e9",
     '"caf\\u00e9" is not a valid branch, tag or commit.'),
    ("https://gitlab.com/g/p/-/tree/", '"https://gitlab.com/g/p/-/tree/" is not a project URL.'),
])
def test_a_refused_repository_is_quoted_as_a_json_string(client: FlaskClient, repository: str,
                                                         error: str) -> None:
    status, body = post(client, {"repository": repository})
    assert (status, body["type"]) == (422, "badRepoSource")
    assert body["error"] == error


#: URLs Python's own URL parser refuses: a host with a character NFKC makes a separator
#: of (a full-width solidus), and brackets that hold no IPv6 address.
UNSPLITTABLE = ["https://github.com\uff0fo/r", "https://[::1::1]/o/r", "https://[::1/o/r"]


@pytest.mark.parametrize("repository", UNSPLITTABLE)
def test_a_url_python_cannot_split_is_a_bad_repo_source(client: FlaskClient,
                                                        repository: str) -> None:
    status, body = post(client, {"repository": repository})
    assert (status, body["type"]) == (422, "badRepoSource"), body
    assert body["suggestions"]


@pytest.mark.parametrize("repository", UNSPLITTABLE)
def test_a_url_python_cannot_split_filters_the_list_as_given(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch, repository: str) -> None:
    asked: list[dict[str, Any]] = []
    monkeypatch.setattr(api.builds.build_store, "list_builds",
                        lambda **given: asked.append(given) or [])
    response = client.get("/builds/", query_string={"repository": repository})
    assert response.status_code == 200, response.get_json()
    assert asked[0]["repository"] == repository and asked[0]["ref"] is None


def test_a_long_refused_repository_is_quoted_shortened(client: FlaskClient) -> None:
    status, body = post(client, {"repository": "ftp://example.org/" + "a" * 1500})
    assert (status, body["type"]) == (422, "badRepoSource")
    assert body["error"].startswith('"ftp://example.org/aaa') and '..."' in body["error"]
    assert len(body["error"]) < 300


def test_start_records_and_enqueues_the_parsed_repository(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, dict[str, Any], bool]] = []
    enqueued: list[dict[str, Any]] = []
    claimed: list[tuple[str, ...]] = []
    absents: list[bool] = []

    def claim_name(preferred: str, repository: str, ref: str | None, provider: str) -> str:
        claimed.append((preferred, repository, str(ref), provider))
        return preferred

    def create_build(name: str, fields: dict[str, Any], force: bool,
                     absent: bool = False) -> dict[str, Any]:
        created.append((name, fields, force))
        absents.append(absent)
        return {"name": name, **fields, "status": "running", "phase": "queued",
                "start_time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "attempt": 1}

    monkeypatch.setattr(api.builds.name_store, "claim_name", claim_name)
    monkeypatch.setattr(api.builds.build_store, "create_build", create_build)
    monkeypatch.setattr(api.builds, "queue_for",
                        lambda config, name, built_before: ("host.a", "a"))
    monkeypatch.setattr(api.builds, "enqueue_build",
                        lambda celery, config, record, placed: enqueued.append(
                            {**record, "placed": placed}))
    status, body = post(client, {"repository": "https://github.com/Owner/Repo/tree/feat/x",
                                 "force": True})
    assert status == 200
    assert claimed == [("owner-repo-feat-x", "https://github.com/owner/repo", "feat/x",
                        "github")]
    name, fields, force = created[0]
    assert (name, force) == ("owner-repo-feat-x", True)
    assert absents == [False]  # a forced start read no record: create_build reads it
    assert fields["spec"] == "https://github.com/Owner/Repo/tree/feat/x"
    assert fields["ref"] == "feat/x"
    assert fields["provider"] == "github"
    # stored with the host it is sent to, which enqueue_build then does not note again
    assert fields["placed_on"] == "a"
    assert enqueued == [{**create_build(name, fields, force), "placed": ("host.a", "a")}]
    assert body["name"] == "owner-repo-feat-x"
    assert body["display-name"] == "Owner/Repo/tree/feat/x"
    assert body["repository"] == body["repo"] == "https://github.com/owner/repo"
    assert (body["ref"], body["provider"]) == ("feat/x", "github")
    assert body["start-time"].startswith("2024-01-02T03:04:05")
    assert body["attempts"] == body["attempt"] == 1


@pytest.mark.parametrize("error", [common.errors.NoDatabase, common.errors.BadDatabase])
def test_a_start_stored_is_accepted_though_the_store_fails_as_it_is_sent(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
        error: type[common.errors.BinderError]) -> None:
    """The build is stored: an error now would send the client to start it again, into
    ``alreadyBuilding``. The reaper sends what was not marked sent."""
    def create_build(name: str, fields: dict[str, Any], force: bool,
                     absent: bool = False) -> dict[str, Any]:
        return {"name": name, **fields, "status": "running", "phase": "queued",
                "start_time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "attempt": 1}

    def enqueue_build(celery: object, config: object, record: object,
                      placed: object = None) -> bool:
        raise error("The build database (MongoDB) cannot be reached.")
    monkeypatch.setattr(api.builds.name_store, "claim_name", lambda preferred, *rest: preferred)
    monkeypatch.setattr(api.builds, "queue_for", lambda config, name, **given: ("builds", None))
    monkeypatch.setattr(api.builds.build_store, "create_build", create_build)
    monkeypatch.setattr(api.builds, "enqueue_build", enqueue_build)
    status, body = post(client, {"repository": "https://github.com/owner/repo",
                                 "force": True})
    assert (status, body["name"], body["status"]) == (200, "owner-repo", "running")


# queries, answered before the database


def test_a_full_page_links_the_next_relative_to_the_request(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # A TLS proxy gunicorn does not trust reaches the API over http: a link made
    # absolute from the request would name http://, not the URL the client used.
    pages: list[tuple[int, int]] = []

    def list_builds(**given: Any) -> list[dict[str, Any]]:
        pages.append((given["limit"], given["offset"]))
        return [{"name": f"b{n}"} for n in range(given["limit"])]

    monkeypatch.setattr(api.builds.build_store, "list_builds", list_builds)
    response = client.get("/builds/?limit=2&status=failed", headers={
        **AUTH, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "farm.example"})
    assert response.status_code == 200
    link = response.headers["Link"]
    assert link == '<?limit=2&status=failed&offset=2>; rel="next"'
    target = link[1:link.index(">")]
    followed = urljoin("https://farm.example/builds/?limit=2&status=failed", target)
    assert followed == "https://farm.example/builds/?limit=2&status=failed&offset=2"
    assert client.get(urljoin("http://localhost/builds/", target),
                      headers=AUTH).status_code == 200
    assert pages == [(2, 0), (2, 2)]


@pytest.mark.parametrize(("offset", "linked"), [(MAX_OFFSET - 2, True),
                                                 (MAX_OFFSET - 1, False),
                                                 (MAX_OFFSET, False)])
def test_a_full_page_links_no_next_page_past_the_last_offset(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch, offset: int,
        linked: bool) -> None:
    monkeypatch.setattr(api.builds.build_store, "list_builds",
                        lambda **given: [{"name": f"b{n}"} for n in range(given["limit"])])
    response = client.get(f"/builds/?limit=2&offset={offset}", headers=AUTH)
    assert response.status_code == 200
    assert ("Link" in response.headers) is linked
    if linked:  # the link it gives is one the API takes
        target = response.headers["Link"][1:response.headers["Link"].index(">")]
        assert client.get(urljoin("http://localhost/builds/", target),
                          headers=AUTH).status_code == 200


@pytest.mark.parametrize("query", ["limit=0", "limit=lots", "offset=-1", "status=sleeping",
                                   "limit=1&limit=2", "colour=blue",
                                   # int() reads these; the API reads ASCII digits only
                                   "limit=\u0661", "offset=\uff11", "limit=1_0",
                                   "limit=+5", "limit=%205", "offset=1%0A"])
def test_bad_list_query_is_bad_query(client: FlaskClient, query: str) -> None:
    response = client.get(f"/builds/?{query}", headers=AUTH)
    assert response.status_code == 422
    assert_error_body(response.get_json(), "badQuery")


@pytest.mark.parametrize(("query", "field"), [("follow=perhaps", "follow"),
                                               ("after=\u0661", "after")])
def test_bad_log_query_is_bad_query(client: FlaskClient, query: str, field: str) -> None:
    response = client.get(f"/builds/o-r/logs?{query}")
    assert response.status_code == 422
    body = response.get_json()
    assert_error_body(body, "badQuery")
    assert field in body["error"]


@pytest.mark.parametrize("last_event_id", [
    "9" * 5000,  # past Python's longest integer text
    "9" * 30,  # past MongoDB's 8-byte integers
    str(MAX_LINE + 1),
])
def test_a_last_event_id_past_any_line_is_bad_query(client: FlaskClient,
                                                    last_event_id: str) -> None:
    response = client.get("/builds/o-r/logs?follow=1", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 422
    body = response.get_json()
    assert_error_body(body, "badQuery")
    assert "Last-Event-ID" in body["error"]


def test_the_last_line_number_is_a_last_event_id(client: FlaskClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    resumed: list[int] = []

    def follow(name: str, build_id: str, after: int, *args: Any) -> Iterator[Any]:
        resumed.append(after)
        return iter(())

    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda name: {"name": name, "build_id": "b1"})
    monkeypatch.setattr(api.logs, "follow", follow)
    response = client.get("/builds/o-r/logs?follow=1",
                          headers={"Last-Event-ID": str(MAX_LINE)})
    assert response.status_code == 200
    response.get_data()
    assert resumed == [MAX_LINE]


PRUNED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize("query", ["", "?follow=1", "?build-id=b1"])
def test_a_log_retention_deleted_is_gone_not_empty(client: FlaskClient,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   query: str) -> None:
    record = {"name": "o-r", "build_id": "b1", "log_pruned": PRUNED}
    monkeypatch.setattr(api.logs.build_store, "get_build", lambda name, keys=None: record)
    monkeypatch.setattr(api.logs.build_store, "find_attempt", lambda name, build_id: record)
    monkeypatch.setattr(api.logs.log_store, "read_lines", _must_not_run)
    response = client.get(f"/builds/o-r/logs{query}")
    assert response.status_code == 410
    body = response.get_json()
    assert_error_body(body, "logPruned")
    assert body["error"] == ("The log of o-r (build b1) was removed on 2024-05-06: this farm "
                             "keeps the logs of builds for 90 days after they end "
                             "(BINDER_LOG_RETENTION_DAYS).")
    assert any("GET /builds/o-r" in suggestion for suggestion in body["suggestions"])


def test_a_kept_log_is_read_as_text(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda name, keys=None: {"name": name, "build_id": "b1"})
    monkeypatch.setattr(api.logs.log_store, "read_lines",
                        lambda build_id, after, limit=None: [(1, "one"), (2, "two")])
    response = client.get("/builds/o-r/logs")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "one\ntwo\n"


REDRAWN = "#7 1.23 fetch 10%\rfetch 50%\rfetch 100%\r"


def test_a_followed_line_that_redraws_itself_arrives_as_a_terminal_shows_it(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def follow(name: str, build_id: str, after: int, *args: Any) -> Iterator[Any]:
        yield Lines([(1, REDRAWN), (2, "#7 1.24 done")])
        yield Ended({"status": "completed"})

    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda name: {"name": name, "build_id": "b1"})
    monkeypatch.setattr(api.logs, "follow", follow)
    body = client.get("/builds/o-r/logs?follow=1").get_data(as_text=True)
    assert "id: 1\ndata: #7 1.23 fetch 100%\n\n" in body, body
    assert "10%" not in body and "50%" not in body


def test_the_text_log_keeps_the_carriage_returns(client: FlaskClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda name, keys=None: {"name": name, "build_id": "b1"})
    monkeypatch.setattr(api.logs.log_store, "read_lines",
                        lambda build_id, after, limit=None: [(1, REDRAWN)])
    assert client.get("/builds/o-r/logs").get_data(as_text=True) == f"{REDRAWN}\n"


def test_a_long_log_is_read_and_sent_a_part_at_a_time(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    log = [(seq, f"line {seq}") for seq in range(1, 8)]
    reads: list[tuple[int, int | None]] = []

    def read_lines(build_id: str, after: int,
                   limit: int | None = None) -> list[tuple[int, str]]:
        reads.append((after, limit))
        return [line for line in log if line[0] > after][:limit]
    monkeypatch.setattr(api.logs.build_store, "get_build",
                        lambda name, keys=None: {"name": name, "build_id": "b1"})
    monkeypatch.setattr(api.logs.log_store, "read_lines", read_lines)
    monkeypatch.setattr(api.logs.log_store, "READ_LINES", 3)
    response = client.get("/builds/o-r/logs?after=1")
    assert response.get_data(as_text=True) == "".join(f"line {n}\n" for n in range(2, 8))
    assert reads == [(1, 3), (4, 3), (7, 3)]  # never more than a part held at once


def test_the_document_says_a_pruned_log_is_gone() -> None:
    document = build_spec().to_dict()
    answers = document["paths"]["/builds/{name}/logs"]["get"]["responses"]
    assert "BINDER_LOG_RETENTION_DAYS" in answers["410"]["description"]
    assert "logPruned" in document["components"]["schemas"]["Error"]["properties"]["type"]["enum"]
    build = document["components"]["schemas"]["Build"]["properties"]
    assert build["log-pruned"]["format"] == build["image-pruned"]["format"] == "date-time"


# routing and errors


def test_unknown_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.is_json
    assert_error_body(response.get_json(), "doesNotExist")


def test_wrong_method_is_malformed(client: FlaskClient) -> None:
    response = client.put("/builds/repo", headers=AUTH)
    assert response.status_code == 405
    assert_error_body(response.get_json(), "malformedRequest")
    assert "POST" in response.headers["Allow"]


def test_unknown_route_names_the_path_and_where_paths_are_listed(client: FlaskClient) -> None:
    body = client.get("/no/such/route").get_json()
    assert '"/no/such/route"' in body["error"]
    assert any("/openapi.json" in suggestion for suggestion in body["suggestions"])


def test_wrong_method_suggests_the_methods_the_path_answers(client: FlaskClient) -> None:
    body = client.put("/builds/repo", headers=AUTH).get_json()
    assert body["error"].startswith("PUT is not allowed")
    assert any("POST" in suggestion for suggestion in body["suggestions"])


def test_a_long_unknown_path_is_quoted_shortened(client: FlaskClient) -> None:
    body = client.get("/x" * 500).get_json()
    assert len(body["error"]) < 300 and '..."' in body["error"]


def _failing_requests(client: FlaskClient) -> dict[str, Any]:
    """One request of each way the API refuses, by what it tries."""
    return {
        "unknown route": client.get("/no/such/route"),
        "wrong method": client.put("/builds/repo", headers=AUTH),
        "no key": client.post("/builds/repo", json={"repository": "x"}),
        "not JSON": client.post("/builds/repo", data="{", headers=AUTH),
        "unknown field": client.post("/builds/repo", json={"repository": "x", "y": 1},
                                     headers=AUTH),
        "too large": client.post("/builds/repo", data="x" * (MAX_BYTES + 1), headers=AUTH),
        "bad repository": client.post("/builds/repo", json={"repository": "file:///etc"},
                                      headers=AUTH),
        "bad query": client.get("/builds/?limit=0", headers=AUTH),
        "bad header": client.get("/builds/o-r/logs?follow=1",
                                 headers={"Last-Event-ID": "x"}),
        "missing static file": client.get("/docs/static/nothing.js"),
    }


def test_every_refusal_is_json_with_a_message_and_suggestions(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    listed = document["components"]["schemas"]["Error"]["properties"]["type"]["enum"]
    for what, response in _failing_requests(client).items():
        assert 400 <= response.status_code < 500, (what, response.status_code)
        assert response.mimetype == "application/json", what
        body = response.get_json()
        assert set(body) == {"type", "error", "suggestions"}, (what, body)
        assert body["error"].strip(), what
        assert body["suggestions"] and all(s.strip() for s in body["suggestions"]), (what, body)
        assert body["type"] in listed, (what, body["type"])


def test_the_document_lists_every_error_type() -> None:
    listed = build_spec().to_dict()["components"]["schemas"]["Error"]["properties"]["type"]
    assert {"malformedRequest", "badQuery", "badRepoSource", "unauthorized", "noBuildInfo",
            "doesNotExist", "alreadyBuilding", "nameTaken", "noDatabase", "badDatabase",
            "internalError", "httpError"} <= set(listed["enum"])


def test_a_farm_error_without_suggestions_still_gets_one(app: Flask) -> None:
    def fails() -> None:
        raise common.errors.BuildFailure("it broke")

    app.add_url_rule("/fails", view_func=fails)
    response = app.test_client().get("/fails")
    assert response.status_code == 500
    assert response.get_json()["suggestions"]


def test_unexpected_errors_do_not_leak_a_traceback(client: FlaskClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.builds.build_store, "get_build", explode)
    monkeypatch.setattr("api.errors.log.exception", lambda *a, **k: None)
    response = client.get("/builds/o-r")
    assert response.status_code == 500
    body = response.get_json()
    assert_error_body(body, "internalError")
    assert "secret" not in response.get_data(as_text=True)


def test_a_database_error_is_answered_without_the_stores_own_words(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def refused(*args: object, **kwargs: object) -> dict[str, Any]:
        with translate_errors():
            raise OperationFailure("not authorized on farm to execute find", 13,
                                   {"errmsg": "not authorized on farm to execute find"})

    monkeypatch.setattr(api.builds.build_store, "get_build", refused)
    response = client.get("/builds/o-r")
    assert response.status_code == 503
    body = response.get_json()
    assert_error_body(body, "badDatabase")
    assert "not authorized" not in response.get_data(as_text=True)
    assert "not authorized on farm to execute find" in caplog.text


def test_head_on_the_binderhub_build_route_starts_nothing(client: FlaskClient) -> None:
    # The fixture's store and queue fail the test if a request reaches them.
    response = client.head("/build/gh/o/r/HEAD?build_only=true", headers=AUTH)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.get_data() == b""


# documentation


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_openapi_document(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] and document["info"]["version"]
    assert {"/builds/repo", "/builds/{name}", "/templates/{name}", "/health/"} <= \
        set(document["paths"])
    assert "post" in document["paths"]["/builds/repo"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":
                assert operation["responses"], (path, method)
    for ref in _refs(document):
        assert _resolve(document, ref) is not None
    schema = document["components"]["schemas"]["BuildRequest"]
    assert schema["required"] == ["repository"]


def test_openapi_document_validates_against_the_openapi_3_0_schema(client: FlaskClient) -> None:
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    document = client.get("/openapi.json").get_json()
    definitions.OPENAPI_30_VALIDATOR.validate(document)


def test_docs_page_is_html(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "/openapi.json" in response.get_data(as_text=True)


def test_app_factory_sets_the_request_limit(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_BYTES
    assert app.config["BINDER"].api_key == KEY


# request bodies, the protocol's way


@pytest.mark.parametrize("data", [
    '{"repository": "https://github.com/o/r", "repository": "https://github.com/o/s"}',
    '{"repository": "https://github.com/o/r", "force": true, "force": false}',
])
def test_a_repeated_key_is_malformed_naming_it(client: FlaskClient, data: str) -> None:
    status, body = post(client, data)
    assert status == 422
    assert_error_body(body, "malformedRequest")
    key = "repository" if data.count("repository") == 2 else "force"
    assert f'"{key}" more than once' in body["error"]


def test_a_long_repeated_key_is_quoted_shortened(client: FlaskClient) -> None:
    key = "k\n" * 200
    status, body = post(client, f'{{{json.dumps(key)}: 1, {json.dumps(key)}: 2}}')
    assert status == 422
    assert_error_body(body, "malformedRequest")
    assert "\n" not in body["error"] and len(body["error"]) < 200


def test_the_body_is_read_whatever_its_content_type(client: FlaskClient) -> None:
    response = client.post("/builds/repo", data='{"repository": "file:///etc"}',
                           headers=AUTH, content_type="text/plain")
    assert response.status_code == 422
    assert_error_body(response.get_json(), "badRepoSource")


# errors raised through flask-smorest keep the protocol's shape


def test_smorest_abort_answers_the_protocol_shape(app: Flask) -> None:
    def conflict() -> None:
        flask_smorest.abort(409, message="taken")

    app.add_url_rule("/conflict", view_func=conflict)
    response = app.test_client().get("/conflict")
    assert response.status_code == 409
    assert_error_body(response.get_json(), "httpError")
    assert response.get_json()["error"] == "taken"


# documentation, generated from the views


def test_every_operation_has_a_unique_id(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    ids = [operation["operationId"] for item in document["paths"].values()
           for method, operation in item.items() if method != "parameters"]
    assert len(ids) == len(set(ids)) >= 10
    assert document["paths"]["/builds/{name}"]["get"]["operationId"] == "builds.status"


def test_the_document_states_auth_and_errors_as_the_views_do(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    assert paths["/builds/repo"]["post"]["security"] == [{"apiKey": []}]
    assert "403" in paths["/builds/repo"]["post"]["responses"]
    assert paths["/builds/{name}"]["get"]["security"] == [{}, {"apiKey": []}]  # public read
    assert paths["/health/"]["get"]["security"] == []
    assert "422" in paths["/builds/"]["get"]["responses"]
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"type", "error", "suggestions"}
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "Authorization"


def test_the_document_is_the_one_the_app_serves(client: FlaskClient) -> None:
    assert client.get("/openapi.json").get_json() == build_spec().to_dict()


def test_docs_page_may_load_only_the_apis_own_files(client: FlaskClient) -> None:
    policy = client.get("/docs").headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "http" not in policy
    assert "Content-Security-Policy" not in client.get("/openapi.json").headers


def test_docs_page_uses_swagger_ui_served_by_the_api(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts and all(src.startswith("docs/static/") for src in scripts), scripts
    for src in scripts:
        response = client.get(f"/{src}")
        assert response.status_code == 200, src
        assert "javascript" in response.mimetype
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize(("path", "script", "part"), [("/", "index.js", 'id="start-form"'),
                                                     ("/build/a-build", "build.js",
                                                      'data-name="a-build"')])
def test_the_pages_are_template_files_with_their_own_files(client: FlaskClient, path: str,
                                                           script: str, part: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert part in page and "{%" not in page and "{{" not in page
    files = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert f"/static/{script}" in files and "/static/page.css" in files, files
    for url in files:
        served = client.get(url)
        assert served.status_code == 200, url
        assert served.mimetype in ("text/javascript", "application/javascript", "text/css"), url
    assert "http://" not in page and "https://" not in page.replace("https://github.com/OWNER",
                                                                    "")


def test_the_pages_scripts_import_only_files_that_exist() -> None:
    static = Path(api.__file__).parent / "static"
    for script in static.glob("*.js"):
        for imported in re.findall(r"from '\./([^']+)'", script.read_text()):
            assert (static / imported).is_file(), f"{script.name} imports {imported}"


def test_the_pages_say_what_needs_a_key_as_the_document_declares(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    note = re.search(r'<p class="access" id="access">(.*?)</p>', page, re.S)
    assert note, page[:500]
    keyed, _, public = note.group(1).partition("Open to all:")
    assert "starting and cancelling builds" in keyed and "workers and queues" in keyed
    assert "the farm&#39;s health" in public and "a build&#39;s status" in public
    assert "the list of builds" in public  # BINDER_PUBLIC_READS is on by default


def test_an_optional_key_is_needed_only_without_public_reads() -> None:
    keyed, optional = {"security": [{"apiKey": []}]}, {"security": [{}, {"apiKey": []}]}
    assert api.web.needs_key(keyed, public_reads=True)
    assert not api.web.needs_key(optional, public_reads=True)
    assert api.web.needs_key(optional, public_reads=False)
    assert not api.web.needs_key({"security": []}, public_reads=False)
    paths = {path: {"get": optional, "post": keyed, "delete": keyed}
             for operations in api.web.PAGE_ACTIONS.values() for _, path in operations}
    assert api.web.page_access(paths, public_reads=True)["needs_key"] == [
        "starting and cancelling builds"]
    assert api.web.page_access(paths, public_reads=False)["public"] == []


@pytest.mark.parametrize("name", ["Not%20A%20Name", "%22%3E%3Cscript%3Ealert(1)", "x" * 129])
def test_a_build_page_for_a_name_no_build_can_have_is_not_found(client: FlaskClient,
                                                                name: str) -> None:
    response = client.get(f"/build/{name}")
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json()["type"] == "noBuildInfo"


def test_views_make_no_schema_per_request(client: FlaskClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    original = marshmallow.Schema.__init__

    def counting_init(self: marshmallow.Schema, *args: Any, **kwargs: Any) -> None:
        made.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(marshmallow.Schema, "__init__", counting_init)
    for _ in range(3):
        assert client.get("/builds/?limit=0", headers=AUTH).status_code == 422
        assert client.get("/builds/o-r/logs?follow=perhaps").status_code == 422
        assert post(client, {"repository": "file:///etc"})[0] == 422
    assert made == []


# headers every answer carries


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/"),                     # an HTML page
    ("get", "/openapi.json"),         # JSON
    ("get", "/static/page.css"),      # a static file
    ("post", "/builds/repo"),         # an error: no key
    ("get", "/no/such/path"),         # an error: not found
])
def test_every_answer_forbids_content_sniffing(client: FlaskClient, method: str,
                                               path: str) -> None:
    # Logs are repository-controlled text: a browser must not read them as HTML.
    response = getattr(client, method)(path)
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.status


def test_the_status_filter_says_running_takes_in_queued_and_cancelling(
        client: FlaskClient) -> None:
    """The list shows builds queued and cancelling; the farm keeps them running."""
    page = client.get("/").get_data(as_text=True)
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', page)
    assert ("running", "running (with queued and cancelling)") in options, options
    assert ("failed", "failed") in options, options
