"""CORS (``BINDER_CORS_ALLOW_ORIGIN``): off by default; preflights answered when on."""

from __future__ import annotations

import flask
import pytest

from api.cors import allowed_origin, register_cors

ORIGIN = "https://launcher.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
             "Access-Control-Request-Headers": "authorization"}


def app_with(setting: str) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/build/<path:spec>")
    def build(spec: str) -> str:
        return spec

    register_cors(app, setting)
    return app


@pytest.mark.parametrize("setting, origin, allowed", [
    ("", ORIGIN, None),
    ("*", ORIGIN, "*"),
    ("*", None, "*"),
    (f"https://other.example, {ORIGIN}/", ORIGIN, ORIGIN),
    ("https://other.example", ORIGIN, None),
    (ORIGIN, None, None),
])
def test_allowed_origin(setting: str, origin: str | None, allowed: str | None) -> None:
    assert allowed_origin(setting, origin) == allowed


def test_off_by_default_adds_nothing() -> None:
    client = app_with("").test_client()
    response = client.options("/build/gh/a/b/HEAD", headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in client.get("/build/x", headers=PREFLIGHT).headers


def test_preflight_allows_the_authorization_header() -> None:
    client = app_with(ORIGIN).test_client()
    response = client.options("/build/gh/a/b/HEAD", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "Origin" in response.headers["Vary"]
    answer = client.get("/build/gh/a/b/HEAD", headers={"Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Headers" not in answer.headers


def test_other_origins_get_no_grant() -> None:
    client = app_with(ORIGIN).test_client()
    response = client.options("/build/x", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_page_of_another_origin_may_read_retry_after_and_the_next_page() -> None:
    client = app_with(ORIGIN).test_client()
    answer = client.get("/build/x", headers={"Origin": ORIGIN})
    exposed = {name.strip().lower()
               for name in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "link"} <= exposed


@pytest.mark.parametrize("origin", [None, "https://evil.example"])
def test_an_answer_without_a_grant_still_varies_by_origin(origin: str | None) -> None:
    # else a cache could hand the allowed origin an answer that grants it nothing
    client = app_with(ORIGIN).test_client()
    answer = client.get("/build/x", headers={"Origin": origin} if origin else {})
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Origin" in answer.headers.get("Vary", "")
