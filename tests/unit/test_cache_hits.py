"""The API answers a start of content already built: when, and what it stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import api.builds
import common.config
from api import cache_hits, create_app
from common import build_store
from common.config import load_config
from common.errors import AlreadyBuilding, BuildFailure
from workers.providers import Resolved, Spec

CONFIG = load_config(environ={})
REPOSITORY = "https://github.com/o/r"
FIELDS = {"display_name": "O/R", "provider": "github", "repository": REPOSITORY, "ref": None,
          "spec": "https://github.com/O/R", "force": False}
COMMIT = "c" * 40
IMAGE = f"127.0.0.1:5000/binder-o-r:{COMMIT}-0123456789ab"


@pytest.fixture
def farm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A farm where o-r was built at COMMIT into IMAGE; tests change what they need."""
    state: dict[str, Any] = {
        "resolved": COMMIT, "resolve_error": None, "pushed": True, "timeouts": [],
        "built": {"build_id": "b1", "name": "o-r", "repository": REPOSITORY, "ref": None,
                  "status": "completed", "image_name": IMAGE, "config": "requirements.txt",
                  "buildpack": "requirements", "config_files": ["requirements.txt"]},
        "template": {"name": "o-r", "image_name": IMAGE, "repository": REPOSITORY, "ref": None},
    }

    class Provider:
        def resolve(self, spec: Spec, limits: Any) -> Resolved:
            state["timeouts"].append(limits.timeout)
            if state["resolve_error"]:
                raise state["resolve_error"]
            return Resolved(spec=spec, provider="github", content_id=state["resolved"],
                            commit=state["resolved"], description=f"HEAD is {state['resolved']}")

    def completed_with_image(image: str) -> dict[str, Any] | None:
        built = state["built"]
        return built if built and built["image_name"] == image else None

    monkeypatch.setattr(cache_hits, "provider_for", lambda spec, config: Provider())
    monkeypatch.setattr(cache_hits, "image_for",
                        lambda config, name, content, base: f"127.0.0.1:5000/binder-{name}:"
                                                            f"{content}-0123456789ab")
    state["base_error"] = None

    def base_digest(config: Any) -> str:
        if state["base_error"]:
            raise state["base_error"]
        return "sha256:base"

    monkeypatch.setattr(cache_hits, "base_digest", base_digest)
    monkeypatch.setattr(cache_hits.build_store, "completed_with_image", completed_with_image)
    monkeypatch.setattr(cache_hits.template_store, "find_template",
                        lambda name: state["template"])
    state["registry_asked"] = 0

    def manifest_exists(config: Any, image: str) -> bool:
        state["registry_asked"] += 1
        return bool(state["pushed"])

    monkeypatch.setattr(cache_hits, "manifest_exists", manifest_exists)
    monkeypatch.setattr(cache_hits, "_pushed", {})
    return state


def test_a_built_commit_is_answered_completed_and_cached(farm: dict[str, Any]) -> None:
    hit = cache_hits.find_hit(CONFIG, "o-r", FIELDS)
    assert hit is not None
    assert hit.fields["status"] == "completed" and hit.fields["phase"] == "finished"
    assert hit.fields["cached"] is True
    assert hit.fields["image_name"] == hit.fields["image_source"] == IMAGE
    assert (hit.fields["commit"], hit.fields["content_id"]) == (COMMIT, COMMIT)
    assert hit.fields["config"] == "requirements.txt"
    assert hit.fields["config_files"] == ["requirements.txt"]
    assert any(IMAGE in line and "b1" in line for line in hit.log_lines)
    # The record spans the lookup, and keeps those times when it is stored.
    assert hit.fields["start_time"] <= hit.fields["end_time"]
    stored = build_store.new_record("o-r", hit.fields)
    assert stored["start_time"] <= stored["end_time"]
    assert farm["timeouts"] == [CONFIG.cache_resolve_timeout] and CONFIG.cache_resolve_timeout <= 1


def test_a_hit_of_a_hit_names_the_build_that_made_the_image(farm: dict[str, Any]) -> None:
    """b1 built the image, hit h1 reused it: the next hit names b1, not h1."""
    first = cache_hits.find_hit(CONFIG, "o-r", FIELDS)
    assert first is not None and first.fields["built_by"] == "b1"
    farm["built"] = {**farm["built"], **first.fields, "build_id": "h1"}
    second = cache_hits.find_hit(CONFIG, "o-r", FIELDS)
    assert second is not None and second.fields["built_by"] == "b1"
    assert second.log_lines[-1] == f"{IMAGE} is already built (build b1); reusing it"


@pytest.mark.parametrize("change", [
    {"resolved": "d" * 40},  # the ref moved on
    {"built": None},  # no completed build made the image
    {"pushed": False},  # the registry lost it
    {"template": None},
    {"template": {"name": "o-r", "image_name": "other:tag", "repository": REPOSITORY}},
    {"template": {"name": "o-r", "image_name": IMAGE, "repository": "https://evil.example/r"}},
    {"built": {"build_id": "b2", "repository": REPOSITORY, "ref": "main",
               "image_name": IMAGE, "status": "completed"}},
    {"resolve_error": BuildFailure("Resolving the ref took longer than 1 s and was stopped.")},
    {"resolve_error": OSError("connection refused")},
])
def test_anything_else_is_left_to_the_build(farm: dict[str, Any], change: dict[str, Any]) -> None:
    farm.update(change)
    assert cache_hits.find_hit(CONFIG, "o-r", FIELDS) is None


def test_a_lookup_past_the_bound_is_left_to_the_build(farm: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that takes long to resolve is no timeout of the resolve's own: the
    whole lookup is bounded, and the start goes on without waiting for it."""
    release, ended = threading.Event(), threading.Event()
    slow = cache_hits._find_hit

    def stuck_resolver(*args: Any) -> Any:
        try:
            release.wait(30)
            return slow(*args)
        finally:
            ended.set()

    monkeypatch.setattr(cache_hits, "_find_hit", stuck_resolver)
    try:
        assert cache_hits.find_hit(CONFIG.replace(cache_resolve_timeout=0.2), "o-r",
                                   FIELDS) is None
    finally:
        release.set()
        # The abandoned lookup ends on its own; let it end here, not in the next test
        # (it would note the image as pushed in that test's clock).
        assert ended.wait(10)
    # The same lookup, let through, would have been a hit.
    assert cache_hits.find_hit(CONFIG, "o-r", FIELDS) is not None


def test_the_registry_is_asked_once_for_a_burst_of_hits(farm: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(cache_hits, "_clock", lambda: clock[0])
    for _ in range(3):
        assert cache_hits.find_hit(CONFIG, "o-r", FIELDS) is not None
    assert farm["registry_asked"] == 1
    clock[0] += cache_hits.PUSHED_SECONDS + 1
    farm["pushed"] = False  # gone from the registry: asked again, and no longer a hit
    assert cache_hits.find_hit(CONFIG, "o-r", FIELDS) is None
    assert farm["registry_asked"] == 2


def test_force_or_a_zero_timeout_never_resolves(farm: dict[str, Any]) -> None:
    assert cache_hits.find_hit(CONFIG, "o-r", {**FIELDS, "force": True}) is None
    assert cache_hits.find_hit(CONFIG.replace(cache_resolve_timeout=0), "o-r", FIELDS) is None
    assert farm["timeouts"] == []


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    monkeypatch.setattr(common.config, "_current", common.config._current)
    monkeypatch.setattr(api.builds.build_store, "check_startable", lambda name, fields: None)
    app = create_app(load_config(environ={"BINDER_API_KEY": "k",
                                          "BINDER_DATA_DIR": str(tmp_path)}))
    app.config["TESTING"] = True
    yield app.test_client()


def test_a_start_of_a_running_build_is_refused_before_its_ref_is_resolved(
        client: FlaskClient, farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def running(name: str, fields: dict[str, Any]) -> None:
        raise AlreadyBuilding(f"Already building the image {name} (phase building).")

    monkeypatch.setattr(api.builds.name_store, "claim_name", lambda *args: "o-r")
    monkeypatch.setattr(api.builds.build_store, "check_startable", running)
    response = client.post("/builds/repo", json={"repository": "https://github.com/O/R"},
                           headers={"Authorization": "k"})
    assert response.status_code == 409, response.text
    assert farm["timeouts"] == []  # the Git host was not asked


def test_a_cache_hit_start_stores_its_log_then_the_record_and_sends_no_task(
        client: FlaskClient, farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, Any]] = []

    def create_build(name: str, fields: dict[str, Any], force: bool = False,
                     build_id: str | None = None) -> dict[str, Any]:
        writes.append(("record", (name, build_id, force)))
        return {"name": name, "build_id": build_id, **fields, "attempt": 1,
                "start_time": datetime(2024, 1, 2, tzinfo=UTC)}

    def enqueue(*args: object) -> None:
        raise AssertionError("a cache hit sends no task")

    monkeypatch.setattr(api.builds.name_store, "claim_name", lambda *args: "o-r")
    monkeypatch.setattr(api.builds, "enqueue_build", enqueue)
    monkeypatch.setattr(cache_hits.build_store, "create_build", create_build)
    monkeypatch.setattr(cache_hits.log_store, "store_lines",
                        lambda build_id, lines: writes.append(("log", build_id)))
    response = client.post("/builds/repo", json={"repository": "https://github.com/O/R"},
                           headers={"Authorization": "k"})
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["status"] == "completed" and body["cached"] is True
    assert body["image-name"] == IMAGE
    (log_kind, log_id), (record_kind, (name, record_id, force)) = writes
    assert (log_kind, record_kind, name, force) == ("log", "record", "o-r", False)
    assert log_id == record_id == body["build-id"]


def test_a_start_that_is_no_hit_hands_on_the_commit_its_ref_resolved_to(
        farm: dict[str, Any]) -> None:
    farm.update(resolved="d" * 40)  # the ref moved on: a new commit to build
    lookup = cache_hits.look_up(CONFIG, "o-r", FIELDS)
    assert lookup.hit is None and lookup.resolved_commit == "d" * 40
    farm.update(resolved=COMMIT, pushed=False)
    assert cache_hits.look_up(CONFIG, "o-r", FIELDS).resolved_commit == COMMIT


def test_nothing_is_handed_on_that_was_not_resolved(farm: dict[str, Any]) -> None:
    farm.update(resolve_error=OSError("connection refused"))
    assert cache_hits.look_up(CONFIG, "o-r", FIELDS) == cache_hits.Lookup()
    farm.update(resolve_error=None)
    assert cache_hits.look_up(CONFIG, "o-r", {**FIELDS, "force": True}) == cache_hits.Lookup()


def test_a_start_that_is_no_hit_stores_the_resolved_commit_with_the_build(
        client: FlaskClient, farm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    farm.update(resolved="d" * 40)
    created: list[dict[str, Any]] = []

    def create_build(name: str, fields: dict[str, Any], force: bool = False,
                     absent: bool = False) -> dict[str, Any]:
        created.append(fields)
        return {"name": name, "build_id": "b2", **fields, "attempt": 1, "status": "running",
                "phase": "queued", "start_time": datetime(2024, 1, 2, tzinfo=UTC)}

    monkeypatch.setattr(api.builds.name_store, "claim_name", lambda *args: "o-r")
    monkeypatch.setattr(api.builds, "queue_for",
                        lambda config, name, built_before: ("builds", None))
    monkeypatch.setattr(api.builds, "enqueue_build", lambda *args: True)
    monkeypatch.setattr(api.builds.build_store, "create_build", create_build)
    response = client.post("/builds/repo", json={"repository": "https://github.com/O/R"},
                           headers={"Authorization": "k"})
    assert response.status_code == 200, response.text
    assert [fields["resolved_commit"] for fields in created] == ["d" * 40]
    assert "resolved_commit" not in response.get_json()
    assert "resolved-commit" not in response.get_json()


def test_the_base_digest_is_asked_while_the_ref_resolves(farm: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each answer is needed for the image's name; neither waits for the other."""
    asked = threading.Event()
    resolve = cache_hits.provider_for(None, CONFIG).resolve  # type: ignore[arg-type]

    def base_digest(config: Any) -> str:
        asked.set()
        return "sha256:base"

    def resolve_after_the_registry_was_asked(spec: Spec, limits: Any) -> Resolved:
        assert asked.wait(5), "the registry is asked only after the ref resolved"
        return resolve(spec, limits)

    monkeypatch.setattr(cache_hits, "base_digest", base_digest)
    provider = cache_hits.provider_for(None, CONFIG)  # type: ignore[arg-type]
    provider.resolve = resolve_after_the_registry_was_asked  # type: ignore[method-assign]
    monkeypatch.setattr(cache_hits, "provider_for", lambda spec, config: provider)
    assert cache_hits.find_hit(CONFIG, "o-r", FIELDS) is not None


def test_a_registry_that_does_not_say_still_hands_on_the_commit(farm: dict[str, Any]) -> None:
    farm.update(base_error=BuildFailure("The registry did not answer for the base image."))
    lookup = cache_hits.look_up(CONFIG, "o-r", FIELDS)
    assert lookup.hit is None and lookup.resolved_commit == COMMIT
