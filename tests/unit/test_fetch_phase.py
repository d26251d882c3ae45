"""The fetch and build phases read only what belongs to the build's own repository and ref."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from common.config import load_config
from common.errors import BuildFailure
from common.models import FailureCause
from workers.phases import build, fetch
from workers.providers import Resolved

CONFIG = load_config(environ={})
RECORD = {"name": "o-r", "repository": "https://github.com/o/r", "ref": None,
          "spec": "https://github.com/O/R", "force": False}
IMAGE = "127.0.0.1:5000/binder-o-r:" + "a" * 40


def run_of(record: dict[str, Any]) -> Any:
    said: list[str] = []
    return SimpleNamespace(record=record, config=CONFIG, say=said.append, said=said,
                           image=record.get("image_name"))


def test_the_recorded_spec_is_understood_again() -> None:
    spec = fetch.recorded_spec(RECORD, CONFIG)
    assert (spec.provider, spec.repository, spec.locator["clone_url"]) == (
        "github", "https://github.com/o/r", "https://github.com/O/R.git")


def test_a_spec_that_reads_differently_now_fails_the_build() -> None:
    moved = CONFIG.replace(github_url="https://github.example")
    with pytest.raises(BuildFailure, match="provider settings changed") as changed:
        fetch.recorded_spec(RECORD, moved)
    assert changed.value.cause is FailureCause.FARM  # the farm changed, not the repository
    with pytest.raises(BuildFailure, match="no longer builds from") as refused:
        fetch.recorded_spec({**RECORD, "spec": "file:///etc"}, CONFIG)
    assert refused.value.cause is FailureCause.REPOSITORY


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The template stored under the build's name (tests fill it in)."""
    template: dict[str, Any] = {}
    monkeypatch.setattr(fetch, "manifest_exists", lambda config, image: True)
    monkeypatch.setattr(fetch.template_store, "find_template", lambda name: template or None)
    monkeypatch.setattr(build.template_store, "find_template", lambda name: template or None)
    return template


def cached(record: dict[str, Any], image: str) -> Any:
    """The cache check of the fetch phase, on the template stored under the name."""
    return fetch.cached_template(run_of(record), image,
                                 fetch.template_store.find_template(record["name"]))


def test_a_cached_template_of_the_same_repository_is_used(stored: dict[str, Any]) -> None:
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    assert cached(RECORD, IMAGE) == stored


@pytest.mark.parametrize("other", [{"repository": "https://evil.example/o/r"},
                                   {"ref": "main"}, {"repository": None}])
def test_a_template_of_another_repository_or_ref_is_never_a_cache_hit(
        stored: dict[str, Any], other: dict[str, Any]) -> None:
    stored.update({"name": "o-r", "image_name": IMAGE, "repository": RECORD["repository"],
                   "ref": None, **other})
    assert cached(RECORD, IMAGE) is None


def test_only_the_same_repositorys_image_is_layer_cache(stored: dict[str, Any]) -> None:
    newer = {**RECORD, "image_name": IMAGE[:-1] + "b"}
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    assert build.previous_image(run_of(newer)) == IMAGE
    stored.update(repository="https://evil.example/o/r")
    assert build.previous_image(run_of(newer)) is None


def test_the_cache_check_asks_the_registry_only_for_the_image_a_template_points_at(
        stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(fetch, "manifest_exists",
                        lambda config, image: asked.append(image) or True)
    assert cached(RECORD, IMAGE) is None  # nothing built yet
    stored.update(name="o-r", image_name=IMAGE[:-1] + "b", repository=RECORD["repository"],
                  ref=None)
    assert cached(RECORD, IMAGE) is None  # an older commit's image
    assert asked == []
    stored.update(image_name=IMAGE)
    assert cached(RECORD, IMAGE) == stored
    assert asked == [IMAGE]


class Provider:
    """Records how the fetch phase came to its content."""

    def __init__(self, known: bool = True) -> None:
        self.known = known
        self.calls: list[tuple[str, str | None]] = []

    def resolve(self, spec: Any, limits: Any) -> str:
        self.calls.append(("resolve", None))
        return "asked the host"

    def resolved_as(self, spec: Any, content_id: str) -> str | None:
        self.calls.append(("resolved_as", content_id))
        return f"known {content_id}" if self.known else None


def test_the_fetch_takes_the_commit_the_api_resolved_for_this_start() -> None:
    spec, provider = fetch.recorded_spec(RECORD, CONFIG), Provider()
    known = {**RECORD, "resolved_commit": "c" * 40}
    assert fetch.resolve(run_of(known), spec, provider, None) == "known " + "c" * 40  # type: ignore[arg-type]
    assert provider.calls == [("resolved_as", "c" * 40)]


def test_without_a_known_commit_the_fetch_resolves_the_ref_itself() -> None:
    spec = fetch.recorded_spec(RECORD, CONFIG)
    provider = Provider()
    assert fetch.resolve(run_of(RECORD), spec, provider, None) == "asked the host"  # type: ignore[arg-type]
    assert provider.calls == [("resolve", None)]
    # A provider that cannot use it (archives) resolves too.
    unknowing = Provider(known=False)
    known = {**RECORD, "resolved_commit": "c" * 40}
    assert fetch.resolve(run_of(known), spec, unknowing, None) == "asked the host"  # type: ignore[arg-type]
    assert unknowing.calls == [("resolved_as", "c" * 40), ("resolve", None)]


class Fetching:
    """A provider whose content is Git (``commit``) or an archive, and its calls."""

    def __init__(self, commit: str | None, fail: BuildFailure | None = None) -> None:
        self.commit, self.fail = commit, fail
        self.fetched = 0
        self.started = threading.Event()

    def resolve(self, spec: Any, limits: Any) -> Resolved:
        return Resolved(spec=spec, provider="github", content_id=self.commit or "d" * 64,
                        commit=self.commit, description="resolved")

    def fetch(self, resolved: Any, dest: Any, limits: Any, say: Any) -> None:
        self.fetched += 1
        self.started.set()
        if self.fail:
            raise self.fail


@pytest.fixture
def fetching(monkeypatch: pytest.MonkeyPatch, stored: dict[str, Any]) -> dict[str, Any]:
    """The fetch phase's run with a stub provider; the test sets ``provider``."""
    state: dict[str, Any] = {}
    monkeypatch.setattr(fetch, "check_disk", lambda phase: None)
    monkeypatch.setattr(fetch, "directory_bytes", lambda path: 0)
    monkeypatch.setattr(fetch, "provider_for", lambda spec, config: state["provider"])
    monkeypatch.setattr(fetch.template_store, "save_template", lambda template: None)
    monkeypatch.setattr(fetch.build_store, "earlier_maker",
                        lambda name, image: state.get("maker"))

    def image_for(config: Any, name: str, content_id: str) -> str:
        # Asked while the content downloads, the registry sees the fetch start.
        state["overlapped"] = state["provider"].started.wait(1)
        return IMAGE

    monkeypatch.setattr(fetch, "image_for", image_for)
    return state


def fetch_run(record: dict[str, Any]) -> Any:
    phase = run_of(record)
    phase.guard = SimpleNamespace(raise_if_stopped=lambda: None, reason=None)
    phase.checkout = None
    return fetch.run(phase)


def test_a_commit_is_fetched_while_the_registry_is_asked_for_its_image(
        fetching: dict[str, Any]) -> None:
    fetching["provider"] = provider = Fetching("c" * 40)
    result = fetch_run(RECORD)
    assert provider.fetched == 1 and fetching["overlapped"]
    assert result.changes["cached"] is False and result.changes["image_name"] == IMAGE


def test_a_built_commit_is_a_cache_hit_even_when_its_fetch_fails(
        fetching: dict[str, Any], stored: dict[str, Any]) -> None:
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    fetching["provider"] = Fetching("c" * 40, fail=BuildFailure("host down"))
    result = fetch_run(RECORD)
    assert result.complete and result.changes["cached"] is True
    fetching["provider"] = Fetching("c" * 40, fail=BuildFailure("host down"))
    stored.clear()
    with pytest.raises(BuildFailure, match="host down"):
        fetch_run(RECORD)


def test_a_cache_hit_names_the_build_that_made_the_image(
        fetching: dict[str, Any], stored: dict[str, Any]) -> None:
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    fetching["provider"] = Fetching("c" * 40)
    fetching["maker"] = "b1"
    phase = run_of(RECORD)
    phase.guard = SimpleNamespace(raise_if_stopped=lambda: None, reason=None)
    phase.checkout = None
    result = fetch.run(phase)
    assert result.complete and result.changes["built_by"] == "b1"
    assert f"{IMAGE} is already built (build b1); reusing it" in phase.said
    # No record says which build made it: the hit says nothing of one.
    fetching["maker"] = None
    result = fetch_run(RECORD)
    assert result.complete and "built_by" not in result.changes


def test_a_built_archive_is_not_downloaded(fetching: dict[str, Any],
                                           stored: dict[str, Any]) -> None:
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    fetching["provider"] = provider = Fetching(None)
    assert fetch_run(RECORD).changes["cached"] is True
    assert provider.fetched == 0 and not fetching["overlapped"]
    stored.clear()
    assert fetch_run(RECORD).changes["cached"] is False
    assert provider.fetched == 1


def test_a_forced_build_is_no_cache_hit(fetching: dict[str, Any],
                                        stored: dict[str, Any]) -> None:
    stored.update(name="o-r", image_name=IMAGE, repository=RECORD["repository"], ref=None)
    fetching["provider"] = Fetching("c" * 40)
    result = fetch_run({**RECORD, "force": True})
    assert not result.complete and result.changes["cached"] is False


def test_the_template_is_read_once_for_the_cache_check_and_the_layer_cache(
        fetching: dict[str, Any], stored: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The build phase takes the image whose layers it may reuse from what fetch read."""
    older = IMAGE[:-1] + "b"
    stored.update(name="o-r", image_name=older, repository=RECORD["repository"], ref=None)
    reads: list[str] = []
    monkeypatch.setattr(fetch.template_store, "find_template",
                        lambda name: reads.append(name) or stored)
    monkeypatch.setattr(build.template_store, "find_template",
                        lambda name: reads.append(name) or stored)
    fetching["provider"] = Fetching("c" * 40)
    result = fetch_run(RECORD)
    assert build.previous_image(run_of({**RECORD, **result.changes})) == older
    assert reads == ["o-r"]
    # Another repository's template: fetch says so, and the build reuses nothing.
    stored.update(repository="https://evil.example/o/r")
    result = fetch_run(RECORD)
    assert build.previous_image(run_of({**RECORD, **result.changes})) is None
    # A forced build's fetch reads no template: the build phase reads it.
    stored.update(repository=RECORD["repository"])
    reads.clear()
    result = fetch_run({**RECORD, "force": True})
    assert build.previous_image(run_of({**RECORD, "force": True, **result.changes})) == older
    assert reads == ["o-r"]
