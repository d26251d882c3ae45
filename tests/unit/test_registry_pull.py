"""Pulling into an engine reports the engine's own reason for a failed pull."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from workers.registry import pull


class FakeApi:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def pull(self, repository: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append((repository, kwargs))
        return iter(self.events)


class FakeClient:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.api = FakeApi(events)


def client(events: list[dict[str, Any]]) -> docker.DockerClient:
    return FakeClient(events)  # type: ignore[return-value]


def test_an_error_in_the_stream_is_raised_with_the_engines_words() -> None:
    fake = client([{"status": "Pulling fs layer", "id": "abc"},
                   {"error": "write /var/lib/docker/tmp/x: no space left on device"}])
    with pytest.raises(docker.errors.APIError, match="no space left on device") as raised:
        pull(fake, "127.0.0.1:5000/binder-base:jupyterlab4")
    assert "127.0.0.1:5000/binder-base:jupyterlab4" in str(raised.value)


def test_a_clean_stream_pulls_the_tag_it_was_given_with_the_login() -> None:
    fake = client([{"status": "Pull complete", "id": "abc"},
                   {"status": "Status: Downloaded newer image"}])
    pull(fake, "127.0.0.1:5000/binder-base:jupyterlab4", {"username": "u", "password": "p"})
    pull(fake, "127.0.0.1:5000/plain")
    api = fake.api  # type: ignore[attr-defined]
    assert [(repository, kwargs["tag"]) for repository, kwargs in api.calls] == [
        ("127.0.0.1:5000/binder-base", "jupyterlab4"), ("127.0.0.1:5000/plain", "latest")]
    assert api.calls[0][1]["auth_config"] == {"username": "u", "password": "p"}
    assert all(kwargs["stream"] and kwargs["decode"] for _, kwargs in api.calls)
