"""The command line's log follower resumes after a busy API (503) as after a dropped link."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests

from workers.cli.farm_client import ApiError, FarmClient


def sse(body: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.raw = io.BytesIO(body.encode())
    return response


def test_a_busy_api_is_asked_again_and_the_log_resumes_where_it_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Any] = [
        sse("id: 1\ndata: one\n\n"),  # then the link drops
        ApiError("This API process is following 14 build logs.", type="tooManyFollowers",
                 status=503),
        sse("id: 2\ndata: two\n\nevent: end\ndata: completed\n\n"),
    ]
    resumed_after: list[str | None] = []

    def request(method: str, path: str, headers: dict[str, str] | None = None,
                **kwargs: Any) -> requests.Response:
        resumed_after.append((headers or {}).get("Last-Event-ID"))
        answer = answers.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    client = FarmClient("http://127.0.0.1:9")
    monkeypatch.setattr(client, "_request", request)
    monkeypatch.setattr(client._closing, "wait", lambda seconds: False)
    events = [(event.kind, event.text) for event in client.follow_log("o-r")]
    assert events == [("line", "one"), ("line", "two"), ("end", "completed")]
    assert resumed_after == [None, "1", "1"]


def test_other_refusals_end_the_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    def request(*args: Any, **kwargs: Any) -> requests.Response:
        raise ApiError("No build named o-r.", status=404)

    client = FarmClient("http://127.0.0.1:9")
    monkeypatch.setattr(client, "_request", request)
    with pytest.raises(ApiError, match="No build named"):
        list(client.follow_log("o-r"))
