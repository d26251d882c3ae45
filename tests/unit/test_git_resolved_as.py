"""A Git build fetches the commit the API resolved, with its host's address checked again."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import load_config
from common.errors import BuildFailure
from workers.providers import git, parse_spec, provider_for

CONFIG = load_config(environ={})
COMMIT = "c" * 40


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs whose address was checked (a stubbed check: nothing is resolved)."""
    checked: list[str] = []

    def checked_target(url: str, config: Any) -> str:
        checked.append(url)
        return f"target of {url}"

    monkeypatch.setattr(git, "checked_target", checked_target)
    return checked


def test_a_known_commit_is_fetched_as_it_is_after_the_address_check(
        checks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "resolve_ref", lambda *args: pytest.fail("no ls-remote"))
    spec = parse_spec("https://github.com/O/R", CONFIG)
    resolved = provider_for(spec, CONFIG).resolved_as(spec, COMMIT)
    assert resolved is not None
    assert (resolved.provider, resolved.content_id, resolved.commit) == ("github", COMMIT, COMMIT)
    assert resolved.detail["target"] == "target of https://github.com/O/R.git"
    assert checks == ["https://github.com/O/R.git"]
    assert "resolved when the build was requested" in resolved.description


@pytest.mark.parametrize("content_id", ["main", "c" * 39, "C" * 40, "--upload-pack=x", ""])
def test_anything_but_a_full_commit_sha_is_resolved_again(checks: list[str],
                                                          content_id: str) -> None:
    spec = parse_spec("https://github.com/O/R", CONFIG)
    assert provider_for(spec, CONFIG).resolved_as(spec, content_id) is None
    assert checks == []


def test_a_refused_address_refuses_the_known_commit_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, config: Any) -> None:
        raise BuildFailure("The repository's host is on a private network.")

    monkeypatch.setattr(git, "checked_target", refuse)
    spec = parse_spec("https://github.com/O/R", CONFIG)
    with pytest.raises(BuildFailure, match="private network"):
        provider_for(spec, CONFIG).resolved_as(spec, COMMIT)


def test_archive_providers_always_resolve() -> None:
    spec = parse_spec("https://zenodo.org/records/3232985", CONFIG)
    assert provider_for(spec, CONFIG).resolved_as(spec, COMMIT) is None
